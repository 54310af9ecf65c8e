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
from hitchhiker.masks.maskgit_recipe import core_config, train_config
from hitchhiker.tokens import (
    TokenDataset,
    bind_tokenizer,
    check_tokenizer,
    decode_tokens,
    sample_quality,
    seconds_per_image,
    tokenizer_for,
    world_tokens,
)
from hitchhiker.train import train


@dataclass
class Config(MaskGITConfig):
    """The AR baseline (recipe "ar"): MaskGIT's data, size and training; causal, raster order.

    The MaskGIT-only fields (mask_schedule, choice_temperature) are unused; decode_steps is the
    MaskGIT step count the speed comparison races against.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = MaskGITConfig.PRESETS


def build(cfg: Config) -> AutoregressiveModel:
    """The untrained AR model of a (tokenizer-bound) config."""
    torch.manual_seed(cfg.seed)
    return AutoregressiveModel(core_config(cfg), (cfg.grid_h, cfg.grid_w))


def fit(cfg: Config, run_dir=None, progress: bool = True, tokenizer=None) -> AutoregressiveModel:
    """Encode the training views once, then train the AR model on their tokens."""
    tokenizer = tokenizer if tokenizer is not None else tokenizer_for(cfg)
    bind_tokenizer(cfg, tokenizer)
    tokens, tiles = world_tokens(cfg, "train", tokenizer)
    if cfg.tokenizer != "smoke":  # a few-step smoke tokenizer is expected to lose tiles
        check_tokenizer(tokenizer, tokens[:256], tiles[:256])
    model = build(cfg)
    result = train(
        model,
        TokenDataset(tokens),
        lambda m, batch: ar_loss(m, batch["tokens"]),
        train_config(cfg),
        run_dir,
        progress=progress,
    )
    model.losses = result.losses
    return result.model


def _shipped_maskgit(cfg: Config) -> MaskGIT | None:
    """The shipped MaskGIT when it was trained on the same shipped tokenizer, else None."""
    from hitchhiker import zoo

    if cfg.tokenizer != "shipped" or not zoo.path_of("maskgit").is_file():
        return None
    model = zoo.load("maskgit")
    return model if model.shipped_config.tokenizer_sha256 == cfg.tokenizer_sha256 else None


def evaluate(
    model: AutoregressiveModel, cfg: Config, tokenizer=None, maskgit: MaskGIT | None = None
) -> dict[str, float]:
    """Sample, decode and read images; time sampling; race the shipped MaskGIT when there is one."""
    tokenizer = tokenizer if tokenizer is not None else tokenizer_for(cfg)
    model.eval()
    test_tokens, test_tiles = world_tokens(cfg, "test", tokenizer)
    device = device_of(model)
    with torch.inference_mode():
        samples = model.generate(cfg.eval_samples, temperature=cfg.temperature, seed=cfg.seed)
        x = test_tokens[: 4 * cfg.batch_size].to(device)
        test_loss = float(ar_loss(model, x)[0])
    quality = sample_quality(decode_tokens(tokenizer, samples), test_tiles)
    out = {f"stage1.ar.{k}": v for k, v in quality.items()}
    out["stage1.ar.test_loss"] = test_loss
    maskgit = maskgit if maskgit is not None else _shipped_maskgit(cfg)
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
