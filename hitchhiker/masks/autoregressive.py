"""The autoregressive baseline: the same transformer, causal, one token at a time in raster order.

This is the image GPT / VQGAN-transformer recipe (Chen et al., "Generative Pretraining from
Pixels", 2020; Esser et al., "Taming Transformers", 2021) on the same tokens, the same
:class:`~hitchhiker.masks.core.MaskedTokenModel` class and the same size as MaskGIT
(:mod:`.maskgit`); only the factorisation changes:

    p(x) = prod_{i=1..N} p(x_i | [BOS], x_1, ..., x_{i-1})        (raster order: row by row)

Training is teacher forcing: the input is [BOS] x_1 ... x_{N-1}, shifted right by one, the target
x_1 ... x_N, and ``is_causal=True`` stops each position from peeking ahead. Sampling needs N
sequential forward passes. A key-value cache (:class:`~hitchhiker.masks.core.KVCache`) keeps the
keys and values of the prefix, so step i feeds one token and attends to i cached ones instead of
recomputing the whole prefix: the fair baseline to race MaskGIT's S << N parallel steps against.
The cached and uncached samplers draw the same random numbers in the same order, so for a given
seed they return identical tokens (the tests check it).

The recipe that trains and scores it (Config with presets, build, fit, evaluate) is
:mod:`.autoregressive_recipe`.

Shapes: B batch, h x w token grid, N = h * w tokens, V codebook size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hitchhiker.masks.core import KVCache, MaskedTokenModel, TokenGridModel
from hitchhiker.masks.maskgit import MaskGIT, sample_tokens
from hitchhiker.tokens import seconds_per_image


class AutoregressiveModel(TokenGridModel):
    """A :class:`MaskedTokenModel` used causally over an h x w grid of tokens in raster order."""

    @torch.no_grad()
    def generate(self, n: int, **kwargs) -> torch.Tensor:
        """``n`` token grids (n, h, w); kwargs as :func:`ar_sample`."""
        return ar_sample(self, n, **kwargs)


def shifted_input(model: MaskedTokenModel, tokens: torch.Tensor) -> torch.Tensor:
    """[BOS] x_1 ... x_{N-1} (B, N): the teacher-forcing input for targets x_1 ... x_N."""
    x = tokens.reshape(tokens.shape[0], -1)
    bos = torch.full_like(x[:, :1], model.bos_id)
    return torch.cat([bos, x[:, :-1]], 1)


def ar_loss(model: AutoregressiveModel, tokens: torch.Tensor):
    """Next-token cross-entropy over every position of grids (B, h, w) or (B, N): (loss, metrics)."""
    x = tokens.reshape(tokens.shape[0], -1)
    v = model.cfg.vocab_size
    if x.numel() and (x.min() < 0 or x.max() >= v):
        raise ValueError(f"token ids must lie in [0, {v}); got min {x.min()}, max {x.max()}")
    logits = model(shifted_input(model, x), is_causal=True)
    loss = F.cross_entropy(logits.reshape(-1, v).float(), x.reshape(-1))
    acc = (logits.argmax(-1) == x).float().mean()
    return loss, {"next_acc": acc.detach()}


@torch.no_grad()
def ar_sample(
    model: AutoregressiveModel,
    n: int,
    temperature: float = 1.0,
    seed: int | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Sample ``n`` grids (n, h, w) token by token; ``use_cache=False`` recomputes the prefix."""
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    device, length = model.pos.device, model.cfg.seq_len
    gen = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    seq = torch.full((n, length + 1), model.bos_id, dtype=torch.long, device=device)
    cache = KVCache() if use_cache else None
    for i in range(length):
        if use_cache:  # feed only the newest token; earlier keys and values are in the cache
            logits = model(seq[:, i : i + 1], is_causal=True, cache=cache, start=i)
        else:
            logits = model(seq[:, : i + 1], is_causal=True)
        seq[:, i + 1], _ = sample_tokens(logits[:, -1], temperature, gen)
    return seq[:, 1:].reshape(n, *model.grid)


def speed_comparison(
    maskgit: MaskGIT,
    ar: AutoregressiveModel,
    batches: tuple[int, ...] = (1, 16),
    steps: int = 8,
    repeats: int = 3,
    threads: int = 0,
) -> dict[str, float]:
    """Milliseconds per image of both samplers, measured back to back on the same device
    (``threads`` as :func:`~hitchhiker.tokens.seconds_per_image`)."""
    out = {}
    for b in batches:
        m = seconds_per_image(lambda n: maskgit.generate(n, steps=steps), b, repeats, threads)
        a = seconds_per_image(lambda n: ar.generate(n), b, repeats, threads)
        out[f"maskgit_ms_b{b}"], out[f"ar_ms_b{b}"] = 1000 * m, 1000 * a
        out[f"speedup_b{b}"] = a / m
    return out
