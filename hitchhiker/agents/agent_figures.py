"""The agent's figures: every policy judged in the real world, the heads, the dream's speed, the
planner, the temperature sweep, the closed loop and the learning curve in the dream (the
``evaluate`` of :mod:`.agent_recipe`).

Each figure is a mean over held-out test worlds (one episode each) with its 95% interval, named
``stage5.<name>.<figure>``; :mod:`hitchhiker.agents.benchmark` lists them as benchmark rows.

Shapes: E episodes, T steps, h x w token grid, N = h * w.
"""

from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np
import torch
from torch import nn

from hitchhiker.agents.actor_critic import train_in_dream
from hitchhiker.agents.agent_recipe import (
    Config,
    DreamAgent,
    build,
    dream_starts,
    engine_of,
    head_play,
    make_first,
    real_steps_of,
)
from hitchhiker.agents.closed_loop import (
    closed_loop,
    dynamics_play,
    own_play,
    picks_cleared,
)
from hitchhiker.agents.dream import DreamVecEnv, StartBank
from hitchhiker.agents.heads import TaskHeads, agreement, recorded_play, window_features
from hitchhiker.agents.judge import dream_returns, real_returns, test_seeds
from hitchhiker.agents.planner import ShootingPlanner, planner_returns
from hitchhiker.agents.scripted import FlowerScript, HomeScript, RandomPolicy
from hitchhiker.agents.tasks import pick_reward
from hitchhiker.metrics import mean_interval, ratio_interval
from hitchhiker.recipe import Deps
from hitchhiker.world import read_tiles


