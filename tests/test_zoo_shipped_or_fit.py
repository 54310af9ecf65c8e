"""zoo.shipped_or_fit: the shipped model even in smoke mode, a fresh fit only when none is shipped.

Self-contained (its own tiny recipe) so it does not lean on test_zoo.py's fixtures."""

import sys
import types
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from torch import nn

from hitchhiker import zoo


@dataclass
class _Cfg:
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"width": 3}, "cpu": {"width": 5}}
    width: int = 4


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    mod = types.ModuleType("hh_shipped_or_fit_recipe")
    mod.Config = _Cfg
    mod.build = lambda cfg: nn.Linear(2, cfg.width)
    mod.fits = []

    def fit(cfg, run_dir=None, progress=True):
        mod.fits.append(cfg.width)
        return mod.build(cfg)

    mod.fit = fit
    mod.evaluate = lambda model, cfg: {"tiny.width": float(model.out_features)}
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(zoo.RECIPES, "tiny_sof", mod.__name__)
    monkeypatch.setattr(zoo, "CHECKPOINTS", tmp_path)
    monkeypatch.setattr(zoo, "MANIFEST", tmp_path / "manifest.json")
    monkeypatch.setattr(zoo, "RUNS", tmp_path / "runs")
    for flag in ("CI", "HITCHHIKER_SMOKE", "HITCHHIKER_PRESET"):
        monkeypatch.delenv(flag, raising=False)
    return mod


def test_without_shipped_weights_it_fits_at_the_preset(tiny):
    model, cfg = zoo.shipped_or_fit("tiny_sof", "smoke")
    assert cfg.width == 3 and model.out_features == 3 and tiny.fits == [3]


def test_shipped_weights_win_even_in_smoke_mode(tiny):
    zoo.ship("tiny_sof", "cpu", progress=False)
    tiny.fits.clear()
    model, cfg = zoo.shipped_or_fit("tiny_sof", "smoke")
    assert cfg.width == 5 and model.out_features == 5 and not model.training
    assert tiny.fits == []  # nothing trained
    _, smoke_cfg = zoo.load_or_fit("tiny_sof", "smoke")  # where load_or_fit trains a tiny one
    assert smoke_cfg.width == 3
