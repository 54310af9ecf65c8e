"""Recipe "text": train the masked caption model of :mod:`.text` on the world's captions, score it.

BERT-style masked language modelling grown into a masked-diffusion text generator (see :mod:`.text`
for the objectives and the sampler). This module is what :mod:`hitchhiker.zoo` runs: the Config
with its presets, build (a :class:`~hitchhiker.masks.core.MaskedTokenModel` over the caption
vocabulary), fit (record training views, caption them, train) and evaluate: masked-token accuracy
at 15%, infilling accuracy at 50% on held-out worlds, and, for captions generated from nothing, the
share that parse, the share written exactly as the caption writer would, and the share of distinct
ones.

Shapes: B batch, N = seq_len tokens, V vocabulary (CAPTION_VOCAB + pad), M captions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from hitchhiker.masks.core import CoreConfig, MaskedTokenModel
from hitchhiker.masks.text import (
    OBJECTIVES,
    VOCAB,
    WEIGHTINGS,
    canonical,
    decode_batch,
    encode_batch,
    generate,
    infill_accuracy,
    masked_accuracy,
    parses,
    text_loss,
)
from hitchhiker.recipe import Deps
from hitchhiker.train import TrainConfig, train
from hitchhiker.world.captions import describe, view_facts
from hitchhiker.world.dataset import LEARNING_WORLD, DataConfig, record


@dataclass
class Config:
    """The masked caption model: its size, its objective, its data and its training."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "dim": 32,
            "depth": 1,
            "heads": 2,
            "eval_samples": 8,
            "data": {"episodes": 4, "episode_steps": 32, "eval_episodes": 2, "eval_steps": 16},
            "train": {"steps": 12, "batch_size": 8, "warmup_steps": 2, "checkpoint_every": 0},
        },
        "cpu": {"train": {"steps": 2500, "batch_size": 32}},
        "gpu": {
            "dim": 256,
            "depth": 6,
            "heads": 8,
            "data": {"episodes": 1024},
            "train": {"steps": 10000, "batch_size": 256, "warmup_steps": 500},
        },
        "large": {
            "dim": 384,
            "depth": 8,
            "heads": 8,
            "data": {"episodes": 2048},
            "train": {"steps": 30000, "batch_size": 256, "warmup_steps": 1000},
        },
    }
    RENAMED: ClassVar[dict[str, str | None]] = {
        "steps": "data.episode_steps",  # the episode length, not the optimiser's steps
        "train_steps": "train.steps",
        "eval_steps": "data.eval_steps",
    }
    """Where the fields of files stored before the configs were nested went (``migrate_flat``)."""

    seq_len: int = 64
    """Tokens per caption with padding, N (the longest possible caption has 61)."""
    dim: int = 128
    """Model width."""
    depth: int = 4
    """Transformer blocks."""
    heads: int = 4
    """Attention heads."""
    dropout: float = 0.0
    """Dropout in attention and MLP while training."""
    objective: str = "diffusion"
    """"diffusion": ratio t ~ U(0, 1) per caption over all N positions (pads too, so the model
    learns lengths); "bert": 15% of the real tokens, 80/10/10 [MASK]/random/kept."""
    weighting: str = "uniform"
    """Diffusion loss weight: "uniform" (mean over masked tokens) or "inverse_t" (1/t, the ELBO)."""
    bert_ratio: float = 0.15
    """Share of real tokens chosen per caption by the "bert" objective."""
    eval_samples: int = 256
    """Captions generated from nothing to measure the parse rate."""
    sample_steps: int = 32
    """Unmasking rounds used by the figures' generation and infilling (about half the caption
    length: 16 rounds commit too many tokens at once and break the grammar more often)."""
    data: DataConfig = field(
        default_factory=lambda: DataConfig(
            episodes=256, episode_steps=64, eval_episodes=32, eval_steps=32
        )
    )
    """Recorded play: training episodes (every view gives one caption), and the held-out (test)
    episodes of the figures."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=2000, lr=1e-3))
    """Optimisation: captions per step, learning rate, the seed of the weights, masks and data
    order (and of the figures' generation)."""

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}; got {self.objective!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}; got {self.weighting!r}")
        if not 0.0 < self.bert_ratio < 1.0:
            raise ValueError(f"bert_ratio must lie in (0, 1); got {self.bert_ratio}")


def captions_of(rec) -> list[str]:
    """The caption of every view of a recording, episode-major."""
    tiles = rec.tiles.reshape(-1, *rec.tiles.shape[2:])
    headings = rec.headings.reshape(-1)
    animals = rec.animals.reshape(-1, *rec.animals.shape[2:])
    return [describe(view_facts(t, h, a)) for t, h, a in zip(tiles, headings, animals)]


class CaptionDataset(Dataset):
    """Captions as padded ids. Item: {"tokens": (N,) int64}."""

    def __init__(self, texts: list[str], seq_len: int = 64):
        self.tokens = encode_batch(texts, seq_len)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"tokens": self.tokens[i]}


# ----------------------------------------------------------------------------- the recipe


def build(cfg: Config) -> MaskedTokenModel:
    """The untrained caption model of ``cfg`` (a MaskedTokenModel over VOCAB)."""
    torch.manual_seed(cfg.train.seed)
    core = CoreConfig(
        vocab_size=len(VOCAB),
        seq_len=cfg.seq_len,
        dim=cfg.dim,
        depth=cfg.depth,
        heads=cfg.heads,
        dropout=cfg.dropout,
    )
    model = MaskedTokenModel(core)
    model.text_config = cfg
    return model


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> MaskedTokenModel:
    """Record training views, caption them, train the masked model; returns it in eval mode.
    ``deps`` is empty: captions come from the world's ground truth, not from another model."""
    d = cfg.data
    rec = record(
        "train", d.episodes, d.episode_steps, d.policy, world=LEARNING_WORLD, progress=progress
    )
    data = CaptionDataset(captions_of(rec), cfg.seq_len)
    model = build(cfg)
    return train(model, data, text_loss, cfg.train, run_dir, progress=progress).model.eval()


def test_captions(cfg: Config) -> list[str]:
    """Captions of the held-out (test split) views the figures use."""
    d = cfg.data
    rec = record("test", d.eval_episodes, d.held_out_steps, d.policy, world=LEARNING_WORLD)
    return captions_of(rec)


def evaluate(model: MaskedTokenModel, cfg: Config, deps: Deps) -> dict[str, float]:
    """Masked-token accuracy at 15%, infilling accuracy at 50% (held-out worlds), and, for captions
    generated from nothing, the share that parse, the share written exactly as the caption writer
    would (canonical), and the share of distinct ones."""
    device = next(model.parameters()).device
    tokens = encode_batch(test_captions(cfg), cfg.seq_len).to(device)
    samples = decode_batch(generate(model, cfg.eval_samples, cfg.sample_steps, seed=cfg.train.seed))
    ok = np.array([parses(s) for s in samples])
    exact = np.array([canonical(s) for s in samples])
    return {
        "stage1.text.masked_acc_15": masked_accuracy(model, tokens, 0.15),
        "stage1.text.infill_acc_50": infill_accuracy(model, tokens, 0.5, cfg.sample_steps),
        "stage1.text.parse_rate": float(ok.mean()),
        "stage1.text.canonical_rate": float(exact.mean()),
        "stage1.text.unique_share": len(set(samples)) / len(samples),
    }
