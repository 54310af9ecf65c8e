"""MaskGIT: a bidirectional transformer over image tokens, decoded in a few parallel steps.

Chang, Zhang, Jiang, Liu & Freeman, "MaskGIT: Masked Generative Image Transformer" (CVPR 2022).
A tokenizer (:mod:`hitchhiker.masks.tokenizer`) turns a 64x64 view into an h x w grid of codes; a
:class:`~hitchhiker.masks.core.MaskedTokenModel` learns to fill in hidden codes, exactly like BERT
fills in words.

Training, with a mask schedule gamma (gamma(0) = 1: all hidden, gamma(1) = 0: none hidden):

    u ~ U(0, 1),   n = clamp(ceil(gamma(u) * N), 1, N) of the N tokens replaced by [MASK]
    loss = - mean over masked positions i of log p(x_i | x_visible)

The cosine schedule gamma(u) = cos(pi/2 * u) trains mostly on heavy masking, which is where
sampling starts. Sampling runs S steps from an all-[MASK] grid; at step t (ratio r = (t+1)/S):

    1. predict every position at once, sample a token for each masked one (temperature T);
    2. confidence c_i = log p(sampled_i) + tau * (1 - r) * g_i,  g_i ~ Gumbel(0, 1)
       (annealed noise: early steps explore, the last ones commit);
    3. keep every token fixed so far, plus the most confident new ones; re-mask the
       n = floor(gamma(r) * N_unknown) least confident (:func:`remask`), so that after S steps
       none are left.

Eight steps fill a 64-token grid; an autoregressive model (:mod:`.autoregressive`) needs 64.
Inpainting and outpainting are the same loop started from a partly known grid: only the positions
asked for are ever masked, so given tokens never change.

The recipe that trains and scores MaskGIT (Config with presets, build, fit, evaluate) is
:mod:`.maskgit_recipe`; the token service it reads and writes through (tokenizers, encoding and
decoding, sample quality, timing) is :mod:`hitchhiker.tokens`.

Shapes: B batch, h x w token grid, N = h * w tokens, V codebook size, S decoding steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from hitchhiker.masks.core import MaskedTokenModel, TokenGridModel

SCHEDULES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "cosine": lambda r: torch.cos(math.pi / 2 * r),
    "linear": lambda r: 1 - r,
    "square": lambda r: 1 - r**2,
    "cubic": lambda r: 1 - r**3,
    "sqrt": lambda r: 1 - r.sqrt(),
}
"""Mask schedules gamma(r): the share of tokens still masked at ratio r in [0, 1]."""


def mask_schedule(name: str, ratio) -> torch.Tensor:
    """gamma(ratio) of the schedule ``name``; ``ratio`` a float or a tensor in [0, 1]."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown mask schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
    r = torch.as_tensor(ratio, dtype=torch.float64)
    return SCHEDULES[name](r.clamp(0, 1))


def mask_counts(u: torch.Tensor, n_tokens: int, schedule: str = "cosine") -> torch.Tensor:
    """How many of ``n_tokens`` to mask for each draw ``u`` (B,): clamp(ceil(gamma(u) N), 1, N)."""
    n = torch.ceil(mask_schedule(schedule, u) * n_tokens - 1e-9).long()
    return n.clamp(1, n_tokens)


