"""What a recipe is: the one contract between a model of the course and the zoo that ships it.

Every shipped model (MAE, the tokenizer, MaskGIT, the unified model, the dynamics, ...) has a
*recipe*: a module that says how to build the model, train it and measure it. The zoo
(:mod:`hitchhiker.zoo`) is the only caller. It resolves what the recipe depends on (the tokenizer a
token model reads, the latent action model whose codes it conditions on), completes the config from
those dependencies, and hands both in, so a recipe never reaches back into the zoo:

    values = config_values(Config, preset, **overrides)    # the settings, as a checked tree of dicts
    deps   = {role: zoo.dependency(need) for role, need in needs(values).items()}
    cfg    = make_config(Config, preset, **overrides, **bind(values, deps))   # complete when built
    model  = fit(cfg, deps, run_dir)                        # record data, train, resume when cut
    figures = evaluate(model, cfg, deps)                    # {"stage.model.figure": number}

A recipe module provides:

    Config                    a dataclass with a PRESETS table; its optimiser and data settings are
                              the nested ``train: TrainConfig`` and ``data: DataConfig``
    build(cfg) -> nn.Module   the untrained model
    fit(cfg, deps, run_dir=None, progress=True) -> nn.Module
    evaluate(model, cfg, deps) -> dict[str, float]

and, where it has them:

    needs(values) -> dict[str, Need]          the models it depends on (default: none)
    bind(values, deps) -> dict[str, Any]      config fields read off those models (default: none)
    tune_decoding(model, cfg, deps) -> dict   re-pick decoding settings on val, into cfg and model
    VARIANTS: dict[str, dict]                 config overrides of the zoo's "module:variant" names
    RENAMED: dict[str, str | None]            where an old stored field went (config.migrate_flat)

Adding a model to the course is one model file, one recipe file, its benchmark rows and one line
in ``zoo.RECIPES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from torch import nn

from hitchhiker.config import PRESETS

Deps = Mapping[str, nn.Module]
"""The models a recipe depends on, by role ("tokenizer", "lam"), loaded or trained by the zoo."""

SOURCES = ("shipped", "oracle", *PRESETS)


@dataclass(frozen=True)
class Need:
    """A model a recipe depends on, and where the zoo should get it."""

    model: str
    """The zoo name of the model ("tokenizer", "lam")."""
    source: str = "shipped"
    """"shipped": the file in data/checkpoints; "oracle": the ground-truth stand-in (tokenizer
    only); a preset name: the shipped one unless that preset is smoke, else trained at it."""
    overrides: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    """Config overrides when the zoo trains it (pairs, so a Need can key a cache)."""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r} for {self.model!r}; valid: {SOURCES}")
        if self.source == "oracle" and self.model != "tokenizer":
            raise ValueError(f"only the tokenizer has an oracle stand-in, not {self.model!r}")


def tokenizer_need(choice: str) -> Need:
    """The tokenizer a token model's ``tokenizer`` setting names: "shipped", "oracle" (the
    ground-truth stand-in) or a preset to train one at."""
    return Need("tokenizer", choice)


@runtime_checkable
class Recipe(Protocol):
    """What every recipe module offers (checked with ``isinstance(module, Recipe)``)."""

    Config: type

    def build(self, cfg: Any) -> nn.Module: ...

    def fit(
        self, cfg: Any, deps: Deps, run_dir: Any = None, progress: bool = True
    ) -> nn.Module: ...

    def evaluate(self, model: nn.Module, cfg: Any, deps: Deps) -> dict[str, float]: ...
