"""The shipped models: train one by its recipe, store it in ``data/checkpoints/``, load it back.

    python -m hitchhiker.zoo train tokenizer --preset cpu   # train, evaluate, ship, add to manifest
                                                            # (cut short? run it again: it resumes)
    python -m hitchhiker.zoo evaluate dynamics              # re-measure a shipped model's figures
    python -m hitchhiker.zoo tune unified                   # re-pick its decoding on val (same
                                                            # weights), store it, re-measure
    python -m hitchhiker.zoo list                           # what is shipped, with its figures
    python -m hitchhiker.zoo verify                         # every file against its sha256

A *recipe* is a module of the package (one per model; the contract is :mod:`hitchhiker.recipe`).
The zoo resolves what a recipe depends on (:func:`dependency`: the tokenizer a token model reads,
the latent action model whose codes it conditions on), completes its config from them
(:func:`prepare`) and hands both in: no recipe imports the zoo.

Shipping stores the weights in half precision (safetensors: no pickle) with the config and the
recipe in the file's metadata, so :func:`load` rebuilds the exact architecture with no other input,
and records the file, its sha256, the preset, the command that trained it and the figures it reached
in ``data/checkpoints/manifest.json``. Notebooks call :func:`load_or_fit`: the shipped weights when
they exist and match, a fresh (smoke-sized in CI) training otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

from torch import nn

from hitchhiker.checkpoint import (
    CheckpointError,
    add_to_manifest,
    file_sha256,
    load_weights,
    read_manifest,
    read_metadata,
    rewrite_metadata,
    round_to_half,
    save_weights,
    verify_manifest,
)
from hitchhiker.config import (
    config_from_dict,
    config_to_dict,
    config_values,
    make_config,
    resolve_preset,
)
from hitchhiker.recipe import Need
from hitchhiker.tokens import OracleTokenizer

CHECKPOINTS = Path(__file__).resolve().parent.parent / "data" / "checkpoints"
RUNS = Path(__file__).resolve().parent.parent / "runs" / "zoo"
"""Trainer checkpoints of ``zoo train`` (git-ignored): one folder per model and preset."""
MANIFEST = CHECKPOINTS / "manifest.json"
RECIPES: dict[str, str] = {
    "mae": "hitchhiker.masks.mae_recipe",
    "text": "hitchhiker.masks.text_recipe",
    "tokenizer": "hitchhiker.masks.tokenizer_recipe",
    "maskgit": "hitchhiker.masks.maskgit_recipe",
    "ar": "hitchhiker.masks.autoregressive_recipe",
    "unified": "hitchhiker.unified.masked_recipe",
    "unified_ar": "hitchhiker.unified.autoregressive_recipe",
    "lam": "hitchhiker.interactive.latent_action_recipe",
    "lam_leaky": "hitchhiker.interactive.latent_action_recipe:leaky",
    "dynamics": "hitchhiker.interactive.masked_dynamics_recipe",
    "dynamics_latent": "hitchhiker.interactive.masked_dynamics_recipe:latent",
    "dynamics_noaug": "hitchhiker.interactive.masked_dynamics_recipe:no_context_noise",
    "dynamics_walls": "hitchhiker.interactive.masked_dynamics_recipe:walls",
    "diffusion": "hitchhiker.interactive.diffusion_recipe",
    "diffusion_noaug": "hitchhiker.interactive.diffusion_recipe:no_context_noise",
    "diffusion_pixels": "hitchhiker.interactive.diffusion_recipe:pixels",
    "memory": "hitchhiker.memory.memory_recipe",
    "memory_walls": "hitchhiker.memory.memory_recipe:walls",
    "state_memory": "hitchhiker.memory.state_recipe",
    "state_memory_screen": "hitchhiker.memory.state_recipe:screen",
    "window16": "hitchhiker.memory.window_recipe",
    "agent": "hitchhiker.agents.agent_recipe",
    "agent_walls": "hitchhiker.agents.agent_recipe:walls",
    "home": "hitchhiker.agents.home_recipe",
    "home_dream": "hitchhiker.agents.home_dream_recipe",
    "home_dream_walls": "hitchhiker.agents.home_dream_recipe:walls",
}
"""Model name -> recipe module, or ``module:variant`` for a variant of a recipe: the module's
``VARIANTS[variant]`` dict of Config overrides (e.g. the same dynamics model without context noise,
for the drift experiment). Each later stage adds its models here."""
STAGE_DIR = {
    "hitchhiker.masks": "stage1",
    "hitchhiker.unified": "stage2",
    "hitchhiker.interactive": "stage3",
    "hitchhiker.memory": "stage4",
    "hitchhiker.agents": "stage5",
}


def recipe(name: str) -> ModuleType:
    """The recipe module of a model name."""
    if name not in RECIPES:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(RECIPES)}")
    return importlib.import_module(RECIPES[name].split(":")[0])


def variant_overrides(name: str, preset: str | None = None) -> dict:
    """The Config overrides that make ``name`` a variant of its recipe ({} for a plain recipe).

    A variant's ``"PRESETS"`` entry, if any, holds overrides for single presets (e.g. a longer
    training at ``cpu`` that must not stretch the seconds-long ``smoke`` run)."""
    mod = recipe(name)
    _, _, variant = RECIPES[name].partition(":")
    if not variant:
        return {}
    variants = getattr(mod, "VARIANTS", {})
    if variant not in variants:
        raise ValueError(f"{mod.__name__} has no variant {variant!r}; it has {sorted(variants)}")
    values = dict(variants[variant])
    per_preset = values.pop("PRESETS", {}).get(preset, {})
    return {**values, **per_preset}


def _settings(name: str, preset: str, overrides: dict) -> dict:
    """The variant's overrides (its preset's included), then the caller's (the caller's win)."""
    return {**variant_overrides(name, preset), **overrides}


_LOADED: dict[tuple, nn.Module] = {}
"""Dependencies already loaded or trained in this process, by (model, source, overrides, sha)."""


def dependency(need: Need) -> nn.Module:
    """The model a recipe needs, in eval mode, kept in memory (fit and evaluate share it)."""
    if need.source == "oracle":
        key = (need.model, "oracle")
        if key not in _LOADED:
            _LOADED[key] = OracleTokenizer()
        return _LOADED[key]
    if need.source == "shipped":
        path = path_of(need.model)
        key = (need.model, "shipped", file_sha256(path) if path.is_file() else "")
        if key not in _LOADED:
            _LOADED[key] = load(need.model)
        return _LOADED[key]
    key = (need.model, need.source, need.overrides)
    if key not in _LOADED:
        model, cfg = load_or_fit(need.model, need.source, **dict(need.overrides))
        model.shipped_config = cfg  # a fitted dependency tells its config as a loaded one does
        _LOADED[key] = model.eval()
    return _LOADED[key]


def dependencies(name: str, values: dict) -> dict[str, nn.Module]:
    """What recipe ``name`` needs for the settings ``values`` (a config, or its tree of dicts)."""
    mod = recipe(name)
    if not isinstance(values, dict):
        values = config_to_dict(values)
    needs = mod.needs(values) if hasattr(mod, "needs") else {}
    return {role: dependency(need) for role, need in needs.items()}


def prepare(name: str, preset: str | None = None, **overrides) -> tuple[object, dict]:
    """(config, dependencies) of model ``name`` at ``preset``: the preset's row, the variant's and
    the caller's overrides, completed from the dependencies (``bind``) when it is built."""
    mod = recipe(name)
    preset = resolve_preset(preset)
    settings = _settings(name, preset, overrides)
    values = config_values(mod.Config, preset, **settings)
    deps = dependencies(name, values)
    bound = mod.bind(values, deps) if hasattr(mod, "bind") else {}
    return make_config(mod.Config, preset, **settings, **bound), deps


