"""Notebook 05's implement-and-check exercise: one Euler step of EDM's sampler.

EDM (Karras et al. 2022, https://arxiv.org/abs/2206.00364) samples by walking the probability flow
ODE dx/ds = (x - D(x; s)) / s down a decreasing list of noise levels; one Euler step from s to
s_next is

    x_next = x + (s_next - s) * (x - D(x; s)) / s

The learner writes it; the reference is the package's own :func:`~hitchhiker.interactive.edm.euler_step`,
the function the engine's sampler calls. The cases take their levels from the shipped engine's own
schedule (Karras' rho schedule, ending at 0), so the last step, to s_next = 0, is checked too.

Shapes: B batch, C channels, H x W pixels; levels are Python floats, as in the sampler.
"""

from __future__ import annotations

import torch

from hitchhiker.exercises import Exercise, register
from hitchhiker.interactive.edm import EDM, euler_step


def _cases(g: torch.Generator) -> list[tuple]:
    """(x, denoised, sigma, sigma_next) along a 4-step schedule, on small random frames."""
    levels = EDM(sigma_min=0.1).sigmas(4).tolist()  # s_max ... 0.1, then 0
    out = []
    for s, s_next in zip(levels[:-1], levels[1:]):
        x = torch.randn(2, 3, 8, 8, generator=g) * s
        denoised = torch.randn(2, 3, 8, 8, generator=g).clamp(-1, 1)
        out.append((x, denoised, s, s_next))
    return out


EULER = register(
    Exercise(
        name="05.euler",
        task=(
            "Return x_next = x + (sigma_next - sigma) * (x - denoised) / sigma, where denoised is "
            "D(x; sigma): one Euler step of EDM's probability flow ODE."
        ),
        reference=euler_step,
        cases=_cases,
        hint=(
            "the slope is (x - denoised) / sigma; walk it by sigma_next - sigma, which is "
            "negative (the levels fall). On the last case sigma_next is 0: the step should land "
            "on denoised."
        ),
        notes={"equation": "x_next = x + (s_next - s) * (x - D(x; s)) / s"},
    )
)
