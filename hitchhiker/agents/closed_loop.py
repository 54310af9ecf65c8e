"""The loop closed: the agent's own real play teaches the world model what the agent will exploit.

A world model is fitted on someone else's play (random walks, a scripted picker); the agent then
goes where that play never went and finds the model's errors in its favour. Ha and Schmidhuber,
DreamerV3 and IRIS all close the loop: collect real play with the current agent, refit the world
model on it, train the agent again in the refitted dream, repeat. Each round is measured here in
the real world (held-out worlds) and in the dream, so the gap can be watched shrink or not.

One round, r = 1..R:

    play_r  = E_r real train-world episodes of the current policy (simulator truth recorded)
    heads  <- fine-tuned on the replay buffer (the heads' first data and play_1..play_r, drawn
              uniformly), every action's exact reward per step (:func:`~.tasks.action_rewards`)
    policy <- ``updates`` more actor-critic updates in the dream of the refitted heads
    figures: real return and dream return of the policy on held-out worlds

Thirty updates after one round of play move a policy a lot, so one loop is one draw: the benchmark
repeats it with ``loop_seeds`` seeds (each its own play, refits and dream training, all judged on
the same worlds) and reports the seed-averaged return per world, the spread between seeds and the
paired change of the last round against the shipped agent. Refitting on the round's play alone
(``replay=None``, what this module first did) let one seed in three collapse in a pilot on 64
validation worlds (0.52 flowers after round 2); with the buffer, as DreamerV3 and IRIS keep one,
no seed did (lowest 1.39), and it became the default.

What is refitted here is the reward model only; the masked dynamics stay frozen (refitting a
masked transformer per round costs hours on a 2-core CPU). So the loop can mend the heads'
errors, but not the dynamics' (a picked flower that the dream never turns to grass keeps paying).

Shapes: E episodes, T steps, h x w token grid, M = E T rows, A = 6 actions.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from hitchhiker.agents.actor_critic import train_in_dream
from hitchhiker.agents.agent_recipe import make_first
from hitchhiker.agents.dream import DreamVecEnv
from hitchhiker.agents.heads import fit_heads, window_features
from hitchhiker.agents.judge import dream_returns, encode, real_returns, test_seeds
from hitchhiker.agents.tasks import action_rewards, make_task
from hitchhiker.metrics import mean_interval
from hitchhiker.world.dataset import episode_seed


def own_play(policy, tokenizer, seeds, steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The flower picker played by ``policy`` (a token policy) on worlds ``seeds``, recorded:
    tokens (E, T+1, h, w), actions (E, T), positions (E, T+1, 2), headings (E, T+1),
    tiles (E, T+1, R, C), rewards (E, T)."""
    envs = [make_task("flower_picker", steps=steps) for _ in seeds]
    firsts = [env.reset(seed=s) for env, s in zip(envs, seeds)]
    frames = np.stack([f for f, _ in firsts])
    rows = {"positions": [], "headings": [], "tiles": []}

    def note(infos):
        rows["positions"].append(np.stack([i["position"] for i in infos]))
        rows["headings"].append(np.array([i["heading"] for i in infos]))
        rows["tiles"].append(np.stack([i["tiles"] for i in infos]))

    note([i for _, i in firsts])
    gen = torch.Generator().manual_seed(seed)
    tokens, actions, rewards = [encode(tokenizer, frames)], [], []
    for _ in range(steps):
        acts = np.asarray(policy.act(tokens[-1], gen))
        out = [env.step(int(a)) for env, a in zip(envs, acts)]
        frames = np.stack([o[0] for o in out])
        note([o[4] for o in out])
        tokens.append(encode(tokenizer, frames))
        actions.append(acts)
        rewards.append([o[1] for o in out])
    play = {k: np.stack(v, 1) for k, v in rows.items()}
    play["tokens"] = np.stack(tokens, 1)
    play["actions"] = np.stack(actions, 1).astype(np.int64)
    play["rewards"] = np.asarray(rewards, dtype=np.float32).T
    return play


