"""Stage V's go-home agents: the same network learned with memory and without (recipe "home").

    python -m hitchhiker.zoo train home --preset cpu

Both policies of :mod:`.home_agent` are taught by the map-reading script with DAgger on go-home
episodes of the train worlds (``rounds`` rounds of ``episodes`` new worlds each, ``steps`` Adam steps
after each), one after the other; each keeps its weights and record in the run's folder as it ends,
so an interrupted run resumes after the last policy it finished.

The figures: success rate (mean and 95% interval, one episode per world) of each policy on
``eval_episodes`` test worlds, the first 64 of them the worlds the scripted go-home policies are
judged on, and the paired difference memory minus no memory, world by world. The settings were
picked on worlds of the val split; no test world was looked at before the figures were measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from hitchhiker.agents.agent_recipe import run_phase
from hitchhiker.agents.home_agent import HomePolicy, dagger, home_success
from hitchhiker.agents.judge import test_seeds
from hitchhiker.metrics import mean_interval
from hitchhiker.recipe import Deps, Need
from hitchhiker.tokens import TokenGrid, tokenizer_needs

POLICIES = ("memory", "no_memory")


class HomeAgents(nn.Module):
    """What the recipe ships: the go-home policy with memory and the one without."""

    def __init__(self, cfg: Config):
        super().__init__()
        grid = (cfg.tokens.grid_h, cfg.tokens.grid_w)
        self.memory = HomePolicy(cfg.tokens.vocab_size, grid, True, cfg.width)
        self.no_memory = HomePolicy(cfg.tokens.vocab_size, grid, False, cfg.width)


@dataclass
class Config:
    """Go-home agents taught by DAgger (recipe "home")."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "tokenizer": "oracle",
            "episodes": 4,
            "rounds": 2,
            "steps": 3,
            "eval_episodes": 4,
        },
        "cpu": {},
        "gpu": {"episodes": 512, "steps": 600},
        "large": {"episodes": 1024, "rounds": 6, "steps": 1000},
    }
    POSITIVE_INTS: ClassVar[tuple[str, ...]] = (
        "out_steps",
        "back_steps",
        "episodes",
        "rounds",
        "steps",
        "batch",
    )
    """The settings that must be positive ints (checked on construction)."""

    name: str = "home"
    """Model name: figures read "stage5.<name>.<figure>"."""
    tokenizer: str = "shipped"
    """Which tokenizer turns frames into the codes the policies read: "shipped" or "oracle"."""
    tokens: TokenGrid = field(default_factory=TokenGrid)
    """The tokenizer's vocabulary and grid (bound)."""
    out_steps: int = 8
    """Moves of the scripted walk out (GoHome's default)."""
    back_steps: int = 24
    """Moves allowed to come back (GoHome's default)."""
    episodes: int = 256
    """New train worlds per DAgger round (one episode each)."""
    rounds: int = 4
    """DAgger rounds: the teacher drives the first, the student the others."""
    steps: int = 300
    """Adam steps on the pooled episodes after each round."""
    batch: int = 32
    """Episodes per Adam step."""
    lr: float = 1e-3
    """Adam learning rate."""
    width: int = 128
    """Width D of the memory's GRU."""
    eval_episodes: int = 128
    """Test worlds the figures are measured on (one episode each; the first 64 are the scripted
    policies' worlds)."""
    seed: int = 0
    """Seed of initialisation, batches and sampled moves."""

    def __post_init__(self):
        for key in self.POSITIVE_INTS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int; got {value!r}")

    @property
    def task(self) -> dict[str, int]:
        return {"out_steps": self.out_steps, "back_steps": self.back_steps}


def needs(values: dict[str, Any]) -> dict[str, Need]:
    return tokenizer_needs(values)


def bind(values: dict[str, Any], deps: Deps) -> dict[str, Any]:
    return {"tokens": TokenGrid.of(deps["tokenizer"])}


def build(cfg: Config) -> HomeAgents:
    torch.manual_seed(cfg.seed)
    return HomeAgents(cfg)


def round_seeds(cfg: Config, policy: int):
    """The train worlds of each DAgger round; each policy its own, none met twice."""
    per_policy = cfg.rounds * cfg.episodes
    return lambda r: test_seeds(
        cfg.episodes, "train", first=(policy * per_policy + r * cfg.episodes)
    )


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> HomeAgents:
    return teach_both(cfg, deps, run_dir, progress)


def teach_both(cfg: Config, deps: Deps, run_dir=None, progress: bool = True, play=None):
    """Both policies taught by DAgger, one after the other, each round played by ``play``
    (:func:`.home_agent.dagger`'s: None, the real world)."""
    agents = build(cfg)
    done = {}
    for i, name in enumerate(POLICIES):
        policy = getattr(agents, name)

        def teach(policy=policy, i=i):
            log = dagger(
                policy,
                deps["tokenizer"],
                round_seeds(cfg, i),
                cfg.rounds,
                cfg.steps,
                cfg.batch,
                cfg.lr,
                cfg.seed,
                progress,
                play,
                **cfg.task,
            )
            return {"log": log}

        done[name] = run_phase(run_dir, name, policy, teach)
    agents.logs = {k: r["log"] for k, r in done.items()}
    agents.train_seconds = sum(r["seconds"] for r in done.values())
    return agents.eval()


def evaluate(model: HomeAgents, cfg: Config, deps: Deps) -> dict[str, float]:
    """Success of each policy on the test worlds and the paired difference (module docstring)."""
    prefix = f"stage5.{cfg.name}"
    seeds = test_seeds(cfg.eval_episodes)
    out = {f"{prefix}.episodes": float(cfg.eval_episodes)}
    got = {}
    for name in POLICIES:
        got[name] = home_success(
            getattr(model, name), deps["tokenizer"], seeds, cfg.seed, **cfg.task
        )
        out[f"{prefix}.{name}.success"], out[f"{prefix}.{name}.success_ci95"] = mean_interval(
            got[name]
        )
    key = f"{prefix}.memory_minus_no_memory"
    out[key], out[f"{key}_ci95"] = mean_interval(got["memory"] - got["no_memory"])
    if hasattr(model, "train_seconds"):
        out[f"{prefix}.train_minutes"] = model.train_seconds / 60
    return out