def random_mask(
    batch: int,
    n_tokens: int,
    schedule: str = "cosine",
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Training mask (B, N) bool: each row hides ``mask_counts(u)`` random positions, u ~ U(0, 1)."""
    u = torch.rand(batch, device=device, generator=generator)
    counts = mask_counts(u, n_tokens, schedule).to(u.device)
    scores = torch.rand(batch, n_tokens, device=device, generator=generator)
    ranks = scores.argsort(1).argsort(1)  # a random permutation per row
    return ranks < counts[:, None]


# ----------------------------------------------------------------------------- the model


class MaskGIT(TokenGridModel):
    """A :class:`MaskedTokenModel` over an h x w grid of image tokens, with MaskGIT decoding."""

    @torch.no_grad()
    def generate(self, n: int, **kwargs) -> Any:
        """``n`` new token grids (n, h, w) from nothing; kwargs as :func:`maskgit_decode`."""
        device = self.pos.device
        tokens = torch.zeros(n, *self.grid, dtype=torch.long, device=device)
        return maskgit_decode(self, tokens, torch.ones_like(tokens, dtype=torch.bool), **kwargs)

    @torch.no_grad()
    def inpaint(self, tokens: torch.Tensor, region: torch.Tensor, **kwargs) -> Any:
        """Regenerate ``region`` (bool, (h, w) or (B, h, w)) of ``tokens`` (B, h, w); the rest stays."""
        return maskgit_decode(self, tokens, region, **kwargs)


def _check_grid(model: MaskedTokenModel, tokens: torch.Tensor, what: str) -> torch.Tensor:
    h, w = model.grid
    if tokens.ndim != 3 or tuple(tokens.shape[1:]) != (h, w):
        raise ValueError(f"{what} must be shaped (B, {h}, {w}); got {tuple(tokens.shape)}")
    return tokens


def sample_tokens(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per position from softmax(logits / T) by the Gumbel-max trick.

    Returns (ids, log-probability of each drawn id under the tempered softmax). T = 0: argmax.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0; got {temperature}")
    logits = logits.float() / max(temperature, 1e-6)
    logp = logits.log_softmax(-1)
    if temperature > 0:
        u = torch.rand(logits.shape, device=logits.device, generator=generator)
        ids = (logp - torch.log(-torch.log(u.clamp_min(1e-20)))).argmax(-1)
    else:
        ids = logp.argmax(-1)
    return ids, logp.gather(-1, ids[..., None])[..., 0]


def remask(confidence: torch.Tensor, masked: torch.Tensor, n_mask: torch.Tensor) -> torch.Tensor:
    """MaskGIT's unmasking rule: which positions go back under [MASK] after a decoding step.

    confidence (B, N) float, the score c_i of each position's freshly sampled token; masked (B, N)
    bool, the positions that were still masked before this step; n_mask (B,) int, how many to mask
    again (at most the row's count of ``masked``). Returns (B, N) bool, True for the ``n_mask[b]``
    least confident positions of row b among ``masked``: the rest of this step's samples are kept.
    A position that was already fixed counts as infinitely confident, so it is never re-masked.
    """
    conf = torch.where(masked, confidence, torch.full_like(confidence, math.inf))
    ranks = conf.argsort(1).argsort(1)  # rank 0 = least confident in its row
    return ranks < n_mask[:, None]


def iterative_decode(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    todo: torch.Tensor,
    mask_id: int,
    steps: int = 8,
    temperature: float = 1.0,
    schedule: str = "cosine",
    choice_temperature: float = 4.5,
    generator: torch.Generator | None = None,
    history: list | None = None,
) -> torch.Tensor:
    """MaskGIT's decoding loop over flat sequences, for any model: fill ``todo`` in ``steps`` steps.

    ``logits_fn(x)`` maps ids (B, N) (``mask_id`` where unknown) to logits (B, N, V); ``x`` (B, N)
    holds the given ids; ``todo`` (B, N) bool marks the positions to generate (their values in
    ``x`` are ignored). Positions outside ``todo`` are never changed. MaskGIT's grids, the unified
    model's [caption | view] sequences (with guidance inside ``logits_fn``) and the dynamics
    model's next frame (with cached context inside ``logits_fn``) all decode through this one loop.
    ``history``, when a list, receives the sequence after each step (still-masked = ``mask_id``).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    mask_schedule(schedule, 0.0)  # validates the name before any work
    if x.shape != todo.shape or todo.dtype != torch.bool:
        raise ValueError(
            f"todo must be a bool mask shaped like x {tuple(x.shape)}; "
            f"got {todo.dtype} {tuple(todo.shape)}"
        )
    device = x.device
    given = x
    x = torch.where(todo, torch.full_like(given, mask_id), given)
    unknown0 = todo.sum(1)  # (B,) tokens to generate per row
    for t in range(steps):
        masked = x == mask_id
        if not masked.any():
            if history is not None:
                history.append(x.clone())
            continue
        ids, logp = sample_tokens(logits_fn(x), temperature, generator)
        ids = torch.where(masked, ids, x)
        ratio = (t + 1) / steps
        if t == steps - 1:
            n_mask = torch.zeros_like(unknown0)
        else:
            n_mask = torch.floor(mask_schedule(schedule, ratio).to(device) * unknown0).long()
            # reveal at least one token per step, and keep at least one masked for later steps
            left = masked.sum(1)
            n_mask = torch.minimum(n_mask.clamp_min(1), left - 1).clamp_min(0)
        noise = torch.rand(logp.shape, device=device, generator=generator).clamp_min(1e-20)
        gumbel = -torch.log(-torch.log(noise))
        conf = logp + choice_temperature * (1 - ratio) * gumbel
        x = torch.where(remask(conf, masked, n_mask), torch.full_like(ids, mask_id), ids)
        if history is not None:
            history.append(x.clone())
    return torch.where(todo, x, given)


def maskgit_decode(
    model: MaskGIT,
    tokens: torch.Tensor,
    generate: torch.Tensor,
    steps: int = 8,
    temperature: float = 1.0,
    schedule: str = "cosine",
    choice_temperature: float = 4.5,
    seed: int | None = None,
    return_history: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """Fill the positions ``generate`` of ``tokens`` in ``steps`` parallel steps.

    tokens (B, h, w) ids (values under ``generate`` are ignored); generate (h, w) or (B, h, w)
    bool. Returns the filled grids (B, h, w) and, with ``return_history``, the grid after each
    step (S tensors (B, h, w), still-masked positions holding ``model.mask_id``).
    """
    tokens = _check_grid(model, tokens, "tokens")
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    mask_schedule(schedule, 0.0)  # validates the name before any work
    if generate.dtype != torch.bool:
        raise TypeError(f"generate must be a bool mask; got {generate.dtype}")
    if tuple(generate.shape) not in (tuple(tokens.shape[1:]), tuple(tokens.shape)):
        raise ValueError(
            f"generate must be shaped {tuple(tokens.shape[1:])} or {tuple(tokens.shape)}; "
            f"got {tuple(generate.shape)}"
        )
    generate = generate.to(tokens.device).expand_as(tokens)
    v = model.cfg.vocab_size
    known = ~generate
    if known.any() and (tokens[known].min() < 0 or tokens[known].max() >= v):
        raise ValueError(f"given token ids must lie in [0, {v}); got {tokens[known].unique()}")
    b, device = tokens.shape[0], tokens.device
    gen = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    history: list | None = [] if return_history else None
    out = iterative_decode(
        model,
        tokens.reshape(b, -1),
        generate.reshape(b, -1),
        model.mask_id,
        steps,
        temperature,
        schedule,
        choice_temperature,
        gen,
        history,
    ).view_as(tokens)
    if return_history:
        return out, [h.view_as(tokens) for h in history]
    return out


def maskgit_loss(model: MaskGIT, tokens: torch.Tensor, schedule: str = "cosine"):
    """Cross-entropy on masked positions of token grids (B, h, w) or (B, N): (loss, metrics)."""
    x = tokens.reshape(tokens.shape[0], -1)
    mask = random_mask(x.shape[0], x.shape[1], schedule, device=x.device)
    logits = model(torch.where(mask, torch.full_like(x, model.mask_id), x))
    loss = F.cross_entropy(logits[mask].float(), x[mask])
    acc = (logits[mask].argmax(-1) == x[mask]).float().mean()
    return loss, {"masked_acc": acc.detach()}