def play_data(engine, play: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (M, N, D), rewards (M, A)) of recorded play: every step's dynamics features and
    what each action would have been paid there, exactly."""
    acts = torch.as_tensor(play["actions"])
    feats = window_features(engine, torch.as_tensor(play["tokens"]), acts)
    every = action_rewards(play["positions"], play["headings"], play["actions"], play["tiles"])
    return feats, torch.as_tensor(every).flatten(0, 1)


def refit_heads(heads, engine, play: dict[str, np.ndarray], steps: int, seed: int = 0, replay=None):
    """Fine-tune ``heads`` on recorded play: every step's features, every action's exact reward,
    drawn uniformly together with ``replay`` ((features, rewards) of earlier data) when given.
    Returns the losses and the data fitted (the replay buffer grown by this play)."""
    feats, every = play_data(engine, play)
    if replay is not None:
        feats, every = torch.cat([replay[0], feats]), torch.cat([replay[1], every])
    zeros = torch.zeros(len(feats))  # the flower picker never ends early
    return fit_heads(heads, feats, None, every, zeros, steps=steps, seed=seed), (feats, every)


def closed_loop(
    model,
    cfg,
    engine,
    tokenizer,
    starts,
    rounds: int = 2,
    episodes: int = 128,
    refit_steps: int = 1000,
    updates: int = 30,
    judge_episodes: int = 64,
    progress: bool = False,
    seed: int | None = None,
    round0: dict | None = None,
    replay: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[dict]:
    """``rounds`` rounds of play, refit, retrain on a copy of ``model`` (a DreamAgent: ``policy``
    and ``heads``; the shipped one is left untouched). ``starts``: the dream's real starts
    (:class:`~.dream.StartBank`). ``seed`` (default ``cfg.seed``) seeds the rounds' play, refits
    and dream training; judging always uses ``cfg.seed``, so two loops differ only in what they
    learned. ``round0``: the shipped agent's row when it was judged already (a repeat of the loop
    with another seed reuses it). ``replay``: the heads' first data
    (:func:`~.agent_recipe.head_data`); given, each refit draws from it and every round's play so
    far (a replay buffer that grows, as in DreamerV3 and IRIS); None: each refit sees its round's
    play only. Returns one dict per round, round 0 first (before any refit): round,
    real_return(_ci95), dream_return(_ci95), dream_minus_real, play_return (the mean return of the
    round's own play), head_loss (last refit loss), and ``real`` / ``dream``: the per-world returns
    (arrays, one per judged world)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1; got {rounds}")
    seed = cfg.seed if seed is None else int(seed)
    policy, heads = copy.deepcopy(model.policy), copy.deepcopy(model.heads)
    seeds = test_seeds(judge_episodes)
    first = np.stack([make_first(cfg, s) for s in seeds])

    def judge(r: int, extra: dict) -> dict:
        real = real_returns(cfg.task, policy, seeds, tokenizer, cfg.seed, steps=cfg.task_steps)
        dream = dream_returns(policy, engine, heads, first, cfg.task_steps, cfg.seed)
        out = {"round": float(r), **extra, "real": real, "dream": dream}
        out["real_return"], out["real_return_ci95"] = mean_interval(real)
        out["dream_return"], out["dream_return_ci95"] = mean_interval(dream)
        out["dream_minus_real"] = float(np.mean(dream - real))
        return out

    log = [judge(0, {}) if round0 is None else round0]
    for r in range(1, rounds + 1):
        # Train-split worlds the heads' first data did not use (a fresh block per round).
        first_world = cfg.head_episodes + (r - 1) * episodes
        play_seeds = [episode_seed("train", first_world + i) for i in range(episodes)]
        play = own_play(policy, tokenizer, play_seeds, cfg.task_steps, seed + r)
        losses, fitted = refit_heads(heads, engine, play, refit_steps, seed + r, replay)
        if replay is not None:  # the buffer keeps this round's play
            replay = fitted
        dream = DreamVecEnv(engine, heads, starts, num_envs=cfg.batch, horizon=cfg.horizon)
        train_in_dream(policy, dream, cfg.actor_critic, updates, seed + r, progress)
        extra = {"play_return": float(play["rewards"].sum(1).mean()), "head_loss": losses[-1]}
        log.append(judge(r, extra))
    return log
