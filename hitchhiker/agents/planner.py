"""A planner through the dream: random-shooting model-predictive control, no policy to train.

Before an agent is trained in imagination, the world model can already act by looking ahead: at
every real step, imagine ``candidates`` random action sequences of ``depth`` steps from the real
history, score each by the reward heads' rewards along it, do the first action of the best, then
look again from the next *real* frame. Nagabandi et al., "Neural network dynamics for model-based
deep RL with model-free fine-tuning" (ICRA 2018) controlled with this random-shooting MPC; PlaNet
(Hafner et al., ICML 2019) refines the same search with the cross-entropy method. It is the cheap baseline of Stage V: the agent's skill is the world model's alone.

Because every plan starts again from the real frame, an error of the dream lives at most
``depth`` steps: the planner cannot learn to exploit a flaw the way a policy trained for many
updates inside the dream can (Stage V's exploitation figures).

    score(a_1..a_L) = sum_l gamma^(l-1) r_hat(s_l, a_l),  s_1 = the real window,
    s_{l+1} ~ the engine(s_l, a_l),  r_hat = argmax of the reward head

Every sequence's first action is one of the 6 in turn (``candidates`` >= 6 tries each first action
at least once); the rest are uniform. Ties go to a random candidate, so with no reward in sight the
planner walks like the random policy.

Shapes: B episodes, K candidates, L depth, T steps so far, N = h * w tokens, W context frames.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from hitchhiker.agents.dream import DreamVecEnv, StartBank
from hitchhiker.agents.tasks import make_task
from hitchhiker.world import ACTION_NAMES

A = len(ACTION_NAMES)


class ShootingPlanner:
    """Random-shooting MPC with ``engine`` and its ``heads`` (reward read as the heads' argmax)."""

    def __init__(
        self, engine, heads, candidates: int = 24, depth: int = 4, gamma: float = 0.985, seed=0
    ):
        if candidates < A:
            raise ValueError(
                f"candidates must be >= {A} (every first action once); got {candidates}"
            )
        if depth < 1:
            raise ValueError(f"depth must be >= 1; got {depth}")
        heads.check_engine(engine)
        self.engine, self.heads = engine, heads
        self.candidates, self.depth, self.gamma = candidates, depth, gamma
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)

    def sequences(self, b: int) -> np.ndarray:
        """(B * K, L) action sequences: first actions cycle through all A, the rest uniform."""
        seq = self.rng.integers(0, A, (b, self.candidates, self.depth))
        seq[:, :, 0] = np.arange(self.candidates) % A
        return seq.reshape(b * self.candidates, self.depth)

    @torch.no_grad()
    def plan(self, tokens: torch.Tensor, actions: torch.Tensor) -> np.ndarray:
        """The next world action (B,) of each episode from its real history: token ids
        (B, T+1, N) of the frames so far and the world actions (B, T) between them."""
        b, k = tokens.shape[0], self.candidates
        if actions.shape != (b, tokens.shape[1] - 1):
            raise ValueError(
                f"expected actions (B={b}, T={tokens.shape[1] - 1}) between the frames; "
                f"got {tuple(actions.shape)}"
            )
        ctx, acts = self.engine.window(tokens, actions)
        bank = StartBank(ctx.repeat_interleave(k, 0), acts.repeat_interleave(k, 0))
        dream = DreamVecEnv(
            self.engine, self.heads, bank, num_envs=b * k, horizon=self.depth, sample_heads=False
        )
        dream.reset(seed=int(self.rng.integers(2**31 - 1)), options={"starts": np.arange(b * k)})
        seq = self.sequences(b)
        score = np.zeros(b * k)
        for t in range(self.depth):
            score += self.gamma**t * dream.step(seq[:, t])[1]
        # ties (no reward in sight) go to a random candidate: the planner then walks at random
        # instead of always doing the first candidate's first action
        tie = self.rng.random(b * k) * 1e-6
        best = (score + tie).reshape(b, k).argmax(1)
        return seq.reshape(b, k, self.depth)[np.arange(b), best, 0]


def planner_returns(
    task: str, planner: ShootingPlanner, seeds, progress: bool = False, **task_kw
) -> np.ndarray:
    """Return of each real episode (world ``seeds[i]``) played by the planner, all in lockstep:
    the engine encodes each real frame, the planner looks ahead from the real history."""
    envs = [make_task(task, **task_kw) for _ in seeds]
    frames = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds)])
    engine = planner.engine
    tokens = engine.encode(frames)[:, None]  # (B, 1, N)
    actions = torch.zeros(len(seeds), 0, dtype=torch.long, device=engine.device)
    returns = np.zeros(len(seeds))
    live = np.ones(len(seeds), dtype=bool)
    w = engine.context + 1  # only the last W frames are read: keep W + 1, memory stays bounded
    bar = tqdm(desc="planning", disable=not progress)
    while live.any():
        acts = planner.plan(tokens, actions)
        for i in np.flatnonzero(live):
            frame, r, term, trunc, _ = envs[i].step(int(acts[i]))
            frames[i] = frame
            returns[i] += r
            live[i] = not (term or trunc)
        tokens = torch.cat([tokens, engine.encode(frames)[:, None]], 1)[:, -w:]
        step = torch.as_tensor(acts, dtype=torch.long, device=engine.device)[:, None]
        actions = torch.cat([actions, step], 1)[:, -(w - 1) :]
        bar.update()
    bar.close()
    return returns
