"""Shipping a model: train by recipe, store fp16 safetensors + manifest, rebuild from the file alone."""

import sys
import types
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from hitchhiker import zoo
from hitchhiker.checkpoint import CheckpointError, read_manifest, verify_manifest


@dataclass
class TinyConfig:
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"width": 3}, "cpu": {"width": 5}}
    width: int = 4
    """Output features."""
    scale: float = 1.0
    """A decoding setting: changes no weight."""


def _recipe():
    mod = types.ModuleType("hh_tiny_recipe")
    mod.Config = TinyConfig
    mod.build = lambda cfg: nn.Linear(2, cfg.width)

    def fit(cfg, deps, run_dir=None, progress=True):
        mod.run_dirs.append(run_dir)
        torch.manual_seed(0)
        return mod.build(cfg)

    mod.run_dirs = []

    mod.fit = fit
    mod.evaluate = lambda model, cfg, deps: {"tiny.width": float(model.out_features)}
    return mod


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "hh_tiny_recipe", _recipe())
    monkeypatch.setitem(zoo.RECIPES, "tiny", "hh_tiny_recipe")
    monkeypatch.setattr(zoo, "CHECKPOINTS", tmp_path)
    monkeypatch.setattr(zoo, "MANIFEST", tmp_path / "manifest.json")
    monkeypatch.setattr(zoo, "RUNS", tmp_path / "runs")
    for flag in ("CI", "HITCHHIKER_SMOKE", "HITCHHIKER_PRESET"):  # presets named here must hold
        monkeypatch.delenv(flag, raising=False)
    return tmp_path


def test_ship_then_load_rebuilds_the_architecture_from_the_file(tiny):
    figures = zoo.ship("tiny", "cpu", progress=False)
    assert figures == {"tiny.width": 5.0}
    entry = read_manifest(tiny / "manifest.json")[0]
    assert entry["file"] == "misc/tiny.safetensors" and entry["preset"] == "cpu"
    assert entry["command"] == "python -m hitchhiker.zoo train tiny --preset cpu"
    verify_manifest(tiny / "manifest.json")
    model = zoo.load("tiny")
    assert model.out_features == 5 and not model.training
    torch.manual_seed(0)
    ref = nn.Linear(2, 5)
    assert torch.allclose(model.weight, ref.weight, atol=1e-3)  # fp16 storage


def test_shipped_figures_are_measured_on_the_weights_the_file_stores(tiny):
    """zoo.train evaluates the model rounded to float16, as shipped: re-evaluating the loaded file
    gives the same figures to the last digit."""
    sys.modules["hh_tiny_recipe"].evaluate = lambda model, cfg, deps: {
        "tiny.sum": float(model.weight.double().sum())
    }
    shipped = zoo.ship("tiny", "cpu", progress=False)
    assert zoo.reevaluate("tiny") == shipped


def test_ship_trains_in_a_run_dir_so_a_cut_run_resumes(tiny, monkeypatch):
    zoo.ship("tiny", "cpu", progress=False)
    run_dir = tiny / "runs" / "tiny-cpu"
    assert sys.modules["hh_tiny_recipe"].run_dirs == [run_dir]  # the trainer resumes from there
    (run_dir / "step-1").mkdir()
    zoo.ship("tiny", "cpu", progress=False)
    assert (run_dir / "step-1").exists()  # kept: the next run picks up where this one stopped
    monkeypatch.setitem(TinyConfig.PRESETS, "cpu", {"width": 6})  # the recipe changed since
    with pytest.raises(CheckpointError, match="other settings \\(width\\).*--fresh"):
        zoo.ship("tiny", "cpu", progress=False)
    zoo.ship("tiny", "cpu", progress=False, fresh=True)
    assert not (run_dir / "step-1").exists()  # --fresh starts over


def test_load_or_fit_uses_shipped_weights_except_in_smoke(tiny):
    zoo.ship("tiny", "cpu", progress=False)
    model, cfg = zoo.load_or_fit("tiny", "cpu")
    assert cfg.width == 5
    model, cfg = zoo.load_or_fit("tiny", "smoke")  # CI trains its own tiny model
    assert cfg.width == 3 and model.out_features == 3


