"""One training run is one draw: the dream-trained agents trained again, seed by seed, and judged
on the test worlds nobody tuned on.

The headline ratio of Stage V (dream-trained real return / the real-trained control's, goal 0.8) is
measured on one shipped agent, trained with seed 0. Its interval covers the worlds, not the
training: another seed draws other head batches, another policy initialisation and other dream
rollouts, and agents of one recipe differ by more than the worlds' interval (the learning curve's
seed study, :func:`~.agent_figures.seed_figures`, saw it on val worlds). So each recipe's
dream-trained agent (heads, then the actor-critic in the dream; the control is not retrained) is
trained again for every seed of ``untuned_seeds`` and judged on the ``untuned_episodes`` worlds
from ``untuned_first`` on, the same worlds as the headline:

    R(seed s) = mean_i G_s(i)          G_s(i): real return of seed s's agent in world i
    recipe    = mean_i Gbar(i),        Gbar(i) = mean_s G_s(i)   (seed-averaged, world by world)
    ratio     = mean_i Gbar(i) / mean_i C(i)   C: the shipped control (the recipe's own, seed 0)

The intervals are over worlds (the seeds' mean is fixed by the seeds run); the seeds' spread is
reported beside them. Seed ``cfg.seed`` is the shipped agent itself, as :func:`zoo.ship` trained
it; the others are trained by the recipe's own ``fit`` into run folders of their own (``runs/zoo/
<name>-<preset>-s<seed>``: an interrupted study resumes after the last phase each run finished) and
stored as the shipped file is (float16 weights) before they are judged.

Shapes: S seeds, E untuned worlds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hitchhiker import zoo
from hitchhiker.agents.agent_figures import seed_spread
from hitchhiker.agents.judge import real_returns, test_seeds
from hitchhiker.checkpoint import round_to_half
from hitchhiker.metrics import mean_interval, ratio_interval

RECIPES = ("agent", "agent_walls")
"""The recipes compared: the flower dream's agent and the agent of the dream with walls."""


def run_dir_of(name: str, preset: str, seed: int, runs: Path | None = None) -> Path:
    """Where seed ``seed``'s run of recipe ``name`` keeps its phases."""
    base = zoo.run_dir_of(name, preset, runs)
    return base.with_name(f"{base.name}-s{seed}")


def trained_again(name: str, preset: str, seed: int, runs: Path | None = None, progress=False):
    """Recipe ``name``'s dream-trained agent for ``seed`` (heads and dream, no control), stored
    as a shipped file would be (float16); (model, cfg)."""
    cfg, deps = zoo.prepare(name, preset, seed=seed)
    run_dir = run_dir_of(name, preset, seed, runs)
    zoo.claim_run_dir(run_dir, cfg, name, preset)
    model = zoo.recipe(name).fit(cfg, deps, run_dir=run_dir, progress=progress, control=False)
    round_to_half(model)
    return model, cfg


def seed_returns(name: str, shipped, cfg, preset: str, runs: Path | None = None):
    """({seed: real returns (E,) on the untuned worlds} of recipe ``name``'s dream-trained agents,
    the shipped model (``shipped``, trained with ``cfg``) among them; the shipped control's (E,))."""
    worlds = test_seeds(cfg.untuned_episodes, first=cfg.untuned_first)
    tokenizer = zoo.dependencies(name, cfg)["tokenizer"]

    def judged(policy):  # judged as the headline is: the recipe's judging seed, the same worlds
        return real_returns(cfg.task, policy, worlds, tokenizer, cfg.seed, steps=cfg.task_steps)

    by_seed = {}
    for seed in cfg.untuned_seeds:
        model = shipped if seed == cfg.seed else trained_again(name, preset, seed, runs)[0]
        by_seed[seed] = judged(model.policy.eval())
    return by_seed, judged(shipped.real_policy.eval())


def untuned_seed_figures(shipped: dict, preset: str, runs: Path | None = None) -> dict[str, float]:
    """Rows ``stage5.<name>.untuned_seeds.*`` of each recipe of ``shipped`` ({name: (model,
    cfg)}): each seed's real return on the untuned worlds, the seed-averaged return (interval over
    worlds), the lowest and highest seed, the ratio to the recipe's shipped control (where the
    control picked any flower); and, when both recipes are there, the walls agent minus the
    flower agent, world by world: seed-averaged, and of the shipped agents alone (row
    ``stage5.agent_walls.untuned.minus_agent``, one run each, judged here once for both)."""
    out, recipe_mean, shipped_run = {}, {}, {}
    for name, (model, cfg) in shipped.items():
        got, control = seed_returns(name, model, cfg, preset, runs)
        shipped_run[name] = got[cfg.seed]
        returns = np.stack([got[s] for s in sorted(got)])  # (S, E)
        key = f"stage5.{name}.untuned_seeds"
        for s in sorted(got):
            out[f"{key}.s{s}.real_return"] = float(got[s].mean())
        per_world = returns.mean(0)  # (E,) each world's seed mean
        recipe_mean[name] = per_world
        out[f"{key}.seeds"] = float(len(got))
        out.update(seed_spread(key, returns))
        out[f"{key}.real_trained"] = float(control.mean())
        if control.mean() > 0:  # undefined over a control that picked nothing (a smoke run)
            ratio = ratio_interval(per_world, control)
            out[f"{key}.over_real_trained"], out[f"{key}.over_real_trained_ci95"] = ratio
    if set(RECIPES) <= set(recipe_mean):
        for key, per_world in (
            ("untuned_seeds.minus_agent", recipe_mean),
            ("untuned.minus_agent", shipped_run),
        ):
            key = f"stage5.agent_walls.{key}"
            out[key], out[f"{key}_ci95"] = mean_interval(
                per_world["agent_walls"] - per_world["agent"]
            )
    return out