def config_for(name: str, preset: str | None = None, **overrides):
    """The complete Config of model ``name`` at ``preset`` (see :func:`prepare`)."""
    return prepare(name, preset, **overrides)[0]


def evaluate(name: str, model: nn.Module, cfg) -> dict[str, float]:
    """The recipe's figures of ``model`` (trained with ``cfg``), its dependencies resolved."""
    figures = recipe(name).evaluate(model, cfg, dependencies(name, cfg))
    return {k: float(v) for k, v in figures.items()}


def path_of(name: str, root: Path | None = None) -> Path:
    """Where the shipped weights of ``name`` live (under ``root``: another shelf, e.g. a test's)."""
    if name not in RECIPES:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(RECIPES)}")
    package = RECIPES[name].split(":")[0].rsplit(".", 1)[0]
    return Path(root or CHECKPOINTS) / STAGE_DIR.get(package, "misc") / f"{name}.safetensors"


def run_dir_of(name: str, preset: str, runs: Path | None = None) -> Path:
    """Where ``zoo train NAME --preset PRESET`` keeps its trainer checkpoints."""
    return Path(runs or RUNS) / f"{name}-{preset}"


def claim_run_dir(run_dir: Path, cfg, name: str, preset: str) -> None:
    """Record the recipe config ``cfg`` a run dir trains; refuse to resume one trained with
    another (the trainer's own check only sees optimiser settings, not e.g. the model width)."""
    config = config_to_dict(cfg)
    record = run_dir / "recipe_config.json"
    if record.is_file():
        saved = json.loads(record.read_text())
        changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
        if changed:
            raise CheckpointError(
                f"{run_dir} holds a run of {name!r} with other settings ({', '.join(changed)}); "
                f"expected the current {preset!r} preset. Start over with "
                f"`python -m hitchhiker.zoo train {name} --preset {preset} --fresh`"
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(config, indent=1, sort_keys=True))


