"""The unified model checks its own drawings: draw n views, read each back, keep the best.

A unified model reads as well as it writes, so the same weights can verify what they generated
(the idea behind CLIP re-ranking in DALL-E, Ramesh et al. 2021, and behind self-verification in
unified models such as T2I-R1 and MMaDA, here without a second network). For a caption c, draw n
candidate views v_1..v_n (text-to-image, different random draws), then score each by how well the
model, reading v_j, predicts the caption's *fact words* (the kind and heading words) when they
are hidden:

    score(v_j) = sum over fact words i of log p(c_i | v_j, c without its fact words)

and keep the best. One extra forward pass per candidate: the caption's structure (which regions
share a sentence, where the sheep are) stays visible, and only the words that say *what* lies
there are asked for. No ground truth is used: the tile reader only scores the result afterwards.

Cost: n times the drawing plus n forward passes; the notebook and the benchmark report the time.

Shapes: B captions, n candidates per caption, L = 64 caption tokens, h x w view codes.
"""

from __future__ import annotations

import torch

from hitchhiker.masks.text import WORD_ID
from hitchhiker.world.captions import GROUND_WORDS, SUBJECT_WORDS

FACT_WORDS: tuple[str, ...] = tuple(
    sorted({w[-1] for w in GROUND_WORDS.values()} | {w[0] for w in SUBJECT_WORDS.values()})
)
"""Caption words that name a kind; with the heading after "facing", the words checked."""
_FACT_IDS = torch.tensor([WORD_ID[w] for w in FACT_WORDS])


def fact_positions(captions: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: the positions of caption ids (B, L) that name a kind, or the heading (the
    word after "facing"; heading names double as region names elsewhere)."""
    kinds = torch.isin(captions, _FACT_IDS.to(captions.device))
    after_facing = torch.zeros_like(kinds)
    after_facing[:, 1:] = captions[:, :-1] == WORD_ID["facing"]
    return kinds | after_facing


@torch.no_grad()
def caption_fit(model, captions: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
    """(B,) sum of log p(fact word | view, rest of the caption) of captions (B, L) on views
    (B, h, w), all fact words hidden at once: one forward pass."""
    lay = model.layout
    x = lay.join(captions, views).to(model.pos.device)
    hide = fact_positions(x[:, lay.caption_slice])
    asked = x[:, lay.caption_slice].clone()
    x[:, lay.caption_slice] = torch.where(hide, model.mask_id, asked)
    logp = model.restricted_logits(x)[:, lay.caption_slice].log_softmax(-1)
    picked = logp.gather(-1, asked[..., None])[..., 0]
    return (picked * hide).sum(1)


@torch.no_grad()
def best_of(model, captions: torch.Tensor, n: int, **draw) -> torch.Tensor:
    """Views (B, h, w) for caption ids (B, L): the best of ``n`` drawn per caption by
    :func:`caption_fit`. ``draw``: the keyword arguments of ``model.text_to_image``."""
    if n < 1:
        raise ValueError(f"the number of candidates must be >= 1; got {n}")
    b = len(captions)
    many = captions.repeat_interleave(n, 0)
    views = model.text_to_image(many, candidates=1, **draw)
    score = caption_fit(model, many, views).view(b, n)
    pick = score.argmax(1) + n * torch.arange(b, device=score.device)
    return views[pick]
