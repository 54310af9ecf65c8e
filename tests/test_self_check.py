"""The model checks its own drawings: fact words are found, the score is one forward pass, and
best-of-n keeps exactly the candidate the model reads back best."""

import pytest
import torch

from hitchhiker.masks import text
from hitchhiker.masks.core import CoreConfig
from hitchhiker.unified import sequence as sq
from hitchhiker.unified.masked_model import UnifiedModel
from hitchhiker.unified.self_check import FACT_WORDS, best_of, caption_fit, fact_positions
from hitchhiker.world import REGIONS

pytestmark = pytest.mark.usefixtures("one_thread")
CAPTION = "You stand on a stump, facing north. Grass lies " + ", ".join(REGIONS[:-1])
CAPTION += " and " + REGIONS[-1] + ". A sheep is to the east."


def tiny(seed=0) -> UnifiedModel:
    torch.manual_seed(seed)
    lay = sq.Layout(9)
    return UnifiedModel(CoreConfig(lay.vocab_size, lay.seq_len, 32, 1, 2, modalities=2), lay).eval()


def test_fact_words_are_the_kind_and_heading_words():
    ids = sq.encode_captions([CAPTION])
    hidden = [text.VOCAB[i] for i in ids[0][fact_positions(ids)[0]].tolist()]
    assert hidden == ["stump", "north", "grass"]
    assert {"grass", "stumps", "houses", "stump"} <= set(FACT_WORDS)
    assert not {"a", "lies", "sheep", "east", "north"} & set(FACT_WORDS)  # regions stay visible


def test_best_of_keeps_the_candidate_the_model_reads_back_best():
    model = tiny()
    caps = sq.encode_captions([CAPTION, CAPTION])
    n = 3
    # the same draws best_of makes: the captions repeated, one random stream
    many = model.text_to_image(caps.repeat_interleave(n, 0), steps=2, seed=5)
    score = caption_fit(model, caps.repeat_interleave(n, 0), many).view(2, n)
    want = many.view(2, n, 8, 8)[torch.arange(2), score.argmax(1)]
    got = best_of(model, caps, n, steps=2, seed=5)
    assert torch.equal(got, want)
    assert torch.equal(model.text_to_image(caps, steps=2, seed=5, candidates=3), want)
    assert torch.equal(  # one candidate is the plain path
        model.text_to_image(caps, steps=2, seed=5, candidates=1),
        model.text_to_image(caps, steps=2, seed=5),
    )
    with pytest.raises(ValueError, match="candidates must be >= 1"):
        best_of(model, caps, 0)