def ship(
    name: str,
    preset: str | None = None,
    progress: bool = True,
    fresh: bool = False,
    into: str | Path | None = None,
) -> dict:
    """Train ``name`` at ``preset``, evaluate it, store it and add it to the manifest.

    No overrides: shipped weights must be reproducible by the recorded command alone. Training
    checkpoints go to :func:`run_dir_of`, so a run that was cut short resumes where it stopped
    (and a finished one is only re-evaluated); ``fresh`` deletes them first. ``into`` puts the
    weights, the manifest and the trainer checkpoints under another folder (the shipped shelf
    stays untouched), as the test that trains every recipe does.
    """
    mod = recipe(name)
    preset = resolve_preset(preset)
    shelf = Path(into) if into is not None else CHECKPOINTS
    cfg, deps = prepare(name, preset)
    run_dir = run_dir_of(name, preset, shelf / "runs" if into is not None else None)
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    claim_run_dir(run_dir, cfg, name, preset)
    model = mod.fit(cfg, deps, run_dir=run_dir, progress=progress)
    round_to_half(model)  # its figures are the shipped file's: weights as float16 stores them
    figures = {k: float(v) for k, v in mod.evaluate(model, cfg, deps).items()}
    target = path_of(name, shelf)
    meta = {"recipe": name, "preset": preset, "config": config_to_dict(cfg), "figures": figures}
    save_weights(target, model, metadata=meta, half=True)
    command = f"python -m hitchhiker.zoo train {name} --preset {preset}"
    entry = {
        "file": str(target.relative_to(shelf)),
        "sha256": None,
        "preset": preset,
        "command": command,
        "figures": figures,
    }
    add_to_manifest(shelf / MANIFEST.name, entry)
    return figures


def manifest_entry(name: str) -> dict:
    """The manifest entry of the shipped ``name``; CheckpointError if it has none."""
    target = str(path_of(name).relative_to(CHECKPOINTS))
    entry = next((e for e in read_manifest(MANIFEST) if e["file"] == target), None)
    if entry is None:
        raise CheckpointError(f"{target} is not in {MANIFEST}; ship it with `zoo train {name}`")
    return entry


def reevaluate(name: str) -> dict:
    """Re-measure the figures of the shipped ``name`` with today's evaluation code and record them
    in its manifest entry (the weights, their sha256 and the training command stay as they are; so
    do the figures of training itself, ``...train_minutes``)."""
    entry = manifest_entry(name)
    model = load(name)
    figures = evaluate(name, model, model.shipped_config)
    # figures of the training itself (its wall time) cannot be re-measured without retraining
    kept = {k: v for k, v in entry["figures"].items() if k.endswith("train_minutes")}
    figures = {**kept, **figures}
    add_to_manifest(MANIFEST, {**entry, "figures": figures})
    return figures


def retune(name: str) -> tuple[dict, dict]:
    """Re-run the recipe's val sweep of decoding settings on the shipped ``name`` with today's
    decoding code, store the picks in its file and re-measure its figures. The weights stay as
    they are; ``zoo train`` from scratch would pick the same (it ends with the same sweep).
    Returns (figures, the sweep's table)."""
    mod = recipe(name)
    if not hasattr(mod, "tune_decoding"):
        raise ValueError(f"{name!r} has no decoding settings to tune")
    entry = manifest_entry(name)
    model = load(name)
    cfg = model.shipped_config
    deps = dependencies(name, cfg)
    table = mod.tune_decoding(model, cfg, deps)
    figures = {k: float(v) for k, v in mod.evaluate(model, cfg, deps).items()}
    target = path_of(name)
    meta = {**read_metadata(target), "config": config_to_dict(cfg), "figures": figures}
    save_weights(target, model, metadata=meta, half=True)
    add_to_manifest(MANIFEST, {**entry, "sha256": None, "figures": figures})
    return figures, table


def load(name: str, path: str | Path | None = None) -> nn.Module:
    """Rebuild a shipped model from its file alone (architecture from the metadata), in eval mode."""
    mod = recipe(name)
    path = Path(path) if path is not None else path_of(name)
    if not path.is_file():
        raise CheckpointError(
            f"no shipped weights for {name!r} at {path}; train them with "
            f"`python -m hitchhiker.zoo train {name}` or call load_or_fit"
        )
    meta = read_metadata(path)
    if meta.get("recipe") != name or "config" not in meta:
        raise CheckpointError(f"{path} holds {meta.get('recipe')!r}, not a {name!r} checkpoint")
    cfg = config_from_dict(mod.Config, meta["config"])
    model = mod.build(cfg)
    load_weights(path, model)
    model.shipped_config = cfg
    model.shipped_sha256 = file_sha256(path)  # a token model records which tokenizer it read
    return model.eval()


