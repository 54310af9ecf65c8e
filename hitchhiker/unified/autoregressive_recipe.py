"""Recipe "unified_ar": train the Chameleon-style AR baseline of :mod:`.autoregressive`, tune its
sampling on VAL, score it.

The baseline is trained on the same pairs, at the same size and with the same budget as the unified
masked model (:mod:`.masked_recipe`, whose Config, presets and helpers it reuses), by next-token
cross-entropy over [BOS] + both segments, each sequence written text first or view first. This
module is what :mod:`hitchhiker.zoo` runs: the Config with its presets, needs and bind (the
masked model's: the tokenizer), build, fit, tune_decoding (the view temperature, and whether to
write best-of-n captions, picked on the VAL split) and evaluate (the masked model's figures,
:func:`.scoring.figures`, as ``stage2.unified_ar.*``).

Shapes: B batch, L = 64 caption tokens, h x w view codes, N = L + h * w, V = T + K shared ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from hitchhiker.recipe import Deps
from hitchhiker.unified import masked_recipe as um
from hitchhiker.unified.autoregressive import DECODING_DEFAULTS, UnifiedAR, ar_loss
from hitchhiker.unified.scoring import figures, i2t_figures, t2i_accuracy, tuning_pairs


@dataclass
class Config(um.Config):
    """The AR baseline (recipe "unified_ar"): the unified model's data, size and training budget,
    causal and in both orders. The masked-only fields (task probabilities, caption dropout,
    guidance, decoding steps, choice temperature) are unused."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = um.Config.PRESETS
    MODEL: ClassVar[str] = "unified_ar"

    p_view_first: float = 0.5
    """Share of training sequences written view first (teaches image-to-text)."""


needs = um.needs
"""The tokenizer the config names, as for the masked model."""
bind = um.bind
"""The tokenizer's codebook size, grid and fingerprint, as for the masked model."""


def build(cfg: Config) -> UnifiedAR:
    """The untrained AR baseline of a (tokenizer-bound) config."""
    torch.manual_seed(cfg.train.seed)
    lay = um.layout_of(cfg)
    return UnifiedAR(
        um.core_config(cfg, lay.seq_len + 1), lay, um.decoding_of(cfg, DECODING_DEFAULTS)
    )


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> UnifiedAR:
    """The same pairs and trainer as the masked model; next-token loss in both orders."""
    p = cfg.p_view_first
    loss = lambda m, batch: ar_loss(m, batch, p)
    return um.fit_on_pairs(cfg, deps, build, loss, tune_decoding, run_dir, progress)


SWEEP_T2I = {"temperature": (1.0, 0.5)}
"""Val sweep of the baseline: the view sampling temperature."""


def tune_decoding(model: UnifiedAR, cfg: Config, deps: Deps) -> dict[str, float]:
    """Pick the view temperature, and whether to write best-of-n captions, on the VAL split
    (ties: the first); write them into cfg and the model."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the unified_ar model")
    pairs = tuning_pairs(cfg, tokenizer)
    table, best, best_acc = {}, None, -1.0
    for temp in SWEEP_T2I["temperature"]:
        acc = t2i_accuracy(model, pairs, tokenizer, temperature=temp, seed=cfg.train.seed)
        table[f"t2i temperature={temp:g}"] = acc
        if acc > best_acc + 1e-9:
            best, best_acc = temp, acc
    cfg.temperature = best
    precision = i2t_figures(model, pairs, candidates=1, seed=cfg.train.seed)["precision"]
    table["i2t grammar precision"] = precision
    um.tune_caption_candidates(model, cfg, pairs, table, precision)
    model.decoding.update(um.decoding_of(cfg, DECODING_DEFAULTS))
    return table


def evaluate(model: UnifiedAR, cfg: Config, deps: Deps) -> dict[str, float]:
    """The same figures as the masked model's (:func:`.scoring.figures`), ``stage2.unified_ar.*``."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the unified_ar model")
    model.decoding.update(um.decoding_of(cfg, DECODING_DEFAULTS))
    return figures(model, cfg, tokenizer, "stage2.unified_ar")
