"""Recipe "ar": train the autoregressive baseline of :mod:`.autoregressive` on world-view tokens.

The image GPT / VQGAN-transformer recipe (Chen et al. 2020; Esser et al. 2021) on the same tokens,
data, size and training as MaskGIT (:mod:`.maskgit_recipe`, whose Config and helpers it reuses);
only the factorisation changes, to raster-order next-token prediction. This module is what
:mod:`hitchhiker.zoo` runs: the Config with its presets, build, fit and evaluate: images sampled
token by token, decoded and read back tile by tile, the held-out loss, and the time per image at
batch 1 and 16, raced against the shipped MaskGIT when it was trained on the same tokenizer.

Shapes: B batch, h x w token grid, N = h * w tokens, V codebook size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from hitchhiker.devices import device_of
from hitchhiker.masks.autoregressive import AutoregressiveModel, ar_loss, speed_comparison
from hitchhiker.masks.maskgit import MaskGIT
from hitchhiker.masks.maskgit_recipe import Config as MaskGITConfig
from hitchhiker.masks.maskgit_recipe import core_config, train_tokens
from hitchhiker.recipe import Deps, Need
from hitchhiker.tokens import (
    TokenDataset,
    bind_tokens,
    decode_tokens,
    sample_quality,
    seconds_per_image,
    tokenizer_needs,
    world_tokens,
)
from hitchhiker.train import train


@dataclass
class Config(MaskGITConfig):
    """The AR baseline (recipe "ar"): MaskGIT's data, size and training; causal, raster order.

    The MaskGIT-only fields (mask_schedule, choice_temperature) are unused; decode_steps is the
    MaskGIT step count the speed comparison races against. PRESETS and RENAMED are MaskGIT's.
    """

    MODEL: ClassVar[str] = "AR baseline"


def needs(values: dict[str, Any]) -> dict[str, Need]:
    """The tokenizer the config names and, on the shipped tokenizer, the shipped MaskGIT that the
    speed figures race against."""
    out = tokenizer_needs(values)
    if values["tokenizer"] == "shipped":
        out["maskgit"] = Need("maskgit")
    return out


bind = bind_tokens
"""What it reads off the tokenizer: its vocabulary, grid and fingerprint (as MaskGIT does)."""


def build(cfg: Config) -> AutoregressiveModel:
    """The untrained AR model of a (tokenizer-bound) config."""
    torch.manual_seed(cfg.train.seed)
    return AutoregressiveModel(core_config(cfg), (cfg.tokens.grid_h, cfg.tokens.grid_w))


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> AutoregressiveModel:
    """Encode the training views once, then train the AR model on their tokens."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the AR baseline")
    tokens = train_tokens(cfg, tokenizer)
    model = build(cfg)
    result = train(
        model,
        TokenDataset(tokens),
        lambda m, batch: ar_loss(m, batch["tokens"]),
        cfg.train,
        run_dir,
        progress=progress,
    )
    model.losses = result.losses
    return result.model


def maskgit_to_race(cfg: Config, deps: Deps) -> MaskGIT | None:
    """The MaskGIT handed in, unless it is a shipped one trained on another tokenizer (its file
    records the tokenizer's fingerprint): a race between models of other tokens would mislead."""
    maskgit = deps.get("maskgit")
    stored = getattr(maskgit, "shipped_config", None)
    if stored is not None and stored.tokens.sha256 != cfg.tokens.sha256:
        return None
    return maskgit


def evaluate(model: AutoregressiveModel, cfg: Config, deps: Deps) -> dict[str, float]:
    """Sample, decode and read images; time sampling; race the MaskGIT handed in (the shipped one,
    on the shipped tokenizer) when there is one."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the AR baseline")
    model.eval()
    test_tokens, test_tiles = world_tokens(cfg.data, "test", tokenizer)
    device = device_of(model)
    with torch.inference_mode():
        samples = model.generate(cfg.eval_samples, temperature=cfg.temperature, seed=cfg.train.seed)
        x = test_tokens[: 4 * cfg.train.batch_size].to(device)
        test_loss = float(ar_loss(model, x)[0])
    quality = sample_quality(decode_tokens(tokenizer, samples), test_tiles)
    out = {f"stage1.ar.{k}": v for k, v in quality.items()}
    out["stage1.ar.test_loss"] = test_loss
    maskgit = maskgit_to_race(cfg, deps)
    if maskgit is None:
        for b in (1, 16):
            sample = lambda n: model.generate(n)
            s = seconds_per_image(sample, b, cfg.timing_repeats, cfg.timing_threads)
            out[f"stage1.ar.ms_per_image_b{b}"] = 1000 * s
        return out
    race = speed_comparison(
        maskgit.to(device), model, (1, 16), cfg.decode_steps, cfg.timing_repeats, cfg.timing_threads
    )
    for b in (1, 16):
        out[f"stage1.ar.ms_per_image_b{b}"] = race[f"ar_ms_b{b}"]
        out[f"stage1.ar.maskgit_ms_per_image_b{b}"] = race[f"maskgit_ms_b{b}"]
        out[f"stage1.ar.maskgit_speedup_b{b}"] = race[f"speedup_b{b}"]
    return out
