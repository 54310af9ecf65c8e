"""Stage V's shipped agent: task heads on the masked dynamics, an actor-critic trained in the dream,
and its control, the same learner trained in the real world on as many real steps.

    python -m hitchhiker.zoo train agent --preset cpu

1. **Heads.** Record play on the train worlds with a behaviour policy that interacts often
   (``head_interact``), and fit :class:`~.heads.TaskHeads` on the shipped dynamics' features of
   every step (the dynamics stays frozen) with *every* action, each paid what the simulator says it
   would have paid there (:func:`~.tasks.action_rewards`): the rule "interact facing a grown flower
   pays" is then shown on every frame that faces one, and "a move never pays" on every frame.
2. **Dream-trained agent.** ``updates`` actor-critic updates, each on ``batch`` imagined rollouts of
   ``horizon`` steps started from real windows of the dynamics' own training play
   (:func:`~.actor_critic.train_in_dream`). It never touches the simulator.
3. **Real-trained control.** The same network and update, trained on real episodes of the task on
   the train worlds, for as many real steps as the world model saw: the dynamics' recorded play
   plus the heads' (``real_steps = 0`` counts them).

The figures (``evaluate``): real returns on ``eval_episodes`` held-out test worlds (mean and 95%
interval) of random, scripted, real-trained and dream-trained policies; the dream-trained agent's
dream return on the same first frames; the heads' agreement with the exact reward on real test play
and with the tile reader's reward on imagined frames; imagined transitions per second at batch 64.

Shapes: B rollouts, H horizon, h x w token grid, N = h * w, D dynamics width.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from hitchhiker.agents.actor_critic import (
    ActorCriticConfig,
    TokenPolicy,
    train_in_dream,
    train_in_world,
)
from hitchhiker.agents.closed_loop import closed_loop
from hitchhiker.agents.dream import DreamVecEnv, StartBank
from hitchhiker.agents.heads import TaskHeads, agreement, fit_heads, window_features
from hitchhiker.agents.judge import TokenTaskVecEnv, dream_returns, real_returns, test_seeds
from hitchhiker.agents.planner import ShootingPlanner, planner_returns
from hitchhiker.agents.scripted import FlowerScript, HomeScript, RandomPolicy
from hitchhiker.agents.tasks import TASKS, action_rewards, episode_rewards, pick_reward
from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.interactive.masked_dynamics_recipe import episode_tokens
from hitchhiker.metrics import mean_interval
from hitchhiker.recipe import Deps, Need
from hitchhiker.tokens import TokenGrid, encode_frames, tokenizer_needs
from hitchhiker.world import read_tiles
from hitchhiker.world.dataset import LEARNING_WORLD, record


class DreamAgent(nn.Module):
    """What the agent recipe ships: the task heads, the dream-trained policy and the real-trained
    control (same architecture)."""

    def __init__(self, cfg: Config):
        super().__init__()
        grid = grid_of(cfg)
        n = grid[0] * grid[1]
        self.heads = TaskHeads(cfg.dynamics_dim, n, cfg.engine, cfg.task)
        self.policy = TokenPolicy(cfg.tokens.vocab_size, grid)
        self.real_policy = TokenPolicy(cfg.tokens.vocab_size, grid)


@dataclass
class Config:
    """An agent trained in the dream of the masked dynamics (recipe "agent")."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "tokenizer": "oracle",
            "head_episodes": 8,
            "head_steps": 20,
            "updates": 2,
            "batch": 8,
            "eval_episodes": 4,
            "task_steps": 8,
            "planner_episodes": 2,
            "planner_candidates": 6,
            "planner_depth": 2,
            "temperatures": (1.0,),
            "loop_episodes": 2,
            "loop_refit_steps": 5,
            "loop_updates": 1,
        },
        "cpu": {},
        "gpu": {"updates": 600, "head_episodes": 2048},
        "large": {"updates": 2000, "head_episodes": 4096},
    }

    name: str = "agent"
    """Model name: figures read "stage5.<name>.<figure>"."""
    task: str = "flower_picker"
    """Which task (hitchhiker.agents.tasks.TASKS)."""
    tokenizer: str = "shipped"
    """Which tokenizer the dynamics reads: "shipped" or "oracle" (smoke)."""
    tokens: TokenGrid = field(default_factory=TokenGrid)
    """The tokenizer's vocabulary and grid (bound)."""
    engine: str = ""
    """Name of the dynamics engine the heads read (bound)."""
    dynamics_dim: int = 0
    """Width D of the dynamics' features (bound)."""
    dynamics_steps: int = 0
    """Real steps of the dynamics' training play (bound: episodes x steps)."""
    task_steps: int = 32
    """Steps of a flower-picker episode (real and judged in the dream)."""
    head_episodes: int = 2048
    """Recorded train-world episodes the heads learn from (512 gave a test recall of 0.43-0.67)."""
    head_interact: float = 0.3
    """Interact probability of the heads' behaviour policy (the dynamics' data: 0.05)."""
    head_steps: int = 8000
    """Optimiser steps of the heads (2048 episodes, 8000 steps: test recall 0.76, precision 0.90)."""
    updates: int = 150
    """Actor-critic updates in the dream."""
    horizon: int = 15
    """Imagined steps per rollout (DIAMOND: 15)."""
    batch: int = 64
    """Dreams stepped at once, B."""
    entropy: float = 3e-2
    """Entropy bonus (DIAMOND: 1e-3; 1e-2 with lr 3e-3 collapsed onto one action by 45 updates)."""
    lr: float = 1e-3
    """Actor-critic learning rate (3e-3 with entropy 1e-2 collapsed; see ``entropy``)."""
    dream_decode_steps: int = 1
    """MaskGIT steps per imagined frame (the engine's validation sweep: 1 step scores as 2)."""
    dream_temperature: float = 0.0
    """Token sampling temperature of the dream (0: argmax)."""
    real_steps: int = 0
    """Real transitions of the real-trained control (0: as many as the world model saw)."""
    eval_episodes: int = 64
    """Held-out test worlds the figures are measured on (one episode each)."""
    planner_episodes: int = 32
    """Held-out test worlds the planner is judged on (the first of ``eval_episodes``'s)."""
    planner_candidates: int = 12
    """Random action sequences the planner imagines per real step, K."""
    planner_depth: int = 3
    """Imagined steps of each planned sequence, L."""
    temperatures: tuple[float, ...] = (0.5, 1.0)
    """Dream sampling temperatures of the exploitation sweep (beside the dream's own)."""
    loop_rounds: int = 2
    """Rounds of the closed loop (play, refit the heads, train in the dream; :mod:`.closed_loop`)."""
    loop_episodes: int = 128
    """Real train-world episodes the agent plays per round (new worlds each round)."""
    loop_refit_steps: int = 1000
    """Optimiser steps refitting the heads on each round's play."""
    loop_updates: int = 30
    """Actor-critic updates in the refitted dream per round."""
    seed: int = 0
    """Seed of initialisation, rollouts and judging."""

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        if self.task != "flower_picker":
            raise ValueError("the agent recipe trains the flower picker (go home: notebook 07)")

    @property
    def actor_critic(self) -> ActorCriticConfig:
        return ActorCriticConfig(
            horizon=self.horizon, entropy=self.entropy, lr=self.lr, batch=self.batch
        )


