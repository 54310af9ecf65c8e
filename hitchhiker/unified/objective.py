"""The unified model's one training objective: masked cross-entropy over [caption | view].

One bidirectional transformer learns every task from the same loss (UniDisc, Swerdlow et al. 2025;
MMaDA, Yang et al. 2025): hide some tokens, predict them from the rest,

    L = - E [ mean over hidden i of log p(x_i | x_visible) ].

What is hidden decides what is learned. Each training sequence draws a *task*:

    text-to-image   view tokens only: n = ceil(cos(pi/2 u) * 64), u ~ U(0, 1)      (MaskGIT)
    image-to-text   caption tokens only (two shapes, below)
    joint           both, drawn independently

and, with probability ``caption_dropout``, a text-to-image sequence loses its whole caption to
[MASK] (no loss on it), so the same weights also learn p(view) alone, which classifier-free
guidance needs at sampling time.

A caption is decoded either all positions at once (MaskGIT's confidence order) or in blocks, left
to right (LLaDA's semi-autoregressive decoding). An image-to-text draw hides

    uniform    each caption position with probability t ~ U(0, 1)     (masked diffusion, default)
    cosine     n = ceil(cos(pi/2 u) * 64) random positions: mostly near "all hidden", where
               parallel decoding starts
    suffix     (a share ``suffix_share`` of the draws) everything from a random word k in
               [0, len] on: the exact state of left-to-right decoding at word k, with loss on the
               whole rest of the caption

Uniform is the default. Before the caption grammar (:mod:`.grammar`) a half-visible caption taught
the grammar that decides whether a caption parses at all; with it, every caption parses, and
matching the decoding state (cosine, suffix) did not read captions better, nor did weighting the
loss of kind and heading words (``fact_weight``). What the masked model reads worst is the kind
of a sentence that starts late in the caption: the kind word must find its region word four
places to its right, wherever the sentence starts, which rotary positions
(:mod:`hitchhiker.masks.core`) made one pattern. Every comparison, with its figures and the commit
that measured it, is recorded in :mod:`.history` (topics "tried" and "positions"; notebook 03,
appendix).

Shapes: B batch, L = 64 caption tokens, h x w view codes, N = L + h * w, V = T + K shared ids.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hitchhiker.masks.maskgit import mask_counts, random_mask
from hitchhiker.masks.text import PAD_ID
from hitchhiker.unified.self_check import fact_positions

TASKS = ("t2i", "i2t", "joint")
"""Training tasks, in the order of the task probabilities."""


def caption_mask(
    captions: torch.Tensor, schedule: str = "uniform", suffix_share: float = 0.0
) -> torch.Tensor:
    """Which caption positions (B, L) an image-to-text draw hides.

    ``schedule``: "uniform" hides each position with probability t ~ U(0, 1) (masked diffusion);
    "cosine" hides ceil(cos(pi/2 u) * L) random positions. With probability ``suffix_share`` a row
    instead hides everything from a random word k in [0, len] on (left-to-right decoding's state).
    """
    b, n_cap = captions.shape
    dev = captions.device
    if schedule == "uniform":
        scattered = torch.rand(b, n_cap, device=dev) < torch.rand(b, 1, device=dev).clamp_min(
            1.0 / n_cap
        )
    elif schedule == "cosine":
        counts = mask_counts(torch.rand(b, device=dev), n_cap, "cosine").to(dev)
        ranks = torch.rand(b, n_cap, device=dev).argsort(1).argsort(1)  # a permutation per row
        scattered = ranks < counts[:, None]
    else:
        raise ValueError(f"unknown caption schedule {schedule!r}; expected 'uniform' or 'cosine'")
    if suffix_share <= 0:
        return scattered
    length = (captions != PAD_ID).sum(1)  # words before the first pad
    start = (torch.rand(b, device=dev) * (length + 1)).floor().long()  # 0 .. len inclusive
    suffix = torch.arange(n_cap, device=dev)[None, :] >= start[:, None]
    use_suffix = torch.rand(b, device=dev) < suffix_share
    return torch.where(use_suffix[:, None], suffix, scattered)


def unified_loss(
    model,
    batch: dict,
    task_probs: tuple[float, float, float] = (0.4, 0.4, 0.2),
    caption_dropout: float = 0.1,
    caption_schedule: str = "uniform",
    suffix_share: float = 0.0,
    fact_weight: float = 1.0,
):
    """Masked cross-entropy on a batch of (caption, view) pairs, each row with a random task.

    ``fact_weight``: loss weight of hidden caption words that name a kind or the heading
    (:func:`.self_check.fact_positions`), against 1 for every other hidden token.
    ``model`` is a :class:`~hitchhiker.unified.masked_model.UnifiedModel` (or a wrapper with
    ``.module``); returns (loss, {"view_acc", "text_acc"}) for the trainer.
    """
    net = model.module if hasattr(model, "module") else model
    lay = net.layout
    x = lay.join(batch["caption"], batch["view"])
    b, dev, n_cap = len(x), x.device, lay.caption_len
    probs = torch.tensor(task_probs, dtype=torch.float, device=dev)
    task = torch.multinomial(probs, b, replacement=True)
    t2i, i2t = task == 0, task == 1
    view_mask = random_mask(b, lay.view_len, "cosine", device=dev) & ~i2t[:, None]
    cap_mask = caption_mask(x[:, lay.caption_slice], caption_schedule, suffix_share)
    cap_mask &= ~t2i[:, None]
    dropped = t2i & (torch.rand(b, device=dev) < caption_dropout)
    target = torch.cat([cap_mask, view_mask], 1)  # positions the loss is on
    hidden = target | torch.cat([dropped[:, None].expand(b, n_cap), torch.zeros_like(view_mask)], 1)
    logits = model(torch.where(hidden, net.mask_id, x), net.modality_ids)
    allowed = net.allowed.expand(b, -1, -1)[target]  # (M, V): each target's modality ids
    picked = logits[target].float().masked_fill(~allowed, float("-inf"))
    weight = torch.ones_like(target, dtype=torch.float)
    weight[:, :n_cap] += (fact_weight - 1.0) * fact_positions(x[:, lay.caption_slice]).float()
    weight = weight[target]
    loss = (F.cross_entropy(picked, x[target], reduction="none") * weight).sum() / weight.sum()
    right = picked.argmax(-1) == x[target]
    is_view = net.view_positions.expand_as(target)[target]
    metrics = {
        "view_acc": right[is_view].float().mean() if is_view.any() else torch.tensor(0.0),
        "text_acc": right[~is_view].float().mean() if (~is_view).any() else torch.tensor(0.0),
    }
    return loss, {k: v.detach() for k, v in metrics.items()}
