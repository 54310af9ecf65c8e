"""Stage V's go-home agents trained only in the dream (recipe "home_dream").

    python -m hitchhiker.zoo train home_dream --preset cpu

The two policies of recipe "home" (:mod:`.home_recipe`: the same network with memory and without),
taught again by DAgger, now inside notebook 06's memory engine by the dream's own teacher
(:mod:`.home_dream`): each round's worlds give only their real walk out; the way back is dreamed.
Same rounds, worlds, steps and seeds as recipe "home", so the two pairs differ in where they
learned only. Each policy keeps its weights and record in the run's folder as it ends, so an
interrupted run resumes after the last policy it finished.

The figures: each policy's success in the **real** world on recipe "home"'s test worlds (mean and
95% interval, one episode per world), memory minus no memory world by world, its success in the
dream on the same worlds' walks out, and dream minus real (what the dream taught that the world
does not pay); and one reason for it, measured: of the moves the policy made on its dreamed ways
back, the share the dream drew blocked and the share the real world blocks (the same moves, made
from the same walk out's end).

The settings are recipe "home"'s. A pilot on 64 val worlds came first, with an earlier teacher
that stepped back, not aside, when its move along the last axis was blocked (it got home in the
dream in 64 of 64; the memory student: real 0.86, dream 1.00; the frame-only one: real 0.22, dream
0.31); no test world was looked at before the figures were measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch

from hitchhiker.agents import home_recipe
from hitchhiker.agents.home_agent import HomeWalker
from hitchhiker.agents.home_dream import blocked_moves, play_dream_home
from hitchhiker.agents.home_recipe import POLICIES, HomeAgents
from hitchhiker.agents.judge import test_seeds
from hitchhiker.memory.memory_engine import MemoryEngine
from hitchhiker.metrics import mean_interval
from hitchhiker.recipe import Deps, Need
from hitchhiker.tokens import same_tokens_need, tokenizer_needs


@dataclass
class Config(home_recipe.Config):
    """Go-home agents taught by DAgger inside the memory dream (recipe "home_dream"); every
    other setting is recipe "home"'s, so that the two pairs differ in where they learned only."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        **home_recipe.Config.PRESETS,
        "smoke": {**home_recipe.Config.PRESETS["smoke"], "dream_batch": 4},
    }
    POSITIVE_INTS: ClassVar[tuple[str, ...]] = (*home_recipe.Config.POSITIVE_INTS, "dream_batch")

    name: str = "home_dream"
    """Model name: figures read "stage5.<name>.<figure>"."""
    dream_batch: int = 64
    """Walks dreamed at once (the memory engine's batch)."""
    dream_memory: str = "memory"
    """The Stage IV memory whose dream the students learn in (one of :data:`DREAM_MEMORIES`):
    ``"memory_walls"`` started from the engine that learned walls, and draws them."""

    def __post_init__(self):
        super().__post_init__()
        check_memory(self.dream_memory)


DREAM_MEMORIES = ("memory", "memory_walls")
"""The memories a go-home dream may be dreamed with."""


def check_memory(name: str) -> str:
    """``name``, or a clear error (before any dependency is trained for it)."""
    if name not in DREAM_MEMORIES:
        raise ValueError(
            f"dream_memory must name a Stage IV frame-bank memory, one of {DREAM_MEMORIES}; "
            f"got {name!r}"
        )
    return name


VARIANTS: dict[str, dict[str, Any]] = {
    "walls": {"dream_memory": "memory_walls", "name": "home_dream_walls"},
}
"""Config overrides of the zoo's variant "home_dream_walls": the same students, the same
teacher and worlds, dreamed by the memory that draws walls (Stage IV's ``memory_walls``)."""


def needs(values: dict[str, Any]) -> dict[str, Need]:
    """The tokenizer, and the memory model whose dream the students learn in."""
    return {
        **tokenizer_needs(values),
        "memory": same_tokens_need(check_memory(values["dream_memory"]), values),
    }


bind = home_recipe.bind
build = home_recipe.build


def engine_of(cfg: Config, deps: Deps) -> MemoryEngine:
    """The dream: the memory engine at its trained decoding settings, its bank on."""
    mem = deps["memory"]
    return MemoryEngine(mem, deps["tokenizer"], seed=cfg.seed, cfg=mem.shipped_config)


def dream_play(cfg: Config, deps: Deps):
    """``play`` for :func:`.home_agent.dagger`: a round's way back dreamed."""
    return partial(play_dream_home, engine_of(cfg, deps), batch=cfg.dream_batch)


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> HomeAgents:
    """Recipe "home"'s DAgger, each round's way back dreamed (module docstring)."""
    return home_recipe.teach_both(cfg, deps, run_dir, progress, dream_play(cfg, deps))


def evaluate(model: HomeAgents, cfg: Config, deps: Deps) -> dict[str, float]:
    """Recipe "home"'s figures (real success of each policy on the test worlds, memory minus no
    memory), then each policy's success in the dream on the same worlds, dream minus real, and
    the blocked moves of its dreamed ways back (module docstring)."""
    out = home_recipe.evaluate(model, cfg, deps)
    prefix, seeds = f"stage5.{cfg.name}", test_seeds(cfg.eval_episodes)
    play, tokenizer = dream_play(cfg, deps), deps["tokenizer"]
    for name in POLICIES:
        walker = HomeWalker(
            getattr(model, name), tokenizer, torch.Generator().manual_seed(cfg.seed)
        )
        dream, episodes = play(seeds, tokenizer, walker, **cfg.task)
        walls = [blocked_moves(ep, s, **cfg.task) for ep, s in zip(episodes, seeds)]
        in_dream, in_world = (np.concatenate(w) for w in zip(*walls))
        out[f"{prefix}.{name}.way_back_moves"] = float(len(in_world))
        n = max(len(in_world), 1)
        out[f"{prefix}.{name}.blocked_in_dream"] = float(in_dream.sum() / n)
        out[f"{prefix}.{name}.blocked_in_world"] = float(in_world.sum() / n)
        key = f"{prefix}.{name}.dream_success"
        out[key], out[f"{key}_ci95"] = mean_interval(dream)
        out[f"{prefix}.{name}.dream_minus_real"] = float(
            np.mean(dream) - out[f"{prefix}.{name}.success"]
        )
    return out