def needs(values: dict[str, Any]) -> dict[str, Need]:
    """The tokenizer and the masked dynamics whose dream the agent lives in."""
    out = tokenizer_needs(values)
    if values["tokenizer"] == "shipped":
        out["dynamics"] = Need("dynamics")
    else:
        out["dynamics"] = Need("dynamics", "smoke", (("tokenizer", values["tokenizer"]),))
    return out


def bind(values: dict[str, Any], deps: Deps) -> dict[str, Any]:
    dyn = deps["dynamics"].shipped_config
    return {
        "tokens": TokenGrid.of(deps["tokenizer"]),
        "engine": dyn.name,
        "dynamics_dim": dyn.dim,
        "dynamics_steps": dyn.data.episodes * dyn.data.episode_steps,
    }


def build(cfg: Config) -> DreamAgent:
    torch.manual_seed(cfg.seed)
    return DreamAgent(cfg)


def engine_of(cfg: Config, deps: Deps) -> DynamicsEngine:
    """The dream's engine: the shipped dynamics at the dream's decoding settings."""
    dyn = deps["dynamics"]
    return DynamicsEngine(
        dyn,
        deps["tokenizer"],
        cfg.dream_decode_steps,
        cfg.dream_temperature,
        cfg.seed,
        cfg=dyn.shipped_config,
    )


