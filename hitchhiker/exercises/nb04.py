"""Exercises of notebook 04: the latent-action bottleneck.

``04.vq``: the vector-quantisation step of the latent action model (Genie's LAM; van den Oord et
al. 2017), written by the learner and checked against the package's own quantiser,
:class:`hitchhiker.masks.quantizers.EMAVectorQuantizer`, which the LAM uses:

    k* = argmin_k || u/|u| - e_k ||^2,      z_q = u/|u| + sg(e_k* - u/|u|)     (straight-through)

so the decoder sees the code e_k* and the encoder gets the decoder's gradient as if the rounding
to a code were not there. The learner's function returns the code index, z_q and the gradient that
reaches u when the decoder sends ``grad_out`` back: the last one is how the check sees whether the
gradient goes straight through.

Shapes: B latent actions, d code width, K codes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hitchhiker.exercises import Exercise, register
from hitchhiker.masks.quantizers import EMAVectorQuantizer


def package_vq(u: torch.Tensor, codebook: torch.Tensor, grad_out: torch.Tensor):
    """The LAM's quantiser on latents ``u`` (B, d) with ``codebook`` (K, d): (index (B,), z_q
    (B, d), gradient (B, d) reaching u when the decoder sends back ``grad_out`` (B, d))."""
    vq = EMAVectorQuantizer(codebook.shape[0], codebook.shape[1]).eval()  # eval: no EMA update
    vq.codebook.copy_(codebook)
    u = u.detach().clone().requires_grad_(True)
    z_q, idx, _ = vq(u[:, :, None, None])  # the LAM's (B, d, 1, k=1) layout
    z_q = z_q[:, :, 0, 0]
    z_q.backward(grad_out)
    return idx[:, 0, 0], z_q.detach(), u.grad


def _cases(g: torch.Generator):
    out = []
    for b, d, k in ((5, 4, 8), (16, 16, 8), (7, 3, 64)):
        u = torch.randn(b, d, generator=g) * 3
        codebook = F.normalize(torch.randn(k, d, generator=g), dim=1)  # codes on the unit sphere
        out.append((u, codebook, torch.randn(b, d, generator=g)))
    return out


register(
    Exercise(
        name="04.vq",
        task=(
            "Write quantise(u, codebook, grad_out) -> (idx, z_q, grad_u): put u (B, d) on the unit "
            "sphere, pick the nearest code of codebook (K, d), return its index, the code passed "
            "straight through, and the gradient reaching u after z_q.backward(grad_out)."
        ),
        reference=package_vq,
        cases=_cases,
        hint=(
            "normalise u with F.normalize(u, dim=1) before the distances; z_q = flat + "
            "(codebook[idx] - flat).detach() lets the gradient through; u needs requires_grad."
        ),
    )
)
