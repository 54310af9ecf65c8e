"""Notebook 01's implement-and-check exercise: BERT's corruption rule.

BERT (Devlin et al. 2019, https://arxiv.org/abs/1810.04805) picks a share ``ratio`` of the real
tokens; of the picked ones 80% become [MASK], 10% a random word and 10% stay as they are, and the
loss is the cross-entropy on the picked tokens only. The learner writes the rule with the same
random draws, in the same order, as the package's :func:`hitchhiker.masks.text.bert_corrupt`
(the reference): one uniform number per token to pick, one to choose among [MASK] / random / keep,
one random word per token.

Shapes: B captions, N = 64 tokens; ids are int64, pads are ``text.PAD_ID``.
"""

from __future__ import annotations

import torch

from hitchhiker.exercises import Exercise, register
from hitchhiker.masks import text

MASK_ID = text.PAD_ID + 1
"""The [MASK] id of the course's text model (the vocabulary, then [MASK])."""


def _reference(tokens: torch.Tensor, mask_id: int, ratio: float, seed: int):
    return text.bert_corrupt(tokens, mask_id, ratio, generator=torch.Generator().manual_seed(seed))


def _cases(g: torch.Generator) -> list[tuple]:
    """Batches of random words, each caption pad-filled after a random length."""
    out = []
    for ratio in (0.15, 0.5, 0.9):
        tokens = torch.randint(0, text.PAD_ID, (6, 64), generator=g)
        length = torch.randint(8, 65, (6, 1), generator=g)
        tokens = torch.where(torch.arange(64) < length, tokens, text.PAD_ID)
        out.append((tokens, MASK_ID, ratio, int(torch.randint(0, 1000, (1,), generator=g))))
    return out


register(
    Exercise(
        name="01.bert",
        task=(
            "corrupt_like_bert(tokens, mask_id, ratio, seed) -> (corrupted, picked): pick each "
            "real (non-pad) token with probability ratio; of the picked, 80% -> mask_id, "
            "10% -> a random word, 10% unchanged."
        ),
        reference=_reference,
        cases=_cases,
        hint=(
            "draw, in this order from torch.Generator().manual_seed(seed): u = rand(shape), "
            "v = rand(shape), words = randint(0, PAD_ID, shape); picked = real & (u < ratio); "
            "[MASK] where picked & (v < 0.8), a random word where picked & (0.8 <= v < 0.9)."
        ),
    )
)
