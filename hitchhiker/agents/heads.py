"""Reward and termination heads on the masked dynamics: the world model learns the task too.

An agent trained in imagination never sees the simulator's reward: the world model must predict it.
DIAMOND trains a separate reward/termination model; DreamerV3 puts reward and continue heads on its
latent state. Ours read the masked dynamics' own representation (:mod:`hitchhiker.interactive.
masked_dynamics_model`): the core output of the *current* frame, which has attended to the context
frames before it, so the heads cost one small MLP on top of the context pass the engine runs anyway:

    f = core(tokens of z[t-W+1..t], actions)[frame t]          (N, D), frozen dynamics
    p(r_t | f, a_t) = softmax(MLP([proj(f) flattened, onehot(a_t)]))   reward classes {0, +1}
    p(d_t | f, a_t) = softmax(MLP(...))                                 terminated after the step

Both are *sampled* in imagination (DIAMOND's choice): an argmax head would never pay a reward it is
70% sure of, and an agent would learn to chase the 51% cases. The heads are trained with the dynamics
frozen, on recorded play whose rewards come from the simulator (:func:`~.tasks.episode_rewards`);
the behaviour policy may interact more often than the dynamics' data did, which gives more picks to
learn from without biasing p(r | f, a) (the head conditions on the action).

Shapes: B batch, W context frames, N = h * w tokens per frame, D dynamics width, A = 6 actions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hitchhiker.agents.tasks import TERMINATES, action_rewards, episode_rewards
from hitchhiker.interactive.masked_dynamics_recipe import WindowDataset
from hitchhiker.world import ACTION_NAMES


class TaskHeads(nn.Module):
    """Reward (2 classes: 0, +1) and termination (2 classes) logits from dynamics features.

    ``engine`` names the dynamics model the heads were fitted on; a dream refuses heads of another
    engine (their features would mean nothing)."""

    def __init__(self, dim: int, tokens: int, engine: str, task: str, proj: int = 8, hidden=128):
        super().__init__()
        if task not in TERMINATES:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TERMINATES)}")
        self.dim, self.tokens, self.engine, self.task = dim, tokens, engine, task
        self.terminates = TERMINATES[task]
        self.proj = nn.Linear(dim, proj)
        self.mlp = nn.Sequential(
            nn.Linear(tokens * proj + len(ACTION_NAMES), hidden), nn.ReLU(), nn.Linear(hidden, 4)
        )

    def forward(self, features: torch.Tensor, actions: torch.Tensor):
        """features (B, N, D), world actions (B,) -> (reward logits (B, 2), end logits (B, 2))."""
        if features.ndim != 3 or features.shape[1:] != (self.tokens, self.dim):
            raise ValueError(
                f"heads of {self.engine!r} read features (B, {self.tokens}, {self.dim}); "
                f"got {tuple(features.shape)}: were they fitted on another engine?"
            )
        x = self.proj(features.float()).flatten(1)
        a = F.one_hot(actions.long(), len(ACTION_NAMES)).float()
        out = self.mlp(torch.cat([x, a], 1))
        return out[:, :2], out[:, 2:]

    def check_engine(self, engine) -> None:
        """Refuse to run behind an engine the heads were not fitted on."""
        if engine.name != self.engine:
            raise ValueError(
                f"these {self.task} heads were fitted on the engine {self.engine!r}, not "
                f"{engine.name!r}: fit heads for it (hitchhiker.agents.heads.fit_heads)"
            )

    @torch.no_grad()
    def sample(self, features, actions, generator=None, sample: bool = True):
        """(reward (B,) float, terminated (B,) bool): drawn from the heads, or their argmax."""
        reward_logits, end_logits = self(features, actions)
        if not sample:
            return reward_logits.argmax(1).float(), end_logits.argmax(1).bool()
        pr = reward_logits.softmax(1)[:, 1]
        pe = end_logits.softmax(1)[:, 1]
        u = torch.rand(2, len(pr), generator=generator, device=pr.device)
        return (u[0] < pr).float(), u[1] < pe


@torch.inference_mode()
def window_features(engine, tokens, actions, batch: int = 256) -> torch.Tensor:
    """Dynamics features (E T, N, D) half precision of every step t of recorded episodes: the
    current frame t seen through its context. tokens (E, T+1, h, w), world actions (E, T)."""
    model = engine.model
    codes = engine.model_actions(actions).cpu()
    data = WindowDataset(tokens.cpu(), codes, engine.context, engine.cfg.pad_action)
    out = []
    for start in range(0, len(data), batch):
        items = [data[i] for i in range(start, min(len(data), start + batch))]
        ctx = torch.stack([it["tokens"][:-1] for it in items]).flatten(2).to(engine.device)
        acts = torch.stack([it["actions"][:-1] for it in items]).to(engine.device)
        acts[:, 0] = model.none_action
        n = ctx.shape[2]
        out.append(model.hidden(ctx, acts)[:, -n:].half().cpu())
    return torch.cat(out)


def recorded_play(tokens, rec) -> dict[str, np.ndarray]:
    """Recorded episodes (tokens (E, T+1, h, w), a :class:`~hitchhiker.world.dataset.Recording`) in
    :func:`~.closed_loop.own_play`'s format, their exact flower-picker rewards included."""
    play = {k: getattr(rec, k) for k in ("positions", "headings", "tiles")}
    play["tokens"] = np.asarray(tokens)
    play["actions"] = np.asarray(rec.actions, dtype=np.int64)
    play["rewards"] = episode_rewards(rec.positions, rec.headings, rec.actions, rec.tiles)
    return play