def head_play(cfg: Config, tokenizer, split: str = "train", episodes: int | None = None):
    """(tokens (E, T+1, h, w), recording, exact rewards (E, T)) of the heads' behaviour play."""
    rec = record(
        split,
        episodes or cfg.head_episodes,
        cfg.task_steps,
        "random",
        world=LEARNING_WORLD,
        policy_kwargs={"interact_prob": cfg.head_interact},
        progress=False,
    )
    flat = rec.frames.reshape(-1, *rec.frames.shape[2:])
    tokens = encode_frames(tokenizer, flat).view(*rec.frames.shape[:2], *grid_of(cfg))
    return tokens, rec, episode_rewards(rec.positions, rec.headings, rec.actions, rec.tiles)


def head_data(cfg: Config, engine, tokenizer, split: str = "train"):
    """(features (M, N, D), rewards (M, A)) the heads learn from: every recorded step of the heads'
    play, M = E T, with what *each* of the A actions would have been paid there
    (:func:`~.tasks.action_rewards`). The features do not depend on the action (they are the
    current frame's, through its context), so one row serves all six."""
    tokens, rec, _ = head_play(cfg, tokenizer, split)
    feats = window_features(engine, tokens, torch.as_tensor(rec.actions))
    every = action_rewards(rec.positions, rec.headings, rec.actions, rec.tiles)  # (E, T, A)
    return feats, torch.as_tensor(every).flatten(0, 1)


def grid_of(cfg: Config) -> tuple[int, int]:
    return cfg.tokens.grid_h, cfg.tokens.grid_w


