"""Recipe "mae": train the masked autoencoder of :mod:`.mae` on world views and score it.

He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners" (https://arxiv.org/abs/2111.06377).
This module is what :mod:`hitchhiker.zoo` runs: the Config with its presets, build, fit (record the
training views, train on the masked-patch loss of :func:`~.mae.mae_loss`) and evaluate. The figures
are the masked-patch PSNR at 75% on held-out views, and the linear probes of :mod:`.probe` on the
trained encoder against a randomly initialised twin.

Shapes: B batch, N patches (64), P patch side in pixels (8), D encoder width, E decoder width,
H = W image side (64).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from hitchhiker.masks.mae import MAE, mae_loss, masked_psnr
from hitchhiker.masks.probe import probe_encoders
from hitchhiker.recipe import Deps
from hitchhiker.train import TrainConfig, train
from hitchhiker.world.dataset import LEARNING_WORLD, DataConfig, FrameDataset, record, views


@dataclass
class Config:
    """An MAE: its size, its masking, its data and its training (one row per preset)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "dim": 32,
            "depth": 1,
            "heads": 2,
            "decoder_dim": 32,
            "decoder_depth": 1,
            "decoder_heads": 2,
            "probe_episodes": 4,
            "probe_steps": 16,
            "data": {"episodes": 4, "episode_steps": 32, "eval_episodes": 2, "eval_steps": 16},
            "train": {"steps": 12, "batch_size": 8, "warmup_steps": 2, "checkpoint_every": 0},
        },
        "cpu": {"train": {"steps": 2500, "batch_size": 64}},
        "gpu": {
            "dim": 192,
            "depth": 6,
            "heads": 6,
            "decoder_dim": 128,
            "data": {"episodes": 256, "episode_steps": 128},
            "train": {"steps": 10000, "batch_size": 128, "warmup_steps": 500},
        },
        "large": {
            "dim": 256,
            "depth": 8,
            "heads": 8,
            "decoder_dim": 128,
            "decoder_depth": 4,
            "data": {"episodes": 512, "episode_steps": 128},
            "train": {"steps": 30000, "batch_size": 256, "warmup_steps": 1000},
        },
    }
    RENAMED: ClassVar[dict[str, str | None]] = {
        "steps": "data.episode_steps",  # the episode length, not the optimiser's steps
        "train_steps": "train.steps",
        "eval_steps": "data.eval_steps",
    }
    """Where the fields of files stored before the configs were nested went (``migrate_flat``)."""

    image_size: int = 64
    """Side of the square view, in pixels (H = W)."""
    patch_size: int = 8
    """Side of one square patch, in pixels (8: one patch per tile of the world)."""
    dim: int = 128
    """Encoder width D."""
    depth: int = 4
    """Encoder blocks."""
    heads: int = 4
    """Encoder attention heads (dim must be divisible by heads)."""
    decoder_dim: int = 64
    """Decoder width E (narrower than the encoder: the decoder is thrown away after training)."""
    decoder_depth: int = 2
    """Decoder blocks."""
    decoder_heads: int = 4
    """Decoder attention heads."""
    mlp_ratio: float = 4.0
    """Hidden width of every MLP as a multiple of its block's width."""
    mask_ratio: float = 0.75
    """Share of patches hidden in training; exactly round(mask_ratio * N) patches per view."""
    norm_pix_loss: bool = False
    """Regress per-patch normalised pixels (zero mean, unit variance per patch) instead of raw ones."""
    probe_episodes: int = 32
    """Episodes (train split) whose views train the linear probe."""
    probe_steps: int = 64
    """Steps per probe-training episode."""
    data: DataConfig = field(
        default_factory=lambda: DataConfig(
            episodes=64, episode_steps=128, eval_episodes=16, eval_steps=64
        )
    )
    """Recorded play: training episodes (one world each, steps + 1 views), and the held-out (test)
    episodes of the figures; the policy also records the probe's views."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=2000, lr=1e-3))
    """Optimisation: views per step, learning rate, the seed of the weights, masks and data order."""

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}"
            )
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must lie in [0, 1); got {self.mask_ratio}")

    @property
    def num_patches(self) -> int:
        """N: patches per view."""
        return (self.image_size // self.patch_size) ** 2


# ----------------------------------------------------------------------------- the recipe


def build(cfg: Config) -> MAE:
    """The untrained MAE of ``cfg`` (seeded by ``cfg.train.seed``)."""
    torch.manual_seed(cfg.train.seed)
    return MAE(cfg)


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> MAE:
    """Record the training views and train an MAE on them; returns the model in eval mode.
    ``deps`` is empty: the MAE learns from pixels and depends on no other model."""
    data = cfg.data
    rec = record(
        "train",
        data.episodes,
        data.episode_steps,
        data.policy,
        world=LEARNING_WORLD,
        progress=progress,
    )
    model = build(cfg)
    result = train(model, FrameDataset(rec), mae_loss, cfg.train, run_dir, progress=progress)
    return result.model.eval()


def evaluate(model: MAE, cfg: Config, deps: Deps) -> dict[str, float]:
    """Masked-patch PSNR at 75% on held-out views and the linear probe, MAE vs random encoder."""
    data = cfg.data
    test = record(
        "test", data.eval_episodes, data.held_out_steps, data.policy, world=LEARNING_WORLD
    )
    images, _ = views(test)
    figures = {"stage1.mae.masked_psnr_75": masked_psnr(model, images, 0.75)}
    figures.update(probe_encoders(model, build(cfg), cfg))
    return figures
