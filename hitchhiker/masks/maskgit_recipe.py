"""Recipe "maskgit": train MaskGIT (:mod:`.maskgit`) on the tokens of world views, score it.

Chang et al., "MaskGIT: Masked Generative Image Transformer" (CVPR 2022). This module is what
:mod:`hitchhiker.zoo` runs: the Config with its presets, build, fit (encode the training views once
with the tokenizer, train on the masked cross-entropy of :func:`~.maskgit.maskgit_loss`) and
evaluate: images sampled from nothing, decoded and read back tile by tile, the held-out loss, and
the time per image at batch 1 and 16. The AR baseline's recipe (:mod:`.autoregressive_recipe`)
reuses this Config, its presets and its helpers.

Shapes: B batch, h x w token grid, N = h * w tokens, V codebook size, S decoding steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from hitchhiker.devices import device_of
from hitchhiker.masks.core import CoreConfig
from hitchhiker.masks.maskgit import SCHEDULES, MaskGIT, maskgit_loss
from hitchhiker.tokens import (
    TokenDataset,
    bind_tokenizer,
    check_tokenizer,
    decode_tokens,
    round_trip_accuracy,
    sample_quality,
    seconds_per_image,
    tokenizer_for,
    world_tokens,
)
from hitchhiker.train import train, train_config_of


@dataclass
class Config:
    """MaskGIT on the tokens of world views (recipe "maskgit" of :mod:`hitchhiker.zoo`)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "tokenizer": "smoke",
            "dim": 32,
            "depth": 1,
            "heads": 2,
            "episodes": 4,
            "episode_steps": 16,
            "eval_episodes": 2,
            "steps": 30,
            "batch_size": 16,
            "warmup_steps": 3,
            "eval_samples": 8,
            "timing_repeats": 1,
        },
        "cpu": {"steps": 1500, "batch_size": 64},
        "gpu": {"dim": 256, "depth": 8, "heads": 8, "episodes": 1024, "steps": 20000},
        "large": {"dim": 384, "depth": 12, "heads": 8, "episodes": 2048, "steps": 40000},
    }

    tokenizer: str = "shipped"
    """Which tokenizer: "shipped", "oracle" (ground-truth stand-in) or a preset to train one at."""
    vocab_size: int = 0
    """Codebook size V; 0 until fit() reads it from the tokenizer."""
    grid_h: int = 0
    """Token rows h; 0 until fit() reads it from the tokenizer."""
    grid_w: int = 0
    """Token columns w; 0 until fit() reads it from the tokenizer."""
    tokenizer_sha256: str = ""
    """Fingerprint of the shipped tokenizer this model was trained on (warns when it changes)."""
    dim: int = 128
    """Transformer width D."""
    depth: int = 4
    """Transformer blocks."""
    heads: int = 4
    """Attention heads."""
    dropout: float = 0.0
    """Dropout in attention and MLP while training."""
    mask_schedule: str = "cosine"
    """Training mask schedule gamma (see SCHEDULES)."""
    episodes: int = 256
    """Training episodes recorded (train split)."""
    episode_steps: int = 32
    """Steps per recorded episode (each gives steps + 1 views)."""
    policy: str = "random"
    """Behaviour policy that records the views."""
    steps: int = 3000
    """Optimizer steps."""
    batch_size: int = 64
    """Token grids per step."""
    lr: float = 1e-3
    """Peak learning rate."""
    weight_decay: float = 0.05
    """AdamW weight decay."""
    warmup_steps: int = 100
    """Linear warmup steps."""
    seed: int = 0
    """Seed of initialisation, data order and masks."""
    eval_episodes: int = 16
    """Held-out episodes (test split) for the figures."""
    eval_samples: int = 64
    """Images sampled for the quality figures."""
    decode_steps: int = 8
    """MaskGIT decoding steps for the figures."""
    temperature: float = 1.0
    """Sampling temperature for the figures."""
    choice_temperature: float = 4.5
    """Scale of the annealed Gumbel noise on confidences (the paper's 4.5)."""
    timing_repeats: int = 3
    """Timed repeats (median) per batch size in the speed figures."""
    timing_threads: int = 1
    """CPU threads while timing (0: torch's default); one is steadiest on a shared machine."""


