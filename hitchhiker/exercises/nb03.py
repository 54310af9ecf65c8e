"""Notebook 03's implement-and-check exercise: the classifier-free guidance mix.

Classifier-free guidance (Ho & Salimans 2022, https://arxiv.org/abs/2207.12598; Muse, Chang et
al. 2023) runs the model twice per decoding step, once with the caption and once with the caption
all [MASK], and pushes the view logits away from the unconditional ones:

    l = l_cond + s * (l_cond - l_uncond)

The reference is the package's own :func:`hitchhiker.unified.masked_model.guidance_mix`, which
:meth:`~hitchhiker.unified.masked_model.UnifiedModel.guided_logits` applies at every view position.

Shapes: any, the two sets of logits alike; here (B, N, V) = (batch, view positions, vocabulary).
"""

from __future__ import annotations

import torch

from hitchhiker.exercises import Exercise, register
from hitchhiker.unified.masked_model import guidance_mix


def _cases(g: torch.Generator) -> list[tuple]:
    """Pairs of logits (conditional, unconditional) and a scale, s = 0 included."""
    out = []
    for scale, shape in ((0.0, (2, 8, 12)), (1.0, (3, 64, 20)), (3.0, (1, 64, 140)), (0.5, (5, 7))):
        cond = torch.randn(shape, generator=g) * 3
        uncond = cond + torch.randn(shape, generator=g)  # near cond, as the two passes are
        out.append((cond, uncond, scale))
    return out


register(
    Exercise(
        name="03.guidance",
        task=(
            "guided_logits(logits_cond, logits_uncond, scale): classifier-free guidance's mix, "
            "logits_cond + scale * (logits_cond - logits_uncond), same shape as the inputs."
        ),
        reference=guidance_mix,
        cases=_cases,
        hint=(
            "scale 0 must give logits_cond back unchanged; the push is away from the "
            "unconditional logits, so their difference is taken as cond minus uncond."
        ),
    )
)
