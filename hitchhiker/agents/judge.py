"""Judged in the real world: returns of any policy on held-out worlds, and the same agent's dream.

A world model flatters the agents trained in it: an agent finds the places where the model is wrong
in its favour (Ha and Schmidhuber's car scored far higher in its dream than on the real track). So
Stage V's figures are *real* returns, on worlds of the test split nobody trained or tuned on, one
episode per world, mean and 95% interval over episodes (:func:`hitchhiker.metrics.mean_interval`);
beside each, the return the same agent gets in the dream started from the same first frames.

* :class:`TokenTaskVecEnv` — B real task episodes behind the vector API, observed as the tokenizer's
  codes of each frame (what the agent reads in the dream), same-step autoreset, worlds drawn in
  order from a split: the real-world trainer's environment.
* :func:`real_returns` — E episodes (worlds ``seeds``) played to the end by a learned agent (batched)
  or a scripted/random policy; returns (E,).
* :func:`dream_returns` — the same first frames, played in the dream: returns (E,).

Shapes: E episodes, B envs, h x w token grid.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from hitchhiker.agents.dream import DreamVecEnv, StartBank
from hitchhiker.agents.tasks import make_task
from hitchhiker.interactive.walls import MOVES
from hitchhiker.tokens import TokenGrid, encode_frames
from hitchhiker.world import ACTION_NAMES
from hitchhiker.world.dataset import episode_seed


def encode(tokenizer, frames: np.ndarray) -> np.ndarray:
    """uint8 frames (B, H, W, 3) -> token grids (B, h, w) int64."""
    with torch.inference_mode():
        return encode_frames(tokenizer, np.asarray(frames)).cpu().numpy().astype(np.int64)


class TokenTaskVecEnv(gym.vector.VectorEnv):
    """``num_envs`` real episodes of a task, observed as token grids; worlds of ``split`` in turn."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, task: str, tokenizer, num_envs: int = 64, split: str = "train", **task_kw):
        self.envs = [make_task(task, **task_kw) for _ in range(num_envs)]
        self.tokenizer, self.split, self.num_envs = tokenizer, split, num_envs
        grid = TokenGrid.of(tokenizer)
        self.single_observation_space = gym.spaces.Box(
            0, grid.vocab_size - 1, (grid.grid_h, grid.grid_w), np.int64
        )
        self.single_action_space = gym.spaces.Discrete(len(ACTION_NAMES))
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self.action_space = gym.spaces.MultiDiscrete([len(ACTION_NAMES)] * num_envs)
        self._next = 0

    def _reset_one(self, i: int) -> np.ndarray:
        frame, _ = self.envs[i].reset(seed=episode_seed(self.split, self._next))
        self._next += 1
        return frame

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._next = 0 if seed is None else int(seed) * self.num_envs
        frames = np.stack([self._reset_one(i) for i in range(self.num_envs)])
        return encode(self.tokenizer, frames), {}

    def step(self, actions):
        acts = np.asarray(actions)
        if acts.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} actions; got shape {acts.shape}")
        out = [env.step(int(a)) for env, a in zip(self.envs, acts)]
        frames = np.stack([o[0] for o in out])
        reward = np.array([o[1] for o in out], dtype=np.float32)
        terminated = np.array([o[2] for o in out])
        truncated = np.array([o[3] for o in out])
        done = terminated | truncated
        info = {}
        if done.any():
            info["final_obs"] = encode(self.tokenizer, frames)
            info["_final_obs"] = done
            for i in np.flatnonzero(done):
                frames[i] = self._reset_one(int(i))
        return encode(self.tokenizer, frames), reward, terminated, truncated, info


def test_seeds(episodes: int, split: str = "test", first: int = 0) -> list[int]:
    """World seeds of ``episodes`` episodes of ``split`` from episode ``first`` on (one episode per
    world)."""
    return [episode_seed(split, first + i) for i in range(episodes)]


def real_returns(task: str, policy, seeds, tokenizer=None, seed: int = 0, **task_kw) -> np.ndarray:
    """Return of each episode (world ``seeds[i]``) played to its end in the real world.

    ``policy``: a :class:`~.actor_critic.TokenPolicy` (reads token grids, needs ``tokenizer``;
    actions sampled, seeded) or a scripted one with ``reset(env, seed)`` / ``act(obs, info)``."""
    return real_play(task, policy, seeds, tokenizer, seed, **task_kw)[0]


def real_play(task: str, policy, seeds, tokenizer=None, seed: int = 0, **task_kw):
    """:func:`real_returns`' episodes, with what the world refused: per episode (E,) the return,
    the moves made (up, down, left, right) and, of those, the ones the world refused (the
    explorer's position did not change: water, rock, a house or a stuck sheep in the way)."""
    envs = [make_task(task, **task_kw) for _ in seeds]
    firsts = [env.reset(seed=s) for env, s in zip(envs, seeds)]
    frames = np.stack([f for f, _ in firsts])
    infos = [i for _, i in firsts]
    learned = isinstance(policy, torch.nn.Module)
    if learned and tokenizer is None:
        raise ValueError("a learned policy reads tokens: pass the tokenizer")
    if not learned:
        scripted = [type(policy)() for _ in seeds]
        for p, env, s in zip(scripted, envs, seeds):
            p.reset(env, s)
    gen = torch.Generator().manual_seed(seed)
    returns = np.zeros(len(seeds))
    moves, refused = np.zeros(len(seeds), np.int64), np.zeros(len(seeds), np.int64)
    live = np.ones(len(seeds), dtype=bool)
    while live.any():
        if learned:
            acts = policy.act(encode(tokenizer, frames), gen)
        else:
            acts = [p.act(f, i) for p, f, i in zip(scripted, frames, infos)]
        for i in np.flatnonzero(live):
            where = envs[i].unwrapped.position
            frame, r, term, trunc, info = envs[i].step(int(acts[i]))
            if int(acts[i]) in MOVES:
                moves[i] += 1
                refused[i] += envs[i].unwrapped.position == where
            frames[i], infos[i] = frame, info
            returns[i] += r
            live[i] = not (term or trunc)
    return returns, moves, refused


def dream_returns(
    policy, engine, heads, first_frames, steps: int, seed: int = 0, temperature: float | None = None
) -> np.ndarray:
    """Return of each episode played in the dream from the real first frame (E, H, W, 3) of its
    world, ``steps`` steps, rewards sampled from the heads (the agent's view of its success)."""
    starts = StartBank.from_frames(engine, first_frames)
    dream = DreamVecEnv(
        engine, heads, starts, num_envs=len(first_frames), horizon=steps, temperature=temperature
    )
    obs, _ = dream.reset(seed=seed, options={"starts": np.arange(len(first_frames))})
    gen = torch.Generator().manual_seed(seed)
    returns = np.zeros(len(first_frames))
    live = np.ones(len(first_frames), dtype=bool)
    for _ in range(steps):
        obs, r, term, trunc, _ = dream.step(policy.act(obs, gen))
        returns += r * live
        live &= ~(term | trunc)
        if not live.any():
            break
    return returns