def real_steps_of(cfg: Config) -> int:
    """Real transitions the world model saw (dynamics' play + heads' play), or ``real_steps``."""
    return cfg.real_steps or cfg.dynamics_steps + cfg.head_episodes * cfg.task_steps


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> DreamAgent:
    agent = build(cfg)
    engine = engine_of(cfg, deps)
    tokenizer = deps["tokenizer"]
    t0 = time.perf_counter()
    feats, every = head_data(cfg, engine, tokenizer)
    ends = torch.zeros(len(feats))  # the flower picker never terminates
    agent.head_losses = fit_heads(
        agent.heads, feats, None, every, ends, steps=cfg.head_steps, seed=cfg.seed
    )
    dyn_cfg = deps["dynamics"].shipped_config
    dyn_tokens, dyn_rec = episode_tokens(dyn_cfg, "train", dyn_cfg.data.episodes, tokenizer)
    starts = StartBank.from_play(engine, dyn_tokens, torch.as_tensor(dyn_rec.actions))
    dream = DreamVecEnv(engine, agent.heads, starts, num_envs=cfg.batch, horizon=cfg.horizon)
    t1 = time.perf_counter()
    agent.dream_log = train_in_dream(
        agent.policy, dream, cfg.actor_critic, cfg.updates, cfg.seed, progress
    )
    agent.dream_seconds = time.perf_counter() - t1
    envs = TokenTaskVecEnv(cfg.task, tokenizer, cfg.batch, "train", steps=cfg.task_steps)
    agent.real_log = train_in_world(
        agent.real_policy, envs, cfg.actor_critic, real_steps_of(cfg), cfg.seed, progress
    )
    agent.train_seconds = time.perf_counter() - t0
    return agent.eval()


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
    for name, policy in policies.items():
        real = real_returns(cfg.task, policy, seeds, tokenizer, cfg.seed, steps=cfg.task_steps)
        out[f"{prefix}.{name}.real_return"], out[f"{prefix}.{name}.real_return_ci95"] = (
            mean_interval(real)
        )
        if isinstance(policy, nn.Module):
            dream = dream_returns(policy, engine, model.heads, first, cfg.task_steps, cfg.seed)
            out[f"{prefix}.{name}.dream_return"], out[f"{prefix}.{name}.dream_return_ci95"] = (
                mean_interval(dream)
            )
            out[f"{prefix}.{name}.dream_minus_real"] = float(np.mean(dream - real))
    dream_r, real_r = (
        out[f"{prefix}.dream_trained.real_return"],
        out[f"{prefix}.real_trained.real_return"],
    )
    if real_r > 0:  # a ratio only where it is defined: the manifest is strict JSON, no NaN
        out[f"{prefix}.dream_over_real_trained"] = dream_r / real_r
    rand = out[f"{prefix}.random.real_return"]
    if rand > 0:
        out[f"{prefix}.dream_over_random"] = dream_r / rand
    out[f"{prefix}.real_steps"] = float(real_steps_of(cfg))
    out.update(head_figures(cfg, deps, model.heads, prefix))
    dyn_cfg = deps["dynamics"].shipped_config
    dyn_tokens, dyn_rec = episode_tokens(dyn_cfg, "train", 8, tokenizer)
    starts = StartBank.from_play(engine, dyn_tokens, torch.as_tensor(dyn_rec.actions))
    out[f"{prefix}.imagined_per_second_b64"] = imagined_speed(cfg, deps, model.heads, starts)
    if hasattr(model, "dream_seconds"):
        out[f"{prefix}.dream_train_minutes"] = model.dream_seconds / 60
        out[f"{prefix}.train_minutes"] = model.train_seconds / 60
    out.update(planner_figures(model, cfg, deps, prefix))
    out.update(temperature_figures(model, cfg, deps, prefix, first, out))
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
        out[f"{prefix}.planner_over_random"] = float(real.mean() / rand.mean())
    return out


def loop_figures(model: DreamAgent, cfg: Config, deps: Deps) -> dict[str, float]:
    """The closed loop on a copy of the shipped agent: real and dream returns per round (round 0:
    the shipped agent), on the first ``eval_episodes`` test worlds."""
    engine = engine_of(cfg, deps)
    dyn_cfg = deps["dynamics"].shipped_config
    dyn_tokens, dyn_rec = episode_tokens(dyn_cfg, "train", dyn_cfg.data.episodes, deps["tokenizer"])
    starts = StartBank.from_play(engine, dyn_tokens, torch.as_tensor(dyn_rec.actions))
    log = closed_loop(
        model, cfg, engine, deps["tokenizer"], starts, cfg.loop_rounds, cfg.loop_episodes,
        cfg.loop_refit_steps, cfg.loop_updates, cfg.eval_episodes,
    )  # fmt: skip
    out = {}
    for row in log:
        key = f"stage5.{cfg.name}.loop.r{int(row['round'])}"
        out.update({f"{key}.{k}": v for k, v in row.items() if k != "round"})
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


def make_first(cfg: Config, seed: int) -> np.ndarray:
    """The real first frame of the task's episode in world ``seed``."""
    from hitchhiker.agents.tasks import make_task

    frame, _ = make_task(cfg.task, steps=cfg.task_steps).reset(seed=seed)
    return frame
