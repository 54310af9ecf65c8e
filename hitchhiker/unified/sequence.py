"""One sequence, one vocabulary: a caption and a view as a single stream of tokens.

A unified model (Chameleon, Team 2024; MMaDA, Yang et al. 2025; UniDisc, Swerdlow et al. 2025)
reads and writes every modality as tokens of one sequence over one shared vocabulary. Ours is

    [ caption | view ] = [ c_1 ... c_64 | v_1 ... v_64 ]          N = 64 + h * w = 128 tokens

* the caption: the Stage I word tokens (:data:`hitchhiker.masks.text.VOCAB`), padded with
  ``<pad>`` to 64 (the longest caption has 61 tokens); the model chooses a caption's length by
  writing pads;
* the view: the h x w = 8 x 8 codes of the shipped Stage I tokenizer, in raster order.

Shared vocabulary of V = T + K ids: ids [0, T) are caption words (T = len(VOCAB)), ids [T, T + K)
are image codes (K = the tokenizer's codebook size), so code k is id T + k. The core adds [MASK]
(id V) and [BOS] (id V + 1). Each position also carries a modality id, 0 for text and 1 for image,
which the core turns into a learned modality embedding. Because each position belongs to one
modality, a decoder restricts it to its modality's ids (:meth:`Layout.allowed`): a caption slot
can never receive an image code.

Shapes: B batch, L = 64 caption tokens, h x w token grid, N = L + h * w, V = T + K, F frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from hitchhiker.masks import text
from hitchhiker.tokens import encode_frames
from hitchhiker.world.captions import Facts, describe, view_facts
from hitchhiker.world.dataset import LEARNING_WORLD, record

CAPTION_LEN = 64
"""Caption tokens per sequence (with padding); the longest caption the world writes has 61."""
TEXT, IMAGE = 0, 1
"""Modality ids of caption and view positions."""


@dataclass(frozen=True)
class Layout:
    """Where each modality lives in a [caption | view] sequence and in the shared vocabulary."""

    image_vocab: int
    """K: codebook size of the image tokenizer."""
    grid_h: int = 8
    """Token rows h of a view."""
    grid_w: int = 8
    """Token columns w of a view."""
    caption_len: int = CAPTION_LEN
    """L: caption tokens per sequence, padding included."""
    text_vocab: int = len(text.VOCAB)
    """T: caption word ids, pad included."""

    def __post_init__(self):
        if self.image_vocab < 1 or self.grid_h < 1 or self.grid_w < 1 or self.caption_len < 1:
            raise ValueError(f"a layout needs positive sizes; got {self}")

    @property
    def vocab_size(self) -> int:
        """V = T + K real token ids."""
        return self.text_vocab + self.image_vocab

    @property
    def view_len(self) -> int:
        return self.grid_h * self.grid_w

    @property
    def seq_len(self) -> int:
        """N = L + h * w."""
        return self.caption_len + self.view_len

    @property
    def caption_slice(self) -> slice:
        return slice(0, self.caption_len)

    @property
    def view_slice(self) -> slice:
        return slice(self.caption_len, self.seq_len)

    def modality(self, device=None) -> torch.Tensor:
        """(N,) modality ids: TEXT on caption positions, IMAGE on view positions."""
        m = torch.full((self.seq_len,), IMAGE, dtype=torch.long, device=device)
        m[self.caption_slice] = TEXT
        return m

    def is_view(self, device=None) -> torch.Tensor:
        """(N,) bool: True on view positions."""
        return self.modality(device) == IMAGE

    def allowed(self, device=None) -> torch.Tensor:
        """(N, V) bool: which ids each position may hold (its modality's ids only)."""
        ids = torch.arange(self.vocab_size, device=device)
        is_word = ids < self.text_vocab
        view = self.is_view(device)
        return torch.where(view[:, None], ~is_word[None, :], is_word[None, :])

    def restrict(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (B, N, V) with every id of the wrong modality set to -inf (float32)."""
        allowed = self.allowed(logits.device)
        return logits.float().masked_fill(~allowed, float("-inf"))

    # --- building and splitting sequences

    def join(self, captions: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """Caption ids (B, L) and view codes (B, h, w) -> sequences (B, N) of shared ids."""
        if captions.ndim != 2 or captions.shape[1] != self.caption_len:
            raise ValueError(
                f"captions must be shaped (B, {self.caption_len}); got {tuple(captions.shape)}"
            )
        if views.ndim != 3 or tuple(views.shape[1:]) != (self.grid_h, self.grid_w):
            raise ValueError(
                f"views must be shaped (B, {self.grid_h}, {self.grid_w}); got {tuple(views.shape)}"
            )
        if len(captions) != len(views):
            raise ValueError(f"{len(captions)} captions but {len(views)} views")
        _check_range(captions, self.text_vocab, "caption ids")
        _check_range(views, self.image_vocab, "view codes")
        flat = views.reshape(len(views), -1).to(captions.device) + self.text_vocab
        return torch.cat([captions.long(), flat.long()], 1)

    def split(self, seq: torch.Tensor, mask_id: int | None = None):
        """Sequences (B, N) -> (caption ids (B, L), view codes (B, h, w)).

        ``mask_id``, when given, passes through unchanged (so partly decoded sequences split too).
        """
        if seq.ndim != 2 or seq.shape[1] != self.seq_len:
            raise ValueError(
                f"sequences must be shaped (B, {self.seq_len}); got {tuple(seq.shape)}"
            )
        cap, view = seq[:, self.caption_slice], seq[:, self.view_slice]
        shifted = view - self.text_vocab
        if mask_id is not None:
            shifted = torch.where(view == mask_id, view, shifted)
        return cap, shifted.reshape(len(seq), self.grid_h, self.grid_w)


def _check_range(ids: torch.Tensor, high: int, what: str) -> None:
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= high):
        raise ValueError(f"{what} must lie in [0, {high}); got min {ids.min()}, max {ids.max()}")


def encode_captions(captions, caption_len: int = CAPTION_LEN) -> torch.Tensor:
    """Captions (strings, or :class:`Facts` to describe) -> ids (B, L); bad input raises.

    Unknown words and captions longer than ``caption_len`` tokens raise a ValueError saying what
    was expected.
    """
    if isinstance(captions, (str, Facts)):
        captions = [captions]
    rows = []
    for i, c in enumerate(captions):
        if isinstance(c, Facts):
            c = describe(c)
        if not isinstance(c, str):
            raise TypeError(f"caption {i} must be a str or Facts; got {type(c).__name__}")
        words = text.tokenize_caption(c)
        unknown = [w for w in words if w not in text.WORD_ID or w == text.PAD]
        if unknown:
            raise ValueError(
                f"caption {i}: unknown word {unknown[0]!r}; expected words of the caption "
                f"vocabulary: {' '.join(text.CAPTION_VOCAB)}"
            )
        if len(words) > caption_len:
            raise ValueError(f"caption {i} has {len(words)} tokens; expected at most {caption_len}")
        rows.append(text.encode(c, caption_len))
    if not rows:
        raise ValueError("expected at least one caption; got none")
    return torch.stack(rows)


def decode_captions(ids: torch.Tensor) -> list[str]:
    """Caption ids (B, L) -> strings (words up to the first pad)."""
    return text.decode_batch(ids.cpu())


# ----------------------------------------------------------------------------- data


@dataclass
class Pairs:
    """(caption, view) pairs of a recording, with the ground-truth facts of every view."""

    captions: torch.Tensor
    """(F, L) caption ids."""
    views: torch.Tensor
    """(F, h, w) view codes of the tokenizer."""
    facts: list[Facts]
    """Ground-truth facts of each view (what its caption says)."""

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, index) -> Pairs:
        index = np.asarray(index)
        return Pairs(self.captions[index], self.views[index], [self.facts[i] for i in index])


def facts_of(rec) -> list[Facts]:
    """Ground-truth facts of every view of a recording, episode-major."""
    tiles = rec.tiles.reshape(-1, *rec.tiles.shape[2:])
    headings = rec.headings.reshape(-1)
    animals = rec.animals.reshape(-1, *rec.animals.shape[2:])
    return [view_facts(t, h, a) for t, h, a in zip(tiles, headings, animals)]


def pairs_of(rec, tokenizer, caption_len: int = CAPTION_LEN) -> Pairs:
    """Caption every view of ``rec`` (from its ground truth) and tokenize every frame."""
    facts = facts_of(rec)
    captions = text.encode_batch([describe(f) for f in facts], caption_len)
    views = encode_frames(tokenizer, rec.frames.reshape(-1, *rec.frames.shape[2:]))
    return Pairs(captions, views, facts)


def record_pairs(split: str, episodes: int, steps: int, tokenizer, policy: str = "random"):
    """(Pairs, Recording) of ``episodes`` x (``steps`` + 1) views of a split of the learning world."""
    rec = record(split, episodes, steps, policy, world=LEARNING_WORLD, progress=False)
    return pairs_of(rec, tokenizer), rec


class PairDataset(Dataset):
    """Item: {"caption": (L,) int64, "view": (h, w) int64} for the trainer."""

    def __init__(self, pairs: Pairs):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"caption": self.pairs.captions[i], "view": self.pairs.views[i]}
