"""The Stage II autoregressive baseline: both orders with [BOS] announcing the first modality,
cached sampling identical to uncached, vocabulary restricted per position, a tiny model that
learns, and the recipe end to end (oracle tokens)."""

import pytest
import torch

from hitchhiker import zoo
from hitchhiker.config import config_from_dict, config_to_dict
from hitchhiker.masks import text
from hitchhiker.masks.core import CoreConfig
from hitchhiker.tokens import OracleTokenizer
from hitchhiker.train import TrainConfig, train
from hitchhiker.unified import autoregressive as ar
from hitchhiker.unified import autoregressive_recipe as arr
from hitchhiker.unified import masked_recipe as um
from hitchhiker.unified import sequence as sq

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only add noise
K = 9


def tiny(seed=0, dim=32) -> ar.UnifiedAR:
    torch.manual_seed(seed)
    lay = sq.Layout(K)
    core = CoreConfig(lay.vocab_size, lay.seq_len + 1, dim, 1, 2, modalities=2)
    return ar.UnifiedAR(core, lay).eval()


@pytest.fixture(scope="module")
def pairs():
    return sq.record_pairs("train", 4, 16, OracleTokenizer())[0]


def test_sequences_are_written_in_either_order_after_bos(pairs):
    model = tiny()
    lay = model.layout
    x = lay.join(pairs.captions[:4], pairs.views[:4])
    view_first = torch.tensor([False, True, False, True])
    seq, mods = model.arrange(x, view_first)
    assert seq.shape == mods.shape == (4, 129)
    assert (seq[:, 0] == model.bos_id).all()
    assert torch.equal(seq[0, 1:], x[0])  # caption, then view
    assert torch.equal(seq[1, 1:65], x[1, 64:]) and torch.equal(seq[1, 65:], x[1, :64])
    assert mods[0].tolist() == [0] * 65 + [1] * 64  # [BOS] takes the first segment's modality
    assert mods[1].tolist() == [1] * 65 + [0] * 64


def test_cached_sampling_draws_exactly_what_uncached_sampling_draws(pairs):
    model = tiny(seed=2)
    caps = pairs.captions[:3]
    a = model.text_to_image(caps, temperature=1.0, seed=5)
    b = model.text_to_image(caps, temperature=1.0, seed=5, use_cache=False)
    assert torch.equal(a, b) and a.shape == (3, 8, 8) and ((a >= 0) & (a < K)).all()
    c1 = model.image_to_text(pairs.views[:3], temperature=1.0, seed=1)
    c2 = model.image_to_text(pairs.views[:3], temperature=1.0, seed=1, use_cache=False)
    assert c1 == c2
    assert all(w in text.CAPTION_VOCAB for c in c1 for w in text.tokenize_caption(c))
    captions, views = model.generate_joint(2, seed=0)
    assert len(captions) == 2 and views.shape == (2, 8, 8) and ((views >= 0) & (views < K)).all()


def test_a_tiny_ar_model_learns_the_pairs(pairs):
    model = tiny(dim=48)
    cfg = TrainConfig(steps=200, batch_size=16, lr=3e-3, warmup_steps=10, log_every=50)
    result = train(model, sq.PairDataset(pairs), lambda m, b: ar.ar_loss(m, b), cfg, progress=False)
    first, last = result.log[0], result.log[-1]
    assert last["loss"] < 0.5 * first["loss"]
    assert last["text_acc"] > 0.8 and last["view_acc"] > 0.5


def test_the_recipe_fits_and_reports_every_figure():
    cfg, deps = zoo.prepare("unified_ar", "smoke")
    assert isinstance(cfg, arr.Config) and cfg.train == zoo.config_for("unified", "smoke").train
    model = arr.fit(cfg, deps, progress=False)
    assert isinstance(model, ar.UnifiedAR) and model.cfg.seq_len == 129
    figures = arr.evaluate(model, cfg, deps)
    for name in ("t2i_fact_accuracy", "i2t_precision", "i2t_recall", "i2t_parse_rate"):
        assert 0.0 <= figures[f"stage2.unified_ar.{name}"] <= 1.0
    for b in (1, 16):
        assert figures[f"stage2.unified_ar.ms_per_t2i_sample_b{b}"] > 0
    assert figures["stage2.unified_ar.ms_per_i2t_caption_b16"] > 0
    cfg.tune_samples = 4  # the val sweep of real presets: the best temperature of its table
    table = arr.tune_decoding(model, cfg, deps)
    t2i = {k: v for k, v in table.items() if k.startswith("t2i")}
    assert len(t2i) == len(arr.SWEEP_T2I["temperature"])
    assert table[f"t2i temperature={cfg.temperature:g}"] == max(t2i.values())
    assert model.decoding["temperature"] == cfg.temperature
    # the same best-of-n caption check as the masked model, kept only if it gains enough
    (n,) = um.SWEEP_I2T_CANDIDATES
    best_of_n = table[f"i2t best of {n} (self-check) precision"]
    gained = best_of_n >= table["i2t grammar precision"] + um.CANDIDATE_GAIN
    assert cfg.i2t_candidates == model.decoding["i2t_candidates"] == (n if gained else 1)


def test_a_flat_file_loads_with_the_masked_models_renames_and_rope_default():
    cfg = zoo.config_for("unified_ar", "smoke", p_view_first=0.25, **{"train.steps": 77})
    stored = config_to_dict(cfg)  # as files stored it before the configs were nested: flat
    flat = {k: v for k, v in stored.items() if k not in ("tokens", "data", "train", "rotary")}
    flat.update(stored["data"], **stored["train"], tokenizer_sha256="ab" * 32)
    flat.update(image_vocab=K, grid_h=8, grid_w=8)
    old = config_from_dict(arr.Config, flat)
    assert isinstance(old, arr.Config) and old.p_view_first == 0.25 and old.rotary == 0.0
    assert old.tokens.vocab_size == K and old.tokens.sha256 == "ab" * 32
    assert old.train.steps == 77 and old.data == cfg.data


def test_bad_inputs_raise():
    model = tiny()
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        model.image_to_text(torch.zeros(2, 8, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown word"):
        model.text_to_image(["You stand on lava."])
    lay = sq.Layout(K)
    with pytest.raises(ValueError, match=r"\+ 1 for \[BOS\]"):
        ar.UnifiedAR(CoreConfig(lay.vocab_size, lay.seq_len, 32, 1, 2, modalities=2), lay)