def core_config(cfg) -> CoreConfig:
    """The transformer size of a token-model config (MaskGIT or AR)."""
    if cfg.vocab_size < 1 or cfg.grid_h < 1 or cfg.grid_w < 1:
        raise ValueError(
            "the config does not know its tokenizer yet (vocab_size/grid_h/grid_w are 0): "
            "call fit(), or bind_tokenizer(cfg, tokenizer) first"
        )
    return CoreConfig(
        vocab_size=cfg.vocab_size,
        seq_len=cfg.grid_h * cfg.grid_w,
        dim=cfg.dim,
        depth=cfg.depth,
        heads=cfg.heads,
        dropout=cfg.dropout,
    )


def train_config(cfg):
    """The trainer's settings from a token-model config."""
    return train_config_of(cfg, checkpoint_every=500)  # MaskGIT and AR checkpoint every 500


def build(cfg: Config) -> MaskGIT:
    """The untrained MaskGIT of a (tokenizer-bound) config."""
    if cfg.mask_schedule not in SCHEDULES:
        raise ValueError(f"unknown mask_schedule {cfg.mask_schedule!r}; expected {list(SCHEDULES)}")
    torch.manual_seed(cfg.seed)
    return MaskGIT(core_config(cfg), (cfg.grid_h, cfg.grid_w))


def fit(cfg: Config, run_dir=None, progress: bool = True, tokenizer=None) -> MaskGIT:
    """Encode the training views once, then train MaskGIT on their tokens."""
    tokenizer = tokenizer if tokenizer is not None else tokenizer_for(cfg)
    bind_tokenizer(cfg, tokenizer)
    tokens, tiles = world_tokens(cfg, "train", tokenizer)
    if cfg.tokenizer != "smoke":  # a few-step smoke tokenizer is expected to lose tiles
        check_tokenizer(tokenizer, tokens[:256], tiles[:256])
    model = build(cfg)
    schedule = cfg.mask_schedule
    result = train(
        model,
        TokenDataset(tokens),
        lambda m, batch: maskgit_loss(m, batch["tokens"], schedule),
        train_config(cfg),
        run_dir,
        progress=progress,
    )
    model.losses = result.losses
    return result.model


def evaluate(model: MaskGIT, cfg: Config, tokenizer=None) -> dict[str, float]:
    """Sample images from nothing, decode and read them; time sampling at batch 1 and 16."""
    tokenizer = tokenizer if tokenizer is not None else tokenizer_for(cfg)
    model.eval()
    test_tokens, test_tiles = world_tokens(cfg, "test", tokenizer)
    device = device_of(model)
    kw = {
        "steps": cfg.decode_steps,
        "temperature": cfg.temperature,
        "choice_temperature": cfg.choice_temperature,
    }
    with torch.inference_mode():
        samples = model.generate(cfg.eval_samples, seed=cfg.seed, **kw)
        x = test_tokens[: 4 * cfg.batch_size].to(device).reshape(-1, cfg.grid_h * cfg.grid_w)
        torch.manual_seed(cfg.seed)
        test_loss = float(maskgit_loss(model, x, cfg.mask_schedule)[0])
    quality = sample_quality(decode_tokens(tokenizer, samples), test_tiles)
    out = {f"stage1.maskgit.{k}": v for k, v in quality.items()}
    out["stage1.maskgit.test_loss"] = test_loss
    n = 4 * cfg.batch_size
    out["stage1.maskgit.tokenizer_tile_accuracy"] = round_trip_accuracy(
        tokenizer, test_tokens[:n], test_tiles[:n]
    )
    for b in (1, 16):
        sample = lambda n: model.generate(n, **kw)
        s = seconds_per_image(sample, b, cfg.timing_repeats, cfg.timing_threads)
        out[f"stage1.maskgit.ms_per_image_b{b}"] = 1000 * s
    return out
