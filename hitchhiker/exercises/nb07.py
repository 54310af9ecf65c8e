"""Notebook 07's implement-and-check exercise: the lambda-return an imagined rollout learns from.

DreamerV3 and DIAMOND train their critics towards, and weight their actors by, the lambda-return of
an imagined rollout, computed backwards from its last step:

    G_t = r_t + gamma c_t ((1 - lambda) V(s_{t+1}) + lambda G_{t+1}),   G_H = V(s_H),

c_t = 0 where the episode ended at step t (no bootstrap past the end). lambda = 0 is the one-step
TD target, lambda = 1 the discounted return bootstrapped at the horizon.

The reference is the package's :func:`~hitchhiker.agents.actor_critic.lambda_returns` (what the
shipped agent trained with). Cases: random rollouts of a few steps and dreams, some ended.

Shapes: H steps, B rollouts; rewards, values, continues (H, B), last_value (B,).
"""

from __future__ import annotations

import numpy as np
import torch

from hitchhiker.agents.actor_critic import lambda_returns
from hitchhiker.exercises import Exercise, register


def package_returns(rewards, values, continues, last_value, gamma, lam) -> np.ndarray:
    """``lambda_returns`` on numpy arrays: (H, B) float out."""
    t = [torch.as_tensor(np.asarray(x), dtype=torch.float64) for x in (rewards, values, continues)]
    last = torch.as_tensor(np.asarray(last_value), dtype=torch.float64)
    return lambda_returns(*t, last, gamma, lam).numpy()


def _cases(g: torch.Generator) -> list[tuple]:
    """(rewards, values, continues, last_value, gamma, lambda): short and long, lambda 0..1."""
    out = []
    for h, b, gamma, lam in [
        (1, 1, 0.9, 0.95),
        (3, 2, 0.9, 0.5),
        (15, 4, 0.985, 0.95),
        (6, 3, 1.0, 1.0),
        (5, 2, 0.9, 0.0),
    ]:
        rewards = (torch.rand(h, b, generator=g) < 0.3).double().numpy()
        values = torch.randn(h, b, generator=g, dtype=torch.float64).numpy()
        continues = (torch.rand(h, b, generator=g) > 0.15).double().numpy()
        last = torch.randn(b, generator=g, dtype=torch.float64).numpy()
        out.append((rewards, values, continues, last, gamma, lam))
    return out


LAMBDA_RETURNS = register(
    Exercise(
        name="07.lambda_returns",
        task=(
            "Return the (H, B) lambda-returns G of an imagined rollout: from the last step "
            "backwards, G_t = r_t + gamma c_t ((1 - lambda) V_{t+1} + lambda G_{t+1}), with "
            "V_H = G_H = last_value."
        ),
        reference=package_returns,
        cases=_cases,
        hint=(
            "loop t from H - 1 down to 0 keeping the next step's G and V (both last_value at the "
            "start); a step with c_t = 0 is just its reward. With lambda = 0 each G_t is "
            "r_t + gamma c_t V_{t+1}."
        ),
        notes={"equation": "G_t = r_t + gamma c_t ((1 - lambda) V_{t+1} + lambda G_{t+1})"},
    )
)
