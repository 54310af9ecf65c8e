"""The shipped models: train one by its recipe, store it in ``data/checkpoints/``, load it back.

    python -m hitchhiker.zoo train tokenizer --preset cpu   # train, evaluate, ship, add to manifest
                                                            # (cut short? run it again: it resumes)
    python -m hitchhiker.zoo evaluate dynamics              # re-measure a shipped model's figures
    python -m hitchhiker.zoo tune unified                   # re-pick its decoding on val (same
                                                            # weights), store it, re-measure
    python -m hitchhiker.zoo list                           # what is shipped, with its figures
    python -m hitchhiker.zoo verify                         # every file against its sha256

A *recipe* is a module of the package (one per model) that provides

    Config                      a dataclass with a PRESETS table (hitchhiker.config.make_config)
    build(cfg) -> nn.Module     the untrained model
    fit(cfg, run_dir=None, progress=True) -> nn.Module      record data, train (hitchhiker.train)
    evaluate(model, cfg) -> dict[str, float]                figures on held-out seeds, dotted names
    tune_decoding(model, cfg) -> dict   (optional) pick decoding settings on val, into cfg/model

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
    load_weights,
    read_manifest,
    read_metadata,
    save_weights,
    verify_manifest,
)
from hitchhiker.config import config_from_dict, config_to_dict, make_config, resolve_preset

CHECKPOINTS = Path(__file__).resolve().parent.parent / "data" / "checkpoints"
RUNS = Path(__file__).resolve().parent.parent / "runs" / "zoo"
"""Trainer checkpoints of ``zoo train`` (git-ignored): one folder per model and preset."""
MANIFEST = CHECKPOINTS / "manifest.json"
RECIPES: dict[str, str] = {
    "mae": "hitchhiker.masks.mae",
    "text": "hitchhiker.masks.text",
    "tokenizer": "hitchhiker.masks.tokenizer",
    "maskgit": "hitchhiker.masks.maskgit",
    "ar": "hitchhiker.masks.autoregressive",
    "unified": "hitchhiker.unified.masked_recipe",
    "unified_ar": "hitchhiker.unified.autoregressive",
    "lam": "hitchhiker.interactive.latent_actions",
    "lam_leaky": "hitchhiker.interactive.latent_actions:leaky",
    "dynamics": "hitchhiker.interactive.masked_dynamics_recipe",
    "dynamics_latent": "hitchhiker.interactive.masked_dynamics_recipe:latent",
    "dynamics_noaug": "hitchhiker.interactive.masked_dynamics_recipe:no_context_noise",
    "diffusion": "hitchhiker.interactive.diffusion_recipe",
    "diffusion_noaug": "hitchhiker.interactive.diffusion_recipe:no_context_noise",
}
"""Model name -> recipe module, or ``module:variant`` for a variant of a recipe: the module's
``VARIANTS[variant]`` dict of Config overrides (e.g. the same dynamics model without context noise,
for the drift experiment). Each later stage adds its models here."""
STAGE_DIR = {
    "hitchhiker.masks": "stage1",
    "hitchhiker.unified": "stage2",
    "hitchhiker.interactive": "stage3",
}


def recipe(name: str) -> ModuleType:
    """The recipe module of a model name."""
    if name not in RECIPES:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(RECIPES)}")
    return importlib.import_module(RECIPES[name].split(":")[0])


def variant_overrides(name: str) -> dict:
    """The Config overrides that make ``name`` a variant of its recipe ({} for a plain recipe)."""
    mod = recipe(name)
    _, _, variant = RECIPES[name].partition(":")
    if not variant:
        return {}
    variants = getattr(mod, "VARIANTS", {})
    if variant not in variants:
        raise ValueError(f"{mod.__name__} has no variant {variant!r}; it has {sorted(variants)}")
    return dict(variants[variant])


def config_for(name: str, preset: str | None = None, **overrides):
    """The Config of model ``name`` at ``preset``: the preset's row, the variant's, then overrides."""
    return make_config(
        recipe(name).Config, resolve_preset(preset), **{**variant_overrides(name), **overrides}
    )


def path_of(name: str) -> Path:
    """Where the shipped weights of ``name`` live."""
    if name not in RECIPES:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(RECIPES)}")
    package = RECIPES[name].split(":")[0].rsplit(".", 1)[0]
    return CHECKPOINTS / STAGE_DIR.get(package, "misc") / f"{name}.safetensors"


def run_dir_of(name: str, preset: str) -> Path:
    """Where ``zoo train NAME --preset PRESET`` keeps its trainer checkpoints."""
    return RUNS / f"{name}-{preset}"


def _claim_run_dir(run_dir: Path, config: dict, name: str, preset: str) -> None:
    """Record the recipe config a run dir trains; refuse to resume one trained with another
    (the trainer's own check only sees optimiser settings, not e.g. the model width)."""
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


def ship(name: str, preset: str | None = None, progress: bool = True, fresh: bool = False) -> dict:
    """Train ``name`` at ``preset``, evaluate it, store it and add it to the manifest.

    No overrides: shipped weights must be reproducible by the recorded command alone. Training
    checkpoints go to :func:`run_dir_of`, so a run that was cut short resumes where it stopped
    (and a finished one is only re-evaluated); ``fresh`` deletes them first.
    """
    mod = recipe(name)
    preset = resolve_preset(preset)
    cfg = config_for(name, preset)
    run_dir = run_dir_of(name, preset)
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    _claim_run_dir(run_dir, config_to_dict(cfg), name, preset)
    model = mod.fit(cfg, run_dir=run_dir, progress=progress)
    figures = {k: float(v) for k, v in mod.evaluate(model, cfg).items()}
    target = path_of(name)
    meta = {"recipe": name, "preset": preset, "config": config_to_dict(cfg), "figures": figures}
    save_weights(target, model, metadata=meta, half=True)
    command = f"python -m hitchhiker.zoo train {name} --preset {preset}"
    entry = {
        "file": str(target.relative_to(CHECKPOINTS)),
        "sha256": None,
        "preset": preset,
        "command": command,
        "figures": figures,
    }
    add_to_manifest(MANIFEST, entry)
    return figures


def _manifest_entry(name: str) -> dict:
    """The manifest entry of the shipped ``name``; CheckpointError if it has none."""
    target = str(path_of(name).relative_to(CHECKPOINTS))
    entry = next((e for e in read_manifest(MANIFEST) if e["file"] == target), None)
    if entry is None:
        raise CheckpointError(f"{target} is not in {MANIFEST}; ship it with `zoo train {name}`")
    return entry


def reevaluate(name: str) -> dict:
    """Re-measure the figures of the shipped ``name`` with today's evaluation code and record them
    in its manifest entry (the weights, their sha256 and the training command stay as they are)."""
    entry = _manifest_entry(name)
    model = load(name)
    figures = {k: float(v) for k, v in recipe(name).evaluate(model, model.shipped_config).items()}
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
    entry = _manifest_entry(name)
    model = load(name)
    cfg = model.shipped_config
    table = mod.tune_decoding(model, cfg)
    figures = {k: float(v) for k, v in mod.evaluate(model, cfg).items()}
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
    return model.eval()


def load_or_fit(name: str, preset: str | None = None, retrain: bool = False, **overrides):
    """(model, cfg): the shipped model, or — in smoke mode, when asked, or when none is shipped —
    a freshly trained one at ``preset``."""
    mod = recipe(name)
    preset = resolve_preset(preset)
    if not retrain and preset != "smoke" and path_of(name).is_file():
        model = load(name)
        return model, model.shipped_config
    cfg = config_for(name, preset, **overrides)
    return mod.fit(cfg), cfg


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
    e = sub.add_parser("evaluate", help="re-measure a shipped model's figures into the manifest")
    e.add_argument("name", choices=sorted(RECIPES))
    u = sub.add_parser(
        "tune", help="re-pick a shipped model's decoding settings on val, store them, re-measure"
    )
    u.add_argument("name", choices=sorted(RECIPES))
    sub.add_parser("list", help="shipped models and their figures")
    sub.add_parser("verify", help="check every shipped file against its sha256")
    args = ap.parse_args(argv)
    if args.cmd in ("train", "evaluate", "tune"):
        if args.cmd == "train":
            figures = ship(args.name, args.preset, fresh=args.fresh)
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
    else:
        entries = verify_manifest(MANIFEST)
        print(f"{len(entries)} shipped file(s) match the manifest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
