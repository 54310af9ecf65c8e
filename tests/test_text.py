"""Masked text: exact caption ids, corruption as specified, decoding that respects what is given,
a tiny model that learns, clear errors."""

import math

import pytest
import torch

from hitchhiker.config import config_from_dict, make_config
from hitchhiker.masks import text, text_recipe
from hitchhiker.world.dataset import LEARNING_WORLD, record

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def captions():
    return text_recipe.captions_of(record("train", 2, 40, world=LEARNING_WORLD, progress=False))


def tiny(**overrides):
    return text_recipe.build(make_config(text_recipe.Config, "smoke", **overrides)).eval()


def test_captions_round_trip_through_ids(captions):
    ids = text.encode_batch(captions)
    assert ids.shape == (len(captions), 64) and ids.dtype == torch.long
    assert [text.decode(row) for row in ids] == captions
    assert all(text.parses(c) and text.canonical(c) for c in captions)
    doubled = "You stand on grass, facing west. Grass lies north-west, north, north-east and west. "
    doubled += "Grass lies east, south-west, south and south-east."
    assert text.parses(doubled) and not text.canonical(doubled)  # one kind, two sentences
    assert (ids[:, -1] == text.PAD_ID).all()  # every caption is padded


def test_unknown_words_and_long_captions_raise():
    with pytest.raises(ValueError, match="unknown word 'dragon'"):
        text.encode("You stand on a dragon, facing north.")
    with pytest.raises(ValueError, match="seq_len=8"):
        text.encode("You stand on grass, facing north. Water lies north.", seq_len=8)
    with pytest.raises(ValueError, match="objective"):
        make_config(text_recipe.Config, "smoke", objective="gpt")


def test_bert_corruption_is_15_percent_of_real_tokens_80_10_10(captions):
    tokens = text.encode_batch(captions * 20)
    gen = torch.Generator().manual_seed(0)
    out, chosen = text.bert_corrupt(tokens, mask_id=len(text.VOCAB), generator=gen)
    real = tokens != text.PAD_ID
    assert not (chosen & ~real).any()  # pads are never chosen
    assert abs(chosen.sum() / real.sum() - 0.15) < 0.01
    assert torch.equal(out[~chosen], tokens[~chosen])
    as_mask = (out == len(text.VOCAB))[chosen].float().mean()
    kept = (out == tokens)[chosen].float().mean()
    assert abs(as_mask - 0.8) < 0.02 and 0.08 < kept < 0.14  # 10% kept, + random hits of itself


def test_diffusion_corruption_follows_its_ratio(captions):
    tokens = text.encode_batch(captions * 20)
    gen = torch.Generator().manual_seed(0)
    out, masked, t = text.diffusion_corrupt(tokens, mask_id=99, generator=gen)
    assert torch.equal(masked, out == 99) and torch.equal(out[~masked], tokens[~masked])
    share = masked.float().mean(1)
    assert (share - t).abs().mean() < 0.06  # Bernoulli(t) per token over 64 tokens
    assert t.min() > 0 and t.max() <= 1


