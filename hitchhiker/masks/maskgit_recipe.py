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

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from hitchhiker.devices import device_of
from hitchhiker.masks.core import CoreConfig
from hitchhiker.masks.maskgit import SCHEDULES, MaskGIT, maskgit_loss
from hitchhiker.recipe import Deps
from hitchhiker.tokens import (
    TokenDataset,
    TokenGrid,
    bind_tokens,
    check_tokenizer,
    decode_tokens,
    round_trip_accuracy,
    sample_quality,
    seconds_per_image,
    tokenizer_needs,
    world_tokens,
)
from hitchhiker.train import TrainConfig, train
from hitchhiker.world.dataset import DataConfig


@dataclass
class Config:
    """MaskGIT on the tokens of world views (recipe "maskgit" of :mod:`hitchhiker.zoo`)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "tokenizer": "smoke",
            "dim": 32,
            "depth": 1,
            "heads": 2,
            "eval_samples": 8,
            "timing_repeats": 1,
            "data": {"episodes": 4, "episode_steps": 16, "eval_episodes": 2},
            "train": {"steps": 30, "batch_size": 16, "warmup_steps": 3, "checkpoint_every": 0},
        },
        "cpu": {"train": {"steps": 1500, "batch_size": 64}},
        "gpu": {
            "dim": 256,
            "depth": 8,
            "heads": 8,
            "data": {"episodes": 1024},
            "train": {"steps": 20000},
        },
        "large": {
            "dim": 384,
            "depth": 12,
            "heads": 8,
            "data": {"episodes": 2048},
            "train": {"steps": 40000},
        },
    }
    RENAMED: ClassVar[dict[str, str | None]] = {"tokenizer_sha256": "tokens.sha256"}
    """Where the fields of files stored before the configs were nested went (``migrate_flat``)."""
    MODEL: ClassVar[str] = "MaskGIT"
    """What the model is called in error messages (the AR baseline reuses this Config)."""

    tokenizer: str = "shipped"
    """Which tokenizer: "shipped", "oracle" (ground-truth stand-in) or a preset to train one at."""
    tokens: TokenGrid = field(default_factory=TokenGrid)
    """The tokenizer's vocabulary and grid, bound by the zoo from the tokenizer it hands in."""
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
    data: DataConfig = field(
        default_factory=lambda: DataConfig(episodes=256, episode_steps=32, eval_episodes=16)
    )
    """Recorded play: training episodes (each gives steps + 1 views), and the held-out (test)
    episodes of the figures."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=3000, lr=1e-3))
    """Optimisation: token grids per step (4 batches of held-out grids give the test loss),
    learning rate, the seed of initialisation, data order, masks and the figures' samples."""

    def __post_init__(self):
        if self.mask_schedule not in SCHEDULES:
            raise ValueError(
                f"unknown mask_schedule {self.mask_schedule!r}; expected {list(SCHEDULES)}"
            )
        self.tokens.require(f"the {self.MODEL} config")


needs = tokenizer_needs
"""What the recipe needs: the tokenizer its config names."""
bind = bind_tokens
"""What it reads off it: the tokenizer's vocabulary, grid and fingerprint."""


def core_config(cfg) -> CoreConfig:
    """The transformer size of a token-model config (MaskGIT or AR)."""
    return CoreConfig(
        vocab_size=cfg.tokens.vocab_size,
        seq_len=cfg.tokens.grid_h * cfg.tokens.grid_w,
        dim=cfg.dim,
        depth=cfg.depth,
        heads=cfg.heads,
        dropout=cfg.dropout,
    )


def train_tokens(cfg, tokenizer) -> torch.Tensor:
    """The training views of a token-model config (MaskGIT or AR), encoded once, the tokenizer
    checked on them."""
    tokens, tiles = world_tokens(cfg.data, "train", tokenizer)
    if cfg.tokenizer != "smoke":  # a few-step smoke tokenizer is expected to lose tiles
        check_tokenizer(tokenizer, tokens[:256], tiles[:256])
    return tokens


def build(cfg: Config) -> MaskGIT:
    """The untrained MaskGIT of a (tokenizer-bound) config."""
    torch.manual_seed(cfg.train.seed)
    return MaskGIT(core_config(cfg), (cfg.tokens.grid_h, cfg.tokens.grid_w))


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> MaskGIT:
    """Encode the training views once, then train MaskGIT on their tokens."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "MaskGIT")
    tokens = train_tokens(cfg, tokenizer)
    model = build(cfg)
    schedule = cfg.mask_schedule
    result = train(
        model,
        TokenDataset(tokens),
        lambda m, batch: maskgit_loss(m, batch["tokens"], schedule),
        cfg.train,
        run_dir,
        progress=progress,
    )
    model.losses = result.losses
    return result.model


def evaluate(model: MaskGIT, cfg: Config, deps: Deps) -> dict[str, float]:
    """Sample images from nothing, decode and read them; time sampling at batch 1 and 16."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "MaskGIT")
    model.eval()
    test_tokens, test_tiles = world_tokens(cfg.data, "test", tokenizer)
    device = device_of(model)
    kw = {
        "steps": cfg.decode_steps,
        "temperature": cfg.temperature,
        "choice_temperature": cfg.choice_temperature,
    }
    n = 4 * cfg.train.batch_size
    with torch.inference_mode():
        samples = model.generate(cfg.eval_samples, seed=cfg.train.seed, **kw)
        x = test_tokens[:n].to(device).reshape(-1, cfg.tokens.grid_h * cfg.tokens.grid_w)
        torch.manual_seed(cfg.train.seed)
        test_loss = float(maskgit_loss(model, x, cfg.mask_schedule)[0])
    quality = sample_quality(decode_tokens(tokenizer, samples), test_tiles)
    out = {f"stage1.maskgit.{k}": v for k, v in quality.items()}
    out["stage1.maskgit.test_loss"] = test_loss
    out["stage1.maskgit.tokenizer_tile_accuracy"] = round_trip_accuracy(
        tokenizer, test_tokens[:n], test_tiles[:n]
    )
    for b in (1, 16):
        sample = lambda n: model.generate(n, **kw)
        s = seconds_per_image(sample, b, cfg.timing_repeats, cfg.timing_threads)
        out[f"stage1.maskgit.ms_per_image_b{b}"] = 1000 * s
    return out