def test_errors_say_what_was_expected(tiny):
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        zoo.load("nope")
    with pytest.raises(CheckpointError, match="python -m hitchhiker.zoo train tiny"):
        zoo.load("tiny")
    zoo.ship("tiny", "cpu", progress=False)
    path = tiny / "misc" / "tiny.safetensors"
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.raises(CheckpointError):
        zoo.load("tiny")
    with pytest.raises(CheckpointError, match="sha256"):
        verify_manifest(tiny / "manifest.json")


def test_every_shipped_checkpoint_matches_its_manifest_and_loads():
    """The files in data/checkpoints are what notebooks load: intact, listed, rebuildable."""
    entries = verify_manifest(zoo.MANIFEST)
    for entry in entries:
        name = entry["file"].rsplit("/", 1)[-1].removesuffix(".safetensors")
        assert (
            entry["command"] == f"python -m hitchhiker.zoo train {name} --preset {entry['preset']}"
        )
        model = zoo.load(name)
        assert sum(p.numel() for p in model.parameters()) > 0


def test_a_variant_ships_its_overrides_and_loads_them_back(tiny, monkeypatch):
    sys.modules["hh_tiny_recipe"].VARIANTS = {"wide": {"width": 9}}
    monkeypatch.setitem(zoo.RECIPES, "tiny_wide", "hh_tiny_recipe:wide")
    assert zoo.config_for("tiny_wide", "cpu").width == 9  # the variant beats the preset row
    assert zoo.config_for("tiny_wide", "cpu", width=2).width == 2  # explicit overrides beat both
    assert zoo.ship("tiny_wide", "cpu", progress=False) == {"tiny.width": 9.0}
    assert zoo.path_of("tiny_wide") == tiny / "misc" / "tiny_wide.safetensors"
    assert zoo.load("tiny_wide").out_features == 9
    assert zoo.load_or_fit("tiny_wide", "smoke")[1].width == 9
    monkeypatch.setitem(zoo.RECIPES, "tiny_bad", "hh_tiny_recipe:nope")
    with pytest.raises(ValueError, match="no variant 'nope'.*wide"):
        zoo.config_for("tiny_bad", "cpu")


def test_reevaluate_refreshes_the_figures_but_not_the_weights(tiny):
    zoo.ship("tiny", "cpu", progress=False)
    before = read_manifest(tiny / "manifest.json")[0]
    sys.modules["hh_tiny_recipe"].evaluate = lambda model, cfg, deps: {"tiny.width": 42.0}
    assert zoo.reevaluate("tiny") == {"tiny.width": 42.0}
    after = read_manifest(tiny / "manifest.json")[0]
    assert after["figures"] == {"tiny.width": 42.0}
    assert {k: v for k, v in after.items() if k != "figures"} == {
        k: v for k, v in before.items() if k != "figures"
    }
    verify_manifest(tiny / "manifest.json")


def test_tune_stores_new_decoding_picks_with_the_same_weights(tiny):
    zoo.ship("tiny", "cpu", progress=False)
    before = zoo.load("tiny").state_dict()
    with pytest.raises(ValueError, match="no decoding settings to tune"):
        zoo.retune("tiny")

    def tune_decoding(model, cfg, deps):  # a val sweep that picks another setting
        cfg.scale = 2.5
        return {"scale=2.5": 1.0}

    recipe = sys.modules["hh_tiny_recipe"]
    recipe.tune_decoding = tune_decoding
    recipe.evaluate = lambda model, cfg, deps: {"tiny.scaled": cfg.scale * model.out_features}
    assert zoo.retune("tiny") == ({"tiny.scaled": 12.5}, {"scale=2.5": 1.0})
    entry = read_manifest(tiny / "manifest.json")[0]
    assert entry["figures"] == {"tiny.scaled": 12.5}
    assert entry["command"] == "python -m hitchhiker.zoo train tiny --preset cpu"
    verify_manifest(tiny / "manifest.json")  # the rewritten file's new sha256 is recorded
    model = zoo.load("tiny")
    assert model.shipped_config.scale == 2.5
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


@dataclass
class ChildConfig:
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"parent": "smoke"}}
    parent: str = "shipped"
    """Where the parent model comes from: "shipped" or a preset to train it at."""
    inputs: int = 0
    """Read off the parent when the zoo builds the config (its output features)."""

    def __post_init__(self):
        if self.inputs < 1:
            raise ValueError("ChildConfig has no parent bound")


