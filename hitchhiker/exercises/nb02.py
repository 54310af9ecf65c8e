"""Notebook 02's implement-and-check exercise: MaskGIT's unmasking rule.

After each decoding step MaskGIT (Chang et al. 2022, https://arxiv.org/abs/2202.04200) has a
freshly sampled token at every masked position, each with a confidence (its log-probability plus
annealed Gumbel noise). It keeps the confident ones and puts the ``n_mask`` least confident back
under [MASK]; tokens fixed at earlier steps are never re-masked. The learner writes that rule; the
reference is the package's own :func:`hitchhiker.masks.maskgit.remask`, which
:func:`~hitchhiker.masks.maskgit.iterative_decode` calls at every step.

Shapes: B rows, N positions; confidence (B, N) float, masked (B, N) bool, n_mask (B,) int64.
"""

from __future__ import annotations

import torch

from hitchhiker.exercises import Exercise, register
from hitchhiker.masks.maskgit import remask


def _cases(g: torch.Generator) -> list[tuple]:
    """Rows with different numbers of masked positions (as in inpainting with one region per row),
    and n_mask anywhere from 0 to one less than the row's masked count, as the decoder asks."""
    out = []
    for b, n, share in ((1, 8, 1.0), (4, 64, 1.0), (5, 64, 0.5), (3, 16, 0.25)):
        confidence = torch.randn(b, n, generator=g) * 3 - 2
        masked = torch.rand(b, n, generator=g) < share
        left = masked.sum(1)
        n_mask = (torch.rand(b, generator=g) * left).long().clamp_max((left - 1).clamp_min(0))
        out.append((confidence, masked, n_mask))
    return out


register(
    Exercise(
        name="02.remask",
        task=(
            "remask(confidence, masked, n_mask) -> (B, N) bool: in each row b, True at the "
            "n_mask[b] least confident positions among those that are masked; False elsewhere "
            "(a position that is not masked is never chosen)."
        ),
        reference=remask,
        cases=_cases,
        hint=(
            "give the positions that are not masked a confidence of +inf, sort each row "
            "(argsort along dim 1), and mark the first n_mask[b] positions of row b."
        ),
    )
)
