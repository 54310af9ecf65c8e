"""Recipe "tokenizer": train the image tokenizer of :mod:`.tokenizer` on world views, score it.

A VQ-VAE (van den Oord et al., 2017), or FSQ (Mentzer et al., 2023) with ``Config.quantizer``, one
token per 8x8 tile (see :mod:`.tokenizer` for the model and its loss). This module is what
:mod:`hitchhiker.zoo` runs: the Config with its presets, build, fit (record views of the train split
with each behaviour policy, train on the weighted reconstruction loss) and evaluate: on held-out
views, the reconstruction PSNR, the tile accuracy and heading accuracy read back from the
reconstructions, and the codebook's usage and perplexity.

Shapes: B batch, H = W = 64 pixels, P patch (tile) side, h = H / P, w = W / P token grid, K codebook
size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from hitchhiker.masks.tokenizer import Tokenizer, reconstruct
from hitchhiker.metrics import psnr, tile_accuracy
from hitchhiker.recipe import Deps
from hitchhiker.train import TrainConfig, train
from hitchhiker.world.dataset import (
    LEARNING_WORLD,
    DataConfig,
    FrameDataset,
    frames_to_tensor,
    record,
)
from hitchhiker.world.reader import read_tiles


@dataclass
class Config:
    """The tokenizer recipe: architecture, quantizer, data and training, per preset."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "hidden": 64,
            "dead_after": 10,
            "vq_warmup": 10,
            "data": {"episodes": 2, "episode_steps": 24, "eval_episodes": 1, "eval_steps": 24},
            "train": {"steps": 40, "batch_size": 16, "warmup_steps": 4, "checkpoint_every": 0},
        },
        "cpu": {
            "data": {"episodes": 48, "episode_steps": 128, "eval_episodes": 16, "eval_steps": 128},
            "train": {"steps": 3000, "batch_size": 32},
        },
        "gpu": {
            "hidden": 256,
            "data": {"episodes": 96, "episode_steps": 128, "eval_episodes": 32, "eval_steps": 128},
            "train": {"steps": 6000, "batch_size": 64},
        },
        "large": {
            "hidden": 256,
            "data": {"episodes": 192, "episode_steps": 128, "eval_episodes": 32, "eval_steps": 128},
            "train": {"steps": 10000, "batch_size": 128},
        },
    }
    RENAMED: ClassVar[dict[str, str | None]] = {
        "policies": "data.policy",
        "test_episodes": "data.eval_episodes",
        "test_steps": "data.eval_steps",
    }
    """Where the fields of files stored before the configs were nested went (``migrate_flat``)."""

    image_size: int = 64
    """Side of the square input frame, in pixels."""
    patch: int = 8
    """Side of the pixel patch one token stands for (8: one token per world tile, an 8x8 grid)."""
    hidden: int = 128
    """Channels of the per-patch encoder and decoder MLPs."""
    quantizer: str = "vq"
    """"vq" (EMA codebook with dead-code restarts) or "fsq" (finite scalar quantisation)."""
    codebook_size: int = 128
    """VQ: number of codes K (FSQ's size is prod(fsq_levels)). The world draws ~150 distinct tile
    pictures, many differing by a few pixels (the explorer's heading). Measured at the cpu preset on
    held-out views: 64 codes keep tile accuracy 1.0 but the heading read back from decoded views
    only 52% of the time (headings share codes); 128 codes with ``explorer_weight`` 16 keep the
    heading 99.0% with 84% of codes in use; 256 codes reach 100% but leave 46% of codes unused."""
    latent_dim: int = 16
    """VQ: dimension of a code vector (FSQ uses len(fsq_levels) channels)."""
    fsq_levels: tuple[int, ...] = (8, 5, 5)
    """FSQ: levels per latent channel; the implicit codebook has prod(levels) = 200 codes."""
    commitment: float = 0.25
    """VQ: weight beta of the commitment loss ||z - sg(e)||^2."""
    ema_decay: float = 0.99
    """VQ: decay gamma of the codebook's moving averages."""
    dead_after: int = 100
    """VQ: a code unused for this many training steps is restarted on a recent encoder output;
    0 turns restarts off (dead codes stay dead: notebook 02 shows what that costs)."""
    explorer_weight: float = 16.0
    """Weight of the explorer's tile (the centre cell of the view) in the reconstruction loss. Its
    four headings differ by a few pixels on 1/64 of the frame, so at weight 1 the encoder barely
    separates them and the codebook merges them -- yet the heading is what Stage II's captions
    ("facing north") and Stage III's actions turn on."""
    latent_noise: float = 0.1
    """VQ warm-up: std of Gaussian noise added to the (unit) latents, so the decoder must tolerate
    small moves and the encoder learns to place different tiles far apart (robust codes)."""
    vq_warmup: int = 200
    """VQ: train as a plain autoencoder for this many steps, then seed the codebook (k-means++)
    from encoder outputs that already tell the tiles apart."""
    data: DataConfig = field(
        default_factory=lambda: DataConfig(
            episodes=48,
            episode_steps=128,
            policy=("random", "explorer"),
            eval_episodes=16,
            eval_steps=128,
        )
    )
    """Recorded play, per behaviour policy (random covers sheep and odd headings, explorer covers
    more ground): training episodes of the train split, held-out ones of the test split."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=3000,
            batch_size=32,
            lr=2e-3,
            weight_decay=0.0,  # a per-tile autoencoder that must memorise exact pictures
            log_every=50,
        )
    )
    """Optimisation: frames per step (each gives (image_size / patch)^2 latent vectors to the
    codebook), learning rate, the seed of initialisation and data order."""

    def __post_init__(self):
        if self.quantizer not in ("vq", "fsq"):
            raise ValueError(f"Config.quantizer must be 'vq' or 'fsq', got {self.quantizer!r}")
        if self.patch < 1 or self.image_size % self.patch:
            raise ValueError(
                f"image_size ({self.image_size}) must be a positive multiple of patch "
                f"({self.patch})"
            )


def build(cfg: Config) -> Tokenizer:
    """The untrained tokenizer."""
    return Tokenizer(cfg)


def policies_of(data: DataConfig) -> tuple[str, ...]:
    """The behaviour policies a DataConfig names (one, or a tuple of them)."""
    return (data.policy,) if isinstance(data.policy, str) else tuple(data.policy)


def frames_of(cfg: Config, split: str, progress: bool = False) -> FrameDataset | ConcatDataset:
    """The recorded views of ``split`` (train: cfg.data.episodes, else cfg.data.eval_episodes per
    policy)."""
    data = cfg.data
    episodes, steps = (
        (data.episodes, data.episode_steps)
        if split == "train"
        else (data.eval_episodes, data.held_out_steps)
    )
    sets = [
        FrameDataset(record(split, episodes, steps, pol, world=LEARNING_WORLD, progress=progress))
        for pol in policies_of(data)
    ]
    return sets[0] if len(sets) == 1 else ConcatDataset(sets)


def _arrays(data) -> tuple[np.ndarray, np.ndarray]:
    """(frames (N, H, W, 3) uint8, tiles (N, R, C)) of a FrameDataset or a ConcatDataset of them."""
    parts = data.datasets if isinstance(data, ConcatDataset) else [data]
    return np.concatenate([d.frames for d in parts]), np.concatenate([d.tiles for d in parts])


def loss_fn(model: Tokenizer, batch: dict[str, torch.Tensor]):
    _, terms = model(batch["frame"])
    return terms["loss"], {k: v.detach() for k, v in terms.items() if k != "loss"}


def fit(
    cfg: Config, deps: Deps, run_dir: str | Path | None = None, progress: bool = True
) -> Tokenizer:
    """Record the train split and train a tokenizer on its views (``deps`` is empty: the
    tokenizer learns from pixels)."""
    data = frames_of(cfg, "train", progress)
    model = build(cfg)
    return train(model, data, loss_fn, cfg.train, run_dir, progress=progress).model


def evaluate(model: Tokenizer, cfg: Config, deps: Deps) -> dict[str, float]:
    """Held-out figures: reconstruction PSNR, tile accuracy of reconstructions, codebook usage."""
    frames, tiles = _arrays(frames_of(cfg, "test"))
    tokens, recon = reconstruct(model, frames)
    counts = torch.bincount(tokens.flatten(), minlength=model.codebook_size)
    p = counts.double() / counts.sum()
    headings = np.concatenate(
        [
            record(
                "test", cfg.data.eval_episodes, cfg.data.held_out_steps, pol, world=LEARNING_WORLD
            ).headings
            for pol in policies_of(cfg.data)
        ],
        axis=None,
    )
    return {
        "stage1.tokenizer.psnr": psnr(recon, frames_to_tensor(frames)),
        "stage1.tokenizer.tile_accuracy": tile_accuracy(recon, tiles),
        "stage1.tokenizer.heading_accuracy": float((read_tiles(recon).heading == headings).mean()),
        "stage1.tokenizer.codebook_usage": float((counts > 0).double().mean()),
        "stage1.tokenizer.perplexity": float(torch.exp(-(p * torch.log(p + 1e-12)).sum())),
    }