def _child_recipe():
    mod = types.ModuleType("hh_child_recipe")
    mod.Config = ChildConfig
    mod.needs = lambda values: {"parent": zoo.Need("tiny", values["parent"])}
    mod.bind = lambda values, deps: {"inputs": deps["parent"].out_features}
    mod.build = lambda cfg: nn.Linear(cfg.inputs, 1)
    mod.fit = lambda cfg, deps, run_dir=None, progress=True: mod.build(cfg)
    mod.evaluate = lambda model, cfg, deps: {"child.inputs": float(deps["parent"].out_features)}
    return mod


def test_the_zoo_hands_a_recipe_its_dependencies_and_a_complete_config(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "hh_child_recipe", _child_recipe())
    monkeypatch.setitem(zoo.RECIPES, "child", "hh_child_recipe")
    with pytest.raises(CheckpointError, match="no shipped weights for 'tiny'"):
        zoo.config_for("child", "cpu")  # needs the shipped parent, which is not there yet
    zoo.ship("tiny", "cpu", progress=False)
    cfg, deps = zoo.prepare("child", "cpu")
    assert cfg.inputs == 5 and deps["parent"].out_features == 5  # bound when built
    assert zoo.ship("child", "cpu", progress=False) == {"child.inputs": 5.0}
    model = zoo.load("child")
    assert model.in_features == 5 and model.shipped_config.inputs == 5
    assert zoo.evaluate("child", model, model.shipped_config) == {"child.inputs": 5.0}
    smoke = zoo.config_for("child", "smoke")  # a smoke child trains a smoke parent
    assert smoke.inputs == 3


def test_a_flat_stored_config_loads_through_migration_and_migrate_rewrites_it(tiny, monkeypatch):
    from dataclasses import field

    from hitchhiker.checkpoint import read_metadata, rewrite_metadata

    @dataclass
    class Optim:
        lr: float = 1e-3
        """Learning rate."""

    @dataclass
    class Nested:
        PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
        width: int = 4
        """Output features."""
        train: Optim = field(default_factory=Optim)
        """How it trains."""

    monkeypatch.setattr(sys.modules["hh_tiny_recipe"], "Config", Nested)
    zoo.ship("tiny", "cpu", progress=False)
    path = tiny / "misc" / "tiny.safetensors"
    meta = read_metadata(path)
    assert meta["config"] == {"width": 4, "train": {"lr": 1e-3}}
    rewrite_metadata(path, {**meta, "config": {"width": 4, "lr": 0.5}})  # as an old file stored it
    zoo.add_to_manifest(zoo.MANIFEST, {**zoo.manifest_entry("tiny"), "sha256": None})
    weights = zoo.load("tiny").state_dict()
    assert zoo.load("tiny").shipped_config == Nested(width=4, train=Optim(lr=0.5))
    assert zoo.migrate() == ["tiny"]
    assert read_metadata(path)["config"] == {"width": 4, "train": {"lr": 0.5}}
    verify_manifest(zoo.MANIFEST)  # the new sha256 is recorded
    assert all(torch.equal(zoo.load("tiny").state_dict()[k], v) for k, v in weights.items())
    assert zoo.migrate() == []  # nothing left to migrate


def test_shipped_or_fit_fits_at_the_preset_only_when_nothing_is_shipped(tiny):
    model, cfg = zoo.shipped_or_fit("tiny", "smoke")
    assert cfg.width == 3 and model.out_features == 3
    assert sys.modules["hh_tiny_recipe"].run_dirs == [None]  # trained: nothing was shipped


def test_shipped_or_fit_takes_the_shipped_weights_even_in_smoke_mode(tiny):
    zoo.ship("tiny", "cpu", progress=False)
    fitted = sys.modules["hh_tiny_recipe"].run_dirs
    fitted.clear()
    model, cfg = zoo.shipped_or_fit("tiny", "smoke")
    assert cfg.width == 5 and model.out_features == 5 and not model.training
    assert fitted == []  # nothing trained
    _, smoke_cfg = zoo.load_or_fit("tiny", "smoke")  # where load_or_fit trains a tiny one
    assert smoke_cfg.width == 3
