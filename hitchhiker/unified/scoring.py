"""Measuring a Stage II model: the same held-out pairs, fact scores and clock for both recipes.

The masked unified model (:mod:`.masked_model`) and its autoregressive baseline (:mod:`.autoregressive`)
are compared on exactly the same terms, so everything that measures them lives here, once:

* held-out pairs: ``eval_samples`` (caption, view) pairs spread evenly over the episodes of a
  split ("test" for the reported figures, "val" for every decoding choice);
* text-to-image: generate a view per caption, read it back with the ground-truth tile reader, and
  score the share of the requested atomic facts that hold (:func:`.facts.t2i_scores`);
* image-to-text: caption each view, parse the caption, and score precision, recall and parse rate
  against the view's true facts (:func:`.facts.i2t_scores`);
* speed: milliseconds per text-to-image sample at batch 1 and batch 16, and per caption at batch
  16 (median of repeats, one CPU thread by default, so that a shared machine gives steady numbers);
* a probe of reading (masked model only, :func:`kind_reading`): hide one kind word of a *true*
  caption and ask the model for it, sentence by sentence. It separates reading from decoding.

Any model with ``text_to_image(captions, **kw) -> views (B, h, w)`` and
``image_to_text(views, **kw) -> list[str]`` can be measured.

Shapes: B batch, L = 64 caption tokens, h x w view codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hitchhiker.devices import device_of
from hitchhiker.masks.text import WORD_ID
from hitchhiker.tokens import decode_tokens, seconds_per_image
from hitchhiker.unified import facts as fx
from hitchhiker.unified.self_check import fact_positions
from hitchhiker.unified.sequence import Pairs, record_pairs

KIND_SENTENCES = 4
"""Kind sentences :func:`kind_reading` reports (captions rarely have more than 4)."""


def held_out(cfg, split: str, tokenizer):
    """``cfg.eval_samples`` (caption, view) pairs spread over the ``cfg.data.eval_episodes``
    held-out episodes of ``split``.

    Returns (pairs, recording, index of each pair among the recording's views).
    """
    data = cfg.data
    pairs, rec = record_pairs(
        split, data.eval_episodes, data.held_out_steps, tokenizer, data.policy
    )
    index = np.linspace(0, len(pairs) - 1, min(cfg.eval_samples, len(pairs))).round().astype(int)
    return pairs.subset(index), rec, index


def tuning_pairs(cfg, tokenizer) -> Pairs:
    """The VAL pairs every decoding sweep scores (``cfg.tune_samples`` of them)."""
    pairs, _, _ = held_out(cfg, "val", tokenizer)
    n = min(cfg.tune_samples, len(pairs))
    return pairs.subset(np.linspace(0, len(pairs) - 1, n).astype(int))


def t2i_accuracy(model, pairs: Pairs, tokenizer, **kwargs) -> float:
    """Mean share of requested facts that hold in views generated from the pairs' captions."""
    with torch.inference_mode():
        views = model.text_to_image(pairs.captions, **kwargs)
    return float(fx.t2i_scores(pairs.facts, decode_tokens(tokenizer, views)).mean())


def i2t_figures(model, pairs: Pairs, **kwargs) -> dict[str, float]:
    """Precision, recall and parse rate of captions generated for the pairs' views."""
    with torch.inference_mode():
        captions = model.image_to_text(pairs.views, **kwargs)
    return fx.i2t_scores(captions, pairs.facts)


@dataclass(frozen=True)
class Samples:
    """What a model generated for held-out pairs (one view per caption, one caption per view),
    scored fact by fact: the per-pair material behind the figures of :func:`figures`."""

    views: np.ndarray
    """(B, H, W, 3) uint8 views drawn from the pairs' captions, decoded to pixels."""
    t2i: np.ndarray
    """(B,) share of each caption's requested facts that hold in the view drawn from it."""
    captions: list[str]
    """B captions written for the pairs' views."""
    i2t: dict[str, float]
    """precision, recall and parse_rate of those captions against the views' true facts."""


def samples(model, pairs: Pairs, tokenizer, **kwargs) -> Samples:
    """Draw a view for each of the pairs' captions and write a caption for each of their views
    (``kwargs``, e.g. ``seed``, go to both), and score them: what :func:`figures` averages."""
    with torch.inference_mode():
        views = model.text_to_image(pairs.captions, **kwargs)
        captions = model.image_to_text(pairs.views, **kwargs)
    frames = decode_tokens(tokenizer, views)
    return Samples(
        frames, fx.t2i_scores(pairs.facts, frames), captions, fx.i2t_scores(captions, pairs.facts)
    )


def _rows(x: torch.Tensor, b: int, device) -> torch.Tensor:
    """The first ``b`` rows of x, repeated when x has fewer, on ``device``."""
    x = x[:b].to(device)
    return x.repeat(-(-b // len(x)), *([1] * (x.ndim - 1)))[:b]


def speed_figures(model, pairs: Pairs, cfg, prefix: str) -> dict[str, float]:
    """Milliseconds per text-to-image sample at batch 1 and 16, and per image-to-text caption at
    batch 16 (default decoding settings: best-of-n candidates included)."""
    device = device_of(model)
    reps, threads = cfg.timing_repeats, cfg.timing_threads
    out = {}
    for b in (1, 16):
        caps = _rows(pairs.captions, b, device)
        s = seconds_per_image(lambda n, c=caps: model.text_to_image(c[:n]), b, reps, threads)
        out[f"{prefix}.ms_per_t2i_sample_b{b}"] = 1000 * s
    views = _rows(pairs.views, 16, device)
    s = seconds_per_image(lambda n: model.image_to_text(views[:n]), 16, reps, threads)
    out[f"{prefix}.ms_per_i2t_caption_b16"] = 1000 * s
    return out


def figures(model, cfg, tokenizer, prefix: str, unguided: bool = False) -> dict[str, float]:
    """The issue's figures on held-out TEST pairs with the model's default decoding settings:
    ``<prefix>.t2i_fact_accuracy``, ``.i2t_precision``, ``.i2t_recall``, ``.i2t_parse_rate``,
    ``.ms_per_t2i_sample_b1`` / ``_b16``, ``.ms_per_i2t_caption_b16`` (and
    ``.t2i_fact_accuracy_unguided`` if asked)."""
    model.eval()
    pairs, _, _ = held_out(cfg, "test", tokenizer)
    drawn = samples(model, pairs, tokenizer, seed=cfg.train.seed)  # seeded: its own generator
    out = {f"{prefix}.t2i_fact_accuracy": float(drawn.t2i.mean())}
    if unguided:
        out[f"{prefix}.t2i_fact_accuracy_unguided"] = t2i_accuracy(
            model, pairs, tokenizer, guidance=0.0, seed=cfg.train.seed
        )
    out.update({f"{prefix}.i2t_{k}": v for k, v in drawn.i2t.items()})
    out.update(speed_figures(model, pairs, cfg, prefix))
    return out


@torch.no_grad()
def kind_reading(model, pairs: Pairs, rest_hidden: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """How well a masked model reads the kind word that opens each kind sentence of a true caption.

    For every kind sentence k = 1 .. ``KIND_SENTENCES`` of every caption ("Water lies to the ..."),
    hide its kind word (with ``rest_hidden``, also every word after it: left-to-right decoding's
    state) and check the model's most likely word. Returns (share right (K,), count (K,)); the
    explorer's sentence is sentence 0 and is not counted.
    """
    lay, dev = model.layout, model.pos.device
    caps = pairs.captions
    ends = caps == WORD_ID["."]
    sentence = ends.cumsum(1)  # at a sentence's first word: how many sentences came before it
    opens = torch.zeros_like(ends)
    opens[:, 1:] = ends[:, :-1]  # a sentence's first word follows a "."
    # the heading (also a fact position) never opens a sentence, so these are kind words
    asked = opens & fact_positions(caps) & (sentence >= 1) & (sentence <= KIND_SENTENCES)
    row, at = asked.nonzero(as_tuple=True)
    x = lay.join(caps, pairs.views)[row]
    slot = torch.arange(lay.caption_len)[None, :]
    hide = slot >= at[:, None] if rest_hidden else slot == at[:, None]
    x[:, lay.caption_slice] = torch.where(hide, model.mask_id, x[:, lay.caption_slice])
    guess = torch.cat([model.restricted_logits(c.to(dev)).argmax(-1).cpu() for c in x.split(256)])
    right = guess[torch.arange(len(x)), at] == caps[row, at]
    k = sentence[row, at].numpy() - 1
    count = np.bincount(k, minlength=KIND_SENTENCES).astype(float)
    share = np.bincount(k, weights=right.numpy(), minlength=KIND_SENTENCES)
    return share / np.maximum(count, 1), count
