"""A newcomer adds a Stage IV model: one model file, one recipe file, its benchmark rows, and one
line in each registry (``zoo.RECIPES``, ``bench.STAGE_MODULES``) — nothing else in the package.

The three files are written here as a throwaway package, exactly as a newcomer would write them
under ``hitchhiker/``; the test then trains the model through the zoo's command line (with the
shipped-tokenizer-style dependency resolved and handed in), loads it back, and measures its rows
through the benchmark.
"""

import sys
import textwrap

import pytest

from hitchhiker import bench, zoo
from hitchhiker.checkpoint import read_manifest

MODEL = '''
"""A memory that learns to write back the code it read (a table of V x V logits)."""
import torch
from torch import nn


class CopyMemory(nn.Module):
    def __init__(self, vocab_size: int):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)  # code read -> logits of the code written

    def forward(self, tokens):  # (B, N) -> (B, N, V)
        return self.table(tokens)
'''

RECIPE = '''
"""Recipe "memo": the copy memory on the tokens of recorded play."""
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from hitchhiker.recipe import tokenizer_need
from hitchhiker.tokens import TokenGrid, world_tokens
from hitchhiker.train import TrainConfig, train
from hitchhiker.world.dataset import DataConfig
from {package}.memo_model import CopyMemory


@dataclass
class Config:
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {{
        "smoke": {{"tokenizer": "oracle", "data": {{"episodes": 2, "episode_steps": 4,
                   "eval_episodes": 1}}, "train": {{"steps": 40, "batch_size": 4, "lr": 0.1,
                   "warmup_steps": 0, "weight_decay": 0.0}}}}
    }}
    tokenizer: str = "shipped"
    """Which tokenizer the memory reads."""
    tokens: TokenGrid = field(default_factory=TokenGrid)
    """Bound by the zoo from the tokenizer it hands in."""
    data: DataConfig = field(default_factory=DataConfig)
    """Recorded play."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(log_every=0))
    """Optimisation."""

    def __post_init__(self):
        self.tokens.require("the memo config")


def needs(values):
    return {{"tokenizer": tokenizer_need(values["tokenizer"])}}


def bind(values, deps):
    return {{"tokens": TokenGrid.of(deps["tokenizer"])}}


def build(cfg):
    torch.manual_seed(cfg.train.seed)
    return CopyMemory(cfg.tokens.vocab_size)


def loss_fn(model, batch):
    tokens = batch.flatten(1)
    return F.cross_entropy(model(tokens).flatten(0, 1), tokens.flatten())


def fit(cfg, deps, run_dir=None, progress=True):
    tokens, _ = world_tokens(cfg.data, "train", deps["tokenizer"])
    return train(build(cfg), tokens, loss_fn, cfg.train, run_dir, progress=progress).model


def evaluate(model, cfg, deps):
    tokens, _ = world_tokens(cfg.data, "test", deps["tokenizer"])
    with torch.inference_mode():
        hit = model(tokens.flatten(1)).argmax(-1) == tokens.flatten(1)
    return {{"stage4.memo.copy_accuracy": float(hit.float().mean())}}
'''

BENCHMARK = '''
"""Stage IV's rows of the course benchmark."""
from hitchhiker import zoo
from hitchhiker.bench import Figure, figures


@figures("stage4", Figure("stage4.memo.copy_accuracy", "the memory copies what it saw", "", "= 1"))
def stage4_figures(preset):
    model, cfg = zoo.load_or_fit("memo", preset)
    return zoo.evaluate("memo", model, cfg)
'''


@pytest.fixture
def stage4(tmp_path, monkeypatch):
    package = "hh_stage4_example"
    folder = tmp_path / package
    folder.mkdir()
    (folder / "__init__.py").write_text('"""Stage IV, as a newcomer adds it."""\n')
    (folder / "memo_model.py").write_text(textwrap.dedent(MODEL))
    (folder / "memo_recipe.py").write_text(textwrap.dedent(RECIPE.format(package=package)))
    (folder / "benchmark.py").write_text(textwrap.dedent(BENCHMARK))
    monkeypatch.syspath_prepend(str(tmp_path))
    # the registries: the only lines of the package a new stage touches
    monkeypatch.setitem(zoo.RECIPES, "memo", f"{package}.memo_recipe")
    monkeypatch.setitem(bench.STAGE_MODULES, "stage4", f"{package}.benchmark")
    real = bench._REGISTRY.pop("stage4", None)  # the course's own Stage IV rows: put back after
    yield tmp_path
    bench._REGISTRY.pop("stage4", None)
    if real is not None:
        bench._REGISTRY["stage4"] = real
    for name in [m for m in sys.modules if m.startswith(package)]:
        del sys.modules[name]


def test_a_new_stage_is_one_model_one_recipe_its_rows_and_the_registries(stage4, monkeypatch):
    monkeypatch.setenv("HITCHHIKER_SMOKE", "1")
    shelf = stage4 / "shelf"
    assert zoo.main(["train", "memo", "--preset", "smoke", "--into", str(shelf)]) == 0
    (entry,) = read_manifest(shelf / "manifest.json")
    assert entry["figures"]["stage4.memo.copy_accuracy"] > 0.99  # it learned to copy
    model = zoo.load("memo", zoo.path_of("memo", shelf))
    cfg, deps = zoo.prepare("memo", "smoke")
    untrained = zoo.recipe("memo").build(cfg)
    assert zoo.evaluate("memo", untrained, cfg)["stage4.memo.copy_accuracy"] < 0.5
    assert model.shipped_config.tokens.vocab_size > 0  # complete when built, and stored
    figures = bench.run("smoke", only=["stage4"])
    assert figures["stage4.memo.copy_accuracy"] > 0.99
    assert "stage4.memo.copy_accuracy" in bench.markdown(figures)