def imagined_speed(cfg: Config, deps: Deps, heads: TaskHeads, starts: StartBank, steps=8):
    """Imagined transitions per second of a batch-64 dream (random actions, heads included)."""
    dream = DreamVecEnv(engine_of(cfg, deps), heads, starts, num_envs=64, horizon=10**6)
    dream.reset(seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dream.step(rng.integers(0, 6, 64))  # warm up
    t = time.perf_counter()
    for _ in range(steps):
        dream.step(rng.integers(0, 6, 64))
    return 64 * steps / (time.perf_counter() - t)


RATIO_ORDER = ("random", "real_trained", "dream_trained")
"""The policies :func:`dream_ratios` compares, in the order of its arguments."""


def untuned_figures(cfg: Config, tokenizer, policies: dict, prefix: str) -> dict[str, float]:
    """Random, real-trained and dream-trained on ``untuned_episodes`` test worlds from
    ``untuned_first`` on, which nobody looked at while the actor-critic's settings were chosen (the
    pilots judged on the first test worlds): real returns, the ratios, and the paired difference
    dream-trained minus real-trained, world by world, with its interval."""
    seeds = test_seeds(cfg.untuned_episodes, first=cfg.untuned_first)
    got, out = {}, {}
    for name in RATIO_ORDER:
        got[name] = real_returns(
            cfg.task, policies[name], seeds, tokenizer, cfg.seed, steps=cfg.task_steps
        )
        key = f"{prefix}.untuned.{name}.real_return"
        out[key], out[f"{key}_ci95"] = mean_interval(got[name])
    key = f"{prefix}.untuned.dream_minus_real_trained"
    out[key], out[f"{key}_ci95"] = mean_interval(got["dream_trained"] - got["real_trained"])
    return {**out, **dream_ratios(f"{prefix}.untuned", *(got[k] for k in RATIO_ORDER))}


def seed_spread(key: str, real: np.ndarray) -> dict[str, float]:
    """Real returns of several training runs on the same worlds, ``real`` (S seeds, E worlds), as
    rows: ``{key}.real_return`` (seed-averaged world by world, with its interval over worlds) and
    ``{key}.seed_min`` / ``.seed_max`` (the lowest and highest seed's mean return)."""
    per_seed = real.mean(1)  # (S,)
    mean, ci = mean_interval(real.mean(0))
    return {
        f"{key}.real_return": mean,
        f"{key}.real_return_ci95": ci,
        f"{key}.seed_min": float(per_seed.min()),
        f"{key}.seed_max": float(per_seed.max()),
    }


def dream_ratios(prefix: str, random, real_trained, dream) -> dict[str, float]:
    """The dream-trained agent's mean real return over the real-trained one's and over random's,
    from per-world real returns (E,) on the same worlds, each with the half-width of its 95%
    interval (paired: :func:`~hitchhiker.metrics.ratio_interval`), and each only where it is defined
    (the manifest is strict JSON: no NaN)."""
    out = {}
    for name, other in (("real_trained", real_trained), ("random", random)):
        if np.mean(other) > 0:
            key = f"{prefix}.dream_over_{name}"
            out[key], out[f"{key}_ci95"] = ratio_interval(dream, other)
    return out


def head_figures(cfg: Config, deps: Deps, heads: TaskHeads, prefix: str) -> dict[str, float]:
    """The heads against the exact reward on real test play, and against the tile reader's reward
    on imagined frames of the same starts (argmax heads: what they believe)."""
    engine = engine_of(cfg, deps)
    tokens, rec, rewards = head_play(cfg, deps["tokenizer"], "test", cfg.eval_episodes)
    acts = torch.as_tensor(rec.actions)
    feats = window_features(engine, tokens, acts)
    with torch.no_grad():
        believed = heads(feats.float(), acts.flatten())[0].argmax(1).numpy()
    out = {f"{prefix}.head_real_{k}": v for k, v in agreement(believed, rewards.ravel()).items()}
    # Imagination: each test episode's first real frames, then its recorded actions, imagined.
    starts = StartBank.from_frames(engine, rec.frames[:, 0])
    dream = DreamVecEnv(
        engine, heads, starts, num_envs=len(starts), horizon=cfg.task_steps, sample_heads=False
    )
    obs, _ = dream.reset(seed=cfg.seed, options={"starts": np.arange(len(starts))})
    frames, head_r = [dream.render()], []
    for t in range(cfg.task_steps):
        _, r, *_ = dream.step(rec.actions[:, t])
        head_r.append(r)
        frames.append(dream.render())
    reading = read_tiles(np.stack(frames, 1))
    reader_r = pick_reward(
        reading.kinds[:, :-1], reading.heading[:, :-1], rec.actions, reading.kinds[:, 1:]
    )
    out.update(
        {f"{prefix}.head_dream_{k}": v for k, v in agreement(np.stack(head_r, 1), reader_r).items()}
    )
    return out


def evaluate(model: DreamAgent, cfg: Config, deps: Deps) -> dict[str, float]:
    prefix = f"stage5.{cfg.name}"
    tokenizer, engine = deps["tokenizer"], engine_of(cfg, deps)
    seeds = test_seeds(cfg.eval_episodes)
    out: dict[str, float] = {}
    scripted = {"flower_picker": FlowerScript, "go_home": HomeScript}[cfg.task]
    policies = {
        "random": RandomPolicy(),
        "scripted": scripted(),
        "real_trained": model.real_policy,
        "dream_trained": model.policy,
    }
    first = np.stack([make_first(cfg, s) for s in seeds])
    real_of = {}
    for name, policy in policies.items():
        real = real_returns(cfg.task, policy, seeds, tokenizer, cfg.seed, steps=cfg.task_steps)
        real_of[name] = real
        out[f"{prefix}.{name}.real_return"], out[f"{prefix}.{name}.real_return_ci95"] = (
            mean_interval(real)
        )
        if isinstance(policy, nn.Module):
            dream = dream_returns(policy, engine, model.heads, first, cfg.task_steps, cfg.seed)
            out[f"{prefix}.{name}.dream_return"], out[f"{prefix}.{name}.dream_return_ci95"] = (
                mean_interval(dream)
            )
            out[f"{prefix}.{name}.dream_minus_real"] = float(np.mean(dream - real))
    out.update(dream_ratios(prefix, *(real_of[k] for k in RATIO_ORDER)))
    out.update(untuned_figures(cfg, tokenizer, policies, prefix))
    out[f"{prefix}.real_steps"] = float(real_steps_of(cfg))
    out.update(head_figures(cfg, deps, model.heads, prefix))
    starts = dream_starts(engine, deps, episodes=8)
    out[f"{prefix}.imagined_per_second_b64"] = imagined_speed(cfg, deps, model.heads, starts)
    if hasattr(model, "dream_seconds"):
        out[f"{prefix}.dream_train_minutes"] = model.dream_seconds / 60
        out[f"{prefix}.train_minutes"] = model.train_seconds / 60
    out.update(planner_figures(model, cfg, deps, prefix))
    out.update(temperature_figures(model, cfg, deps, prefix, first, out))
    return out


def curve_figures(model: DreamAgent, cfg: Config, deps: Deps, progress: bool = False) -> dict:
    """The learning curve in the dream: a fresh policy (the recipe's initialisation and seed)
    trained in the shipped dream with the shipped heads for ``curve_updates`` updates, as
    :func:`~.agent_recipe.fit` trains it; every ``curve_every`` updates a copy is judged on
    ``curve_worlds`` val worlds. Rows per snapshot n: the real return (mean and 95% interval), and
    over the updates since the last snapshot the mean dream return of the training rollouts
    (``horizon`` imagined steps each, so on another scale than the real ``task_steps``-step
    episodes), the policy's entropy and the critic's loss; and the real-trained control on the same
    val worlds, for the ratio."""
    prefix = f"stage5.{cfg.name}.curve"
    seeds = test_seeds(cfg.curve_worlds, split="val")
    tokenizer = deps["tokenizer"]

    def judge(policy) -> np.ndarray:
        return real_returns(cfg.task, policy, seeds, tokenizer, cfg.seed, steps=cfg.task_steps)

    out = {}
    out[f"{prefix}.real_trained"], out[f"{prefix}.real_trained_ci95"] = mean_interval(
        judge(model.real_policy)
    )

    def snapshot(n: int, policy, log: list[dict]) -> None:
        if n % cfg.curve_every:
            return
        key = f"{prefix}.u{n:03d}"
        out[f"{key}.real_return"], out[f"{key}.real_return_ci95"] = mean_interval(
            judge(copy.deepcopy(policy).eval())
        )
        for name in ("return", "entropy", "value_loss"):  # of the updates since the last snapshot
            got = float(np.mean([f[name] for f in log[-cfg.curve_every :]]))
            out[f"{key}.{'dream_return' if name == 'return' else name}"] = got

    engine = engine_of(cfg, deps)
    policy = build(cfg).policy  # the fresh policy fit starts from
    dream = DreamVecEnv(
        engine, model.heads, dream_starts(engine, deps), num_envs=cfg.batch, horizon=cfg.horizon
    )
    train_in_dream(
        policy,
        dream,
        cfg.actor_critic,
        cfg.curve_updates,
        cfg.seed,
        progress,
        after_update=snapshot,
    )
    return out


SEED_SETTINGS = {"shipped": {}, "cleanrl": {"value_coef": 0.5, "max_grad_norm": 0.5}}
"""The critic settings :func:`seed_figures` compares: the recipe's, and cleanrl's PPO defaults (the
critic's loss at half weight, each step's gradient norm clipped at 0.5 instead of 10)."""


def seed_figures(
    model: DreamAgent, cfg: Config, deps: Deps, curve: dict | None = None, progress: bool = False
) -> dict:
    """The learning curve of :func:`curve_figures` again, once per seed of ``seed_study`` under
    each of :data:`SEED_SETTINGS`, judged every ``seed_study_every`` updates: one curve is one run,
    and a recipe is only as good as its runs. The seed sets the policy's initialisation, the
    dreams' starts and sampling, and the judging's action draws (the val worlds stay the same).
    ``curve``, the rows of :func:`curve_figures` for ``cfg`` itself, stands in for the recipe's
    own seed with the recipe's settings: that run is the same run, snapshot for snapshot.
    Rows ``stage5.<name>.seeds.<setting>.s<seed>.u<n>.<figure>``, the control per seed
    (``seeds.s<seed>.real_trained``), and per setting and snapshot the mean real return over the
    seeds."""
    prefix, head = f"stage5.{cfg.name}.seeds", f"stage5.{cfg.name}.curve"
    ns = range(cfg.seed_study_every, cfg.curve_updates + 1, cfg.seed_study_every)
    kept = (".real_trained", *(f".u{n:03d}." for n in ns))
    out = {}
    for setting, changes in SEED_SETTINGS.items():
        for seed in cfg.seed_study:
            if curve is not None and not changes and seed == cfg.seed:
                got = curve
            else:
                run = dataclasses.replace(
                    cfg, seed=seed, curve_every=cfg.seed_study_every, **changes
                )
                got = curve_figures(model, run, deps, progress)
            for key, value in got.items():
                if not any(k in key for k in kept):
                    continue
                at = (
                    f"{prefix}.s{seed}" if ".real_trained" in key else f"{prefix}.{setting}.s{seed}"
                )
                out[at + key[len(head) :]] = value
        for n in ns:
            real = [
                out[f"{prefix}.{setting}.s{seed}.u{n:03d}.real_return"] for seed in cfg.seed_study
            ]
            out[f"{prefix}.{setting}.u{n:03d}.mean"] = float(np.mean(real))
    return out


def planner_figures(model: DreamAgent, cfg: Config, deps: Deps, prefix: str) -> dict[str, float]:
    """Real return of random-shooting MPC through the dream (no policy trained), on the first
    ``planner_episodes`` test worlds, and the random policy's on the same worlds."""
    planner = ShootingPlanner(
        engine_of(cfg, deps), model.heads, cfg.planner_candidates, cfg.planner_depth, seed=cfg.seed
    )
    seeds = test_seeds(cfg.planner_episodes)
    real = planner_returns(cfg.task, planner, seeds, steps=cfg.task_steps)
    rand = real_returns(cfg.task, RandomPolicy(), seeds, seed=cfg.seed, steps=cfg.task_steps)
    out = {}
    out[f"{prefix}.planner.real_return"], out[f"{prefix}.planner.real_return_ci95"] = mean_interval(
        real
    )
    if rand.mean() > 0:
        key = f"{prefix}.planner_over_random"
        out[key], out[f"{key}_ci95"] = ratio_interval(real, rand)
    return out


def loop_figures(model: DreamAgent, cfg: Config, deps: Deps) -> dict[str, float]:
    """The closed loop on copies of the shipped agent and engine, ``loop_seeds`` times with different
    seeds, judged on the first ``eval_episodes`` test worlds. Per round: the real return averaged
    over seeds world by world (mean, 95% interval over worlds), the lowest and highest seed's mean,
    the dream return likewise and dream minus real, and the share of the shipped agent's real picks
    on those worlds that the round's dream clears (:func:`~.closed_loop.picks_cleared`, averaged over
    seeds pick by pick, then per world: the mean over worlds with a pick); then the last round minus
    the shipped agent, world by world (seed-averaged, with its interval)."""
    engine = engine_of(cfg, deps)
    starts = dream_starts(engine, deps)
    tokenizer = deps["tokenizer"]
    replay = dynamics_replay = None
    if cfg.loop_replay:
        replay = [recorded_play(*head_play(cfg, tokenizer, episodes=cfg.loop_replay_episodes)[:2])]
        dynamics_replay = [dynamics_play(engine, tokenizer)] if cfg.loop_dynamics_steps else None
    seeds = test_seeds(cfg.eval_episodes)
    picks = own_play(model.policy, tokenizer, seeds, cfg.task_steps, cfg.seed)
    world = np.nonzero(picks["rewards"] > 0)[0]  # the world of each pick, in picks_cleared's order

    def probe(eng) -> dict:
        return {"cleared": picks_cleared(eng, picks)}

    logs, round0 = [], None
    for k in range(cfg.loop_seeds):
        log = closed_loop(
            model,
            cfg,
            engine,
            tokenizer,
            starts,
            cfg.loop_rounds,
            cfg.loop_episodes,
            cfg.loop_refit_steps,
            cfg.loop_updates,
            cfg.eval_episodes,
            seed=cfg.seed + 1000 * k,
            round0=round0,
            replay=replay,
            dynamics_steps=cfg.loop_dynamics_steps,
            dynamics_replay=dynamics_replay,
            dynamics_lr=cfg.loop_dynamics_lr,
            paid_share=cfg.loop_paid_share,
            probe=probe,
        )
        logs.append(log)
        round0 = log[0]  # the shipped agent, judged once
    prefix = f"stage5.{cfg.name}.loop"
    out = {
        f"{prefix}.seeds": float(cfg.loop_seeds),
        f"{prefix}.picks": float(picks["rewards"].sum()),
    }
    for r in range(cfg.loop_rounds + 1):
        real = np.stack([log[r]["real"] for log in logs])  # (seeds, worlds)
        key = f"{prefix}.r{r}"
        out.update(seed_spread(key, real))
        dream = np.stack([log[r]["dream"] for log in logs]).mean(0)
        out[f"{key}.dream_return"], out[f"{key}.dream_return_ci95"] = mean_interval(dream)
        out[f"{key}.dream_minus_real"] = float(dream.mean() - real.mean())
        cleared = np.stack([log[r]["cleared"] for log in logs]).mean(0)  # (picks,)
        if len(cleared):  # a smoke run may pick nothing
            # per world (the unit of the intervals), over the worlds where the agent picked
            share = [cleared[world == w].mean() for w in np.unique(world)]
            out[f"{key}.picks_cleared"], out[f"{key}.picks_cleared_ci95"] = mean_interval(share)
    last = np.stack([log[-1]["real"] - log[0]["real"] for log in logs]).mean(0)
    key = f"{prefix}.last_minus_shipped"
    out[key], out[f"{key}_ci95"] = mean_interval(last)
    return out


def temperature_figures(model, cfg: Config, deps: Deps, prefix: str, first, out) -> dict:
    """World Models' sweep: the dream-trained agent's dream return at each sampling temperature of
    the dream, from the same first frames as its real return (which the temperature cannot
    change), and the gap between them."""
    real = out[f"{prefix}.dream_trained.real_return"]
    res = {}
    for temp in cfg.temperatures:
        engine = engine_of(cfg, deps)
        dream = dream_returns(
            model.policy, engine, model.heads, first, cfg.task_steps, cfg.seed, temperature=temp
        )
        key = f"{prefix}.dream_trained.t{temp:g}"
        res[f"{key}.dream_return"], res[f"{key}.dream_return_ci95"] = mean_interval(dream)
        res[f"{key}.dream_minus_real"] = float(dream.mean() - real)
    return res