def play_data(engine, play: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (M, N, D), rewards (M, A)) the heads learn from: every recorded step of ``play``
    (M = E T) with what *each* of the A actions would have been paid there, exactly
    (:func:`~.tasks.action_rewards`). The features do not depend on the action (they are the
    current frame's, through its context), so one row serves all six."""
    acts = torch.as_tensor(play["actions"])
    feats = window_features(engine, torch.as_tensor(play["tokens"]), acts)
    every = action_rewards(play["positions"], play["headings"], play["actions"], play["tiles"])
    return feats, torch.as_tensor(every).flatten(0, 1)


def fit_heads(
    heads: TaskHeads,
    features: torch.Tensor,
    actions: torch.Tensor | None,
    rewards: torch.Tensor,
    ends: torch.Tensor,
    steps: int = 600,
    batch: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
) -> list[float]:
    """Cross-entropy on features (M, N, D) and, per row, either the action taken (actions (M,),
    rewards (M,) in {0, 1}) or every action (``actions`` None, rewards (M, A): what each would have
    been paid; a batch then draws (row, action) pairs, so the features are never copied A times);
    ends (M,). Plain, unweighted, so the probabilities the dream samples stay calibrated.
    Returns the losses."""
    every = actions is None
    if every and (rewards.ndim != 2 or rewards.shape != (len(features), len(ACTION_NAMES))):
        raise ValueError(
            f"without actions, rewards must be (M, {len(ACTION_NAMES)}), one per action; "
            f"got {tuple(rewards.shape)}"
        )
    pairs = len(features) * (len(ACTION_NAMES) if every else 1)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(heads.parameters(), lr=lr)
    losses = []
    heads.train()
    for _ in range(steps):
        idx = torch.randint(pairs, (batch,), generator=gen)
        if every:
            rows, acts = idx // len(ACTION_NAMES), idx % len(ACTION_NAMES)
            target = rewards[rows, acts]
        else:
            rows, acts, target = idx, actions[idx], rewards[idx]
        r_logits, e_logits = heads(features[rows], acts)
        loss = F.cross_entropy(r_logits, target.long())
        loss = loss + F.cross_entropy(e_logits, ends[rows].long())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    heads.eval()
    return losses


def agreement(predicted, truth) -> dict[str, float]:
    """Agreement of 0/1 rewards: share equal, recall of true positives, precision of predicted,
    plus the counts of each. A share with no cases to count (no true or no predicted reward) is
    left out rather than written as NaN."""
    p, t = np.asarray(predicted).astype(bool).ravel(), np.asarray(truth).astype(bool).ravel()
    out = {"true_rewards": float(t.sum()), "predicted_rewards": float(p.sum())}
    if len(p):
        out["agreement"] = float((p == t).mean())
    if t.any():
        out["recall"] = float(p[t].mean())
    if p.any():
        out["precision"] = float(t[p].mean())
    return out
