"""The model checks its own work: fact words are found, each score is one forward pass (the AR
baseline's log p(view | caption) exact), and best-of-n keeps exactly the candidate the model's
own check ranks first, in both directions and for both Stage II models."""

import pytest
import torch

from hitchhiker.masks import text
from hitchhiker.masks.core import CoreConfig
from hitchhiker.unified import autoregressive as ar
from hitchhiker.unified import sequence as sq
from hitchhiker.unified.masked_model import UnifiedModel
from hitchhiker.unified.self_check import (
    FACT_WORDS,
    best_caption_of,
    best_of,
    caption_candidates,
    caption_fit,
    fact_positions,
    view_fit,
)
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


def tiny_ar(seed=0) -> ar.UnifiedAR:
    torch.manual_seed(seed)
    lay = sq.Layout(9)
    core = CoreConfig(lay.vocab_size, lay.seq_len + 1, 32, 1, 2, modalities=2)
    return ar.UnifiedAR(core, lay).eval()


def views(b=2, seed=3):
    return torch.randint(0, 9, (b, 8, 8), generator=torch.Generator().manual_seed(seed))


def test_the_masked_view_fit_is_text_to_images_first_step():
    model, v = tiny(), views()
    caps = sq.encode_captions([CAPTION, CAPTION])
    got = model.view_code_logp(caps, v).sum(1)
    x = model.layout.join(caps, v)
    x[:, model.layout.view_slice] = model.mask_id  # every view code hidden, the caption given
    logp = model.restricted_logits(x)[:, model.layout.view_slice].log_softmax(-1)
    want = logp.gather(-1, (v.reshape(2, -1) + model.layout.text_vocab)[..., None]).sum((1, 2))
    assert torch.allclose(got, want, atol=1e-4)
    assert got.shape == (2,) and (got < 0).all()
    fit = view_fit(model, caps, v)  # the codes it expects to draw right: between 0 and 64
    assert torch.allclose(fit, model.view_code_logp(caps, v).exp().sum(1))
    assert ((fit > 0) & (fit < 64)).all()


def test_the_ar_view_fit_is_the_exact_chain_rule_log_likelihood():
    model, v = tiny_ar(), views(1)
    caps = sq.encode_captions([CAPTION])
    lay = model.layout
    seq, mods = model.arrange(lay.join(caps, v), torch.zeros(1, dtype=torch.bool))
    want = 0.0
    with torch.no_grad():
        for t in range(lay.caption_len + 1, seq.shape[1]):  # one view code at a time, no cache
            last = model(seq[:, :t], mods[:, :t], is_causal=True)[:, -1:]
            logp = model.restrict(last, mods[:, t : t + 1]).log_softmax(-1)
            want += float(logp[0, 0, seq[0, t]])
    assert abs(float(model.view_code_logp(caps, v).sum()) - want) < 1e-3


@pytest.mark.parametrize("make", [tiny, tiny_ar], ids=["masked", "ar"])
def test_best_caption_of_keeps_the_caption_the_model_draws_the_view_back_from_best(make):
    model, v, n = make(), views(3), 3
    # the draws best_caption_of makes: the most likely caption, then sampled ones, seeds 5, 6, 7
    drawn = [model.image_to_text(v, seed=5)]
    drawn += [model.image_to_text(v, seed=5 + j, temperature=0.7) for j in range(1, n)]
    assert len({tuple(d) for d in drawn}) > 1  # the candidates differ
    score = torch.stack([view_fit(model, sq.encode_captions(d), v) for d in drawn])
    want = [drawn[j][row] for row, j in enumerate(score.argmax(0).tolist())]
    got_drawn, got_score = caption_candidates(model, v, n, 0.7, seed=5)
    assert got_drawn == drawn and torch.allclose(got_score, score)
    assert best_caption_of(model, v, n, 0.7, seed=5) == want
    assert model.image_to_text(v, seed=5, candidates=n) == want  # the default temperature, 0.7
    assert model.image_to_text(v, seed=5, candidates=1) == drawn[0]  # one: the plain path
    with pytest.raises(ValueError, match="candidates must be >= 1"):
        best_caption_of(model, v, 0, 0.7)