def load_or_fit(name: str, preset: str | None = None, retrain: bool = False, **overrides):
    """(model, cfg): the shipped model, or — in smoke mode, when asked, or when none is shipped —
    a freshly trained one at ``preset``."""
    mod = recipe(name)
    preset = resolve_preset(preset)
    if not retrain and preset != "smoke" and path_of(name).is_file():
        model = load(name)
        return model, model.shipped_config
    cfg, deps = prepare(name, preset, **overrides)
    return mod.fit(cfg, deps), cfg


def migrate() -> list[str]:
    """Rewrite every shipped file's stored config in today's shape (``config.migrate_flat``): the
    weights stay byte for byte, the manifest gets the new sha256. The tokenizer goes first, and a
    token model's record of the tokenizer it read (``tokens.sha256``) follows the tokenizer's new
    fingerprint. Returns the names rewritten."""
    renamed: dict[str, str] = {}  # old file sha256 -> new
    done = []
    for name in sorted(RECIPES, key=lambda n: n != "tokenizer"):
        path = path_of(name)
        if not path.is_file():
            continue
        meta, old_sha = read_metadata(path), file_sha256(path)
        cfg = config_from_dict(recipe(name).Config, meta["config"])
        tokens = getattr(cfg, "tokens", None)
        if tokens is not None and tokens.sha256 in renamed:
            tokens.sha256 = renamed[tokens.sha256]
        config = config_to_dict(cfg)
        if config == meta["config"]:
            continue
        rewrite_metadata(path, {**meta, "config": config})
        renamed[old_sha] = file_sha256(path)
        entry = manifest_entry(name)
        add_to_manifest(MANIFEST, {**entry, "sha256": renamed[old_sha]})
        done.append(name)
    return done


def shipped_or_fit(name: str, preset: str | None = None):
    """(model, cfg): the shipped model whenever there is one, *in smoke mode too* (where
    :func:`load_or_fit` would train a tiny one: a notebook that only shortens its measurements in
    smoke mode can still show real pictures), else a fresh fit at ``preset``."""
    if path_of(name).is_file():
        model = load(name)
        return model, model.shipped_config
    return load_or_fit(name, preset)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hitchhiker.zoo", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train, evaluate and ship a model")
    t.add_argument("name", choices=sorted(RECIPES))
    t.add_argument("--preset", help="smoke, cpu, gpu or large (default: what fits this machine)")
    t.add_argument(
        "--fresh", action="store_true", help="start over instead of resuming runs/zoo/NAME-PRESET"
    )
    t.add_argument(
        "--into",
        help="store weights, manifest and runs under this folder instead of data/checkpoints",
    )
    e = sub.add_parser("evaluate", help="re-measure a shipped model's figures into the manifest")
    e.add_argument("name", choices=sorted(RECIPES))
    u = sub.add_parser(
        "tune", help="re-pick a shipped model's decoding settings on val, store them, re-measure"
    )
    u.add_argument("name", choices=sorted(RECIPES))
    sub.add_parser("list", help="shipped models and their figures")
    sub.add_parser(
        "migrate", help="rewrite shipped files' stored configs in today's shape (weights untouched)"
    )
    sub.add_parser("verify", help="check every shipped file against its sha256")
    args = ap.parse_args(argv)
    if args.cmd in ("train", "evaluate", "tune"):
        if args.cmd == "train":
            figures = ship(args.name, args.preset, fresh=args.fresh, into=args.into)
        elif args.cmd == "tune":
            figures, table = retune(args.name)
            print("val sweep:")
            for k, v in table.items():
                print(f"    {k:<52} {v:.4g}")
        else:
            figures = reevaluate(args.name)
        for k, v in figures.items():
            print(f"{k:<44} {v:.4g}")
    elif args.cmd == "list":
        for e in read_manifest(MANIFEST):
            print(f"{e['file']:<36} {e['preset']:<6} {e['command']}")
            for k, v in e["figures"].items():
                print(f"    {k:<40} {v:.4g}")
    elif args.cmd == "migrate":
        names = migrate()
        print(f"migrated {len(names)} file(s): {', '.join(names) or 'none needed'}")
    else:
        entries = verify_manifest(MANIFEST)
        print(f"{len(entries)} shipped file(s) match the manifest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