@pytest.mark.parametrize("remask", ["all", "new"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_infilling_never_changes_given_tokens_and_fills_every_mask(
    captions, remask, temperature, schedule
):
    model = tiny()
    tokens = text.encode_batch(captions[:6])
    holes = text.mask_words(tokens, 0.5, model.mask_id, seed=1)
    given = holes != model.mask_id
    history = []
    out = text.fill(model, holes, 5, temperature, schedule, remask, history=history)
    assert torch.equal(out[given], tokens[given])
    assert (out != model.mask_id).all() and out.max() < len(text.VOCAB)
    assert len(history) == 5 and torch.equal(history[-1], out)
    counts = [int((h == model.mask_id).sum()) for h in history]
    assert counts == sorted(counts, reverse=True) and counts[-1] == 0


def test_generation_returns_full_sequences_without_masks():
    model = tiny()
    out = text.generate(model, 5, steps=4, seed=3)
    assert out.shape == (5, 64) and out.dtype == torch.long
    assert out.min() >= 0 and out.max() < len(text.VOCAB)
    assert torch.equal(out, text.generate(model, 5, steps=4, seed=3))  # seeded


def test_mask_words_hides_an_exact_share_of_real_tokens(captions):
    tokens = text.encode_batch(captions[:10])
    out = text.mask_words(tokens, 0.3, 99, seed=0)
    real = (tokens != text.PAD_ID).sum(1)
    assert ((out == 99).sum(1) == (real.float() * 0.3).round()).all()
    assert not ((out == 99) & (tokens == text.PAD_ID)).any()


def test_bad_token_inputs_raise(captions):
    model = tiny()
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        text.fill(model, torch.zeros(64, dtype=torch.long))
    with pytest.raises(ValueError, match="int64"):
        text.fill(model, torch.zeros(1, 64))
    with pytest.raises(ValueError, match="steps"):
        text.fill(model, text.encode_batch(captions[:1]), steps=0)
    with pytest.raises(ValueError, match="token ids"):
        model(torch.full((1, 64), 99, dtype=torch.long))
    with pytest.raises(ValueError, match="one sequence"):
        text.decode(torch.zeros(2, 3, dtype=torch.long))


def test_a_tiny_model_learns_to_fill_captions(captions):
    """Masked diffusion on 82 captions, 250 steps: most hidden words come back."""
    from hitchhiker.train import TrainConfig, train

    cfg = make_config(text_recipe.Config, "smoke", dim=64, depth=2, heads=4)
    model = text_recipe.build(cfg)
    data = text_recipe.CaptionDataset(captions)
    tokens = data.tokens
    before = text.masked_accuracy(model, tokens, 0.15)
    tcfg = TrainConfig(steps=250, batch_size=32, lr=2e-3, warmup_steps=20, checkpoint_every=0)
    model = train(model, data, text.text_loss, tcfg, progress=False, live_plot=False).model
    after = text.masked_accuracy(model, tokens, 0.15)
    assert before < 0.2 and after > 0.7, (before, after)
    samples = text.decode_batch(text.generate(model, 16, steps=16, seed=0))
    assert sum(map(text.parses, samples)) >= 4  # from nothing to grammar, on a tiny budget


def test_recipe_smoke_fit_and_evaluate():
    cfg = make_config(text_recipe.Config, "smoke")
    figures = text_recipe.evaluate(text_recipe.fit(cfg, {}, progress=False), cfg, {})
    assert set(figures) == {
        "stage1.text.masked_acc_15",
        "stage1.text.infill_acc_50",
        "stage1.text.parse_rate",
        "stage1.text.canonical_rate",
        "stage1.text.unique_share",
    }
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in figures.values())


def test_shipped_text_model_fills_held_out_captions():
    from hitchhiker import zoo

    if not zoo.path_of("text").is_file():
        pytest.skip("no shipped text model yet (python -m hitchhiker.zoo train text --preset cpu)")
    model = zoo.load("text")
    rec = record("test", 2, 15, world=LEARNING_WORLD, progress=False)
    tokens = text.encode_batch(text_recipe.captions_of(rec))
    assert text.masked_accuracy(model, tokens, 0.15) > 0.8
    samples = text.decode_batch(text.generate(model, 16, steps=32, seed=0))
    assert sum(map(text.parses, samples)) >= 8


def test_a_stored_flat_config_keeps_the_episode_length_apart_from_the_optimiser_steps():
    old = {"steps": 48, "train_steps": 12, "eval_steps": 16, "batch_size": 5, "eval_samples": 4}
    cfg = config_from_dict(text_recipe.Config, old)
    assert (cfg.data.episode_steps, cfg.data.eval_steps) == (48, 16)
    assert (cfg.train.steps, cfg.train.batch_size, cfg.eval_samples) == (12, 5, 4)
