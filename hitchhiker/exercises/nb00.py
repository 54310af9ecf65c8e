"""Notebook 00's implement-and-check exercise: PSNR, the first metric every later stage reports.

PSNR compares two images through their mean squared error (pixels in [0, 1]):

    PSNR = 10 * log10(1 / MSE)   dB,   per image, then averaged over the batch,

with the MSE clipped at 1e-10 so that identical images give a finite 100 dB. The reference is the
package's own :func:`hitchhiker.metrics.psnr`.

Shapes: B images, H = W = 64 pixels, 3 channels; uint8 arrays (B, H, W, 3), as the world gives them.
"""

from __future__ import annotations

import torch

from hitchhiker import metrics
from hitchhiker.exercises import Exercise, register


def _cases(g: torch.Generator) -> list[tuple]:
    """Pairs of uint8 batches: lightly and heavily perturbed copies, and an identical pair."""
    out = []
    for noise in (2, 8, 40):
        a = torch.randint(0, 256, (3, 64, 64, 3), generator=g)
        step = torch.randint(-noise, noise + 1, a.shape, generator=g)
        b = (a + step).clamp(0, 255)
        out.append((a.to(torch.uint8).numpy(), b.to(torch.uint8).numpy()))
    same = torch.randint(0, 256, (2, 64, 64, 3), generator=g).to(torch.uint8).numpy()
    out.append((same, same.copy()))
    return out


register(
    Exercise(
        name="00.psnr",
        task=(
            "psnr(a, b): for uint8 image batches (B, H, W, 3), the mean over images of "
            "10 * log10(1 / MSE) with pixels scaled to [0, 1] and the MSE clipped at 1e-10."
        ),
        reference=lambda a, b: metrics.psnr(a, b),
        cases=_cases,
        atol=1e-3,
        hint=(
            "scale to [0, 1] (divide by 255) in floating point, take the MSE of each image "
            "separately (over its H, W and 3 channels), clip it at 1e-10, then average the PSNRs."
        ),
    )
)
