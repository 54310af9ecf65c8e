"""Every recipe the zoo registers trains end to end at smoke size, through the command a user
types (cleanrl smoke-runs every script the same way), and keeps to the recipe contract."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hitchhiker import zoo
from hitchhiker.checkpoint import read_manifest, verify_manifest
from hitchhiker.recipe import Recipe

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(zoo.RECIPES))
def test_every_registered_recipe_trains_from_the_command_line(name, tmp_path):
    env = {**os.environ, "HITCHHIKER_SMOKE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "hitchhiker.zoo", "train", name, "--preset", "smoke"]
    done = subprocess.run(
        [*cmd, "--into", str(tmp_path)], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (entry,) = read_manifest(tmp_path / "manifest.json")
    assert entry["preset"] == "smoke" and entry["figures"]
    assert entry["command"] == f"python -m hitchhiker.zoo train {name} --preset smoke"
    verify_manifest(tmp_path / "manifest.json")
    model = zoo.load(name, zoo.path_of(name, tmp_path))
    assert sum(p.numel() for p in model.parameters()) > 0
    assert (tmp_path / "runs" / f"{name}-smoke").is_dir()  # a cut run would resume from there


@pytest.mark.parametrize("name", sorted(zoo.RECIPES))
def test_every_recipe_keeps_the_contract_and_never_reaches_back_into_the_zoo(name):
    mod = zoo.recipe(name)
    assert isinstance(mod, Recipe), f"{mod.__name__} lacks part of hitchhiker.recipe.Recipe"
    tree = ast.parse(Path(mod.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "hitchhiker.zoo" not in imported and "zoo" not in imported, mod.__name__
