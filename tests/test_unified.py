"""The unified masked model of Stage II: one sequence and vocabulary, one model object for all four
tasks, infilling that keeps given tokens in both modalities, guidance 0 = the unguided path, clear
errors on bad captions, a tiny model that learns, and the recipe end to end (oracle tokens)."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hitchhiker import zoo
from hitchhiker.config import config_from_dict, config_to_dict
from hitchhiker.masks import text
from hitchhiker.masks.core import CoreConfig
from hitchhiker.masks.maskgit import iterative_decode
from hitchhiker.tokens import OracleTokenizer, TokenGrid
from hitchhiker.train import TrainConfig, train
from hitchhiker.unified import masked_recipe as um
from hitchhiker.unified import objective, scoring
from hitchhiker.unified import sequence as sq
from hitchhiker.unified.objective import caption_mask
from hitchhiker.unified.self_check import fact_positions
from hitchhiker.world import REGIONS, describe, parse_caption

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only add noise
K = 9  # the oracle tokenizer's codebook: one code per tile kind
CAPTION = "You stand on grass, facing north. Grass lies " + ", ".join(REGIONS[:-1]) + " and "
CAPTION += REGIONS[-1] + "."


def tiny(seed=0, dim=32) -> um.UnifiedModel:
    torch.manual_seed(seed)
    lay = sq.Layout(K)
    core = CoreConfig(lay.vocab_size, lay.seq_len, dim, 1, 2, modalities=2)
    return um.UnifiedModel(core, lay).eval()


@pytest.fixture(scope="module")
def pairs():
    return sq.record_pairs("train", 4, 16, OracleTokenizer())[0]


# ----------------------------------------------------------------------------- sequence


def test_layout_joins_and_splits_one_shared_vocabulary(pairs):
    lay = sq.Layout(K)
    t = len(text.VOCAB)
    assert (lay.vocab_size, lay.seq_len, lay.caption_len) == (t + K, 128, 64)
    x = lay.join(pairs.captions, pairs.views)
    assert x.shape == (len(pairs), 128)
    assert (x[:, :64] < t).all() and (x[:, 64:] >= t).all() and (x[:, 64:] < t + K).all()
    caps, views = lay.split(x)
    assert torch.equal(caps, pairs.captions) and torch.equal(views, pairs.views)
    assert lay.modality().tolist() == [0] * 64 + [1] * 64
    allowed = lay.allowed()
    assert allowed.shape == (128, t + K)
    assert allowed[:64, :t].all() and not allowed[:64, t:].any()
    assert allowed[64:, t:].all() and not allowed[64:, :t].any()
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        lay.join(pairs.captions, pairs.views[:, :4])
    with pytest.raises(ValueError, match=r"view codes must lie in \[0, 9\)"):
        lay.join(pairs.captions, pairs.views + K)


def test_pairs_caption_every_view_from_its_ground_truth(pairs):
    assert len(pairs) == 4 * 17 and pairs.views.shape == (68, 8, 8)
    for ids, f in zip(pairs.captions[::7], pairs.facts[::7]):
        assert parse_caption(text.decode(ids)) == f


def test_invalid_captions_get_a_clear_error():
    with pytest.raises(ValueError, match="unknown word 'zebra'.*expected words"):
        sq.encode_captions(["You stand on zebra, facing north."])
    with pytest.raises(ValueError, match="has 65 tokens; expected at most 64"):
        sq.encode_captions(["north " * 65])
    with pytest.raises(TypeError, match="str or Facts"):
        sq.encode_captions([3])
    model = tiny()
    with pytest.raises(ValueError, match="unknown word"):
        model.text_to_image(["A purple cow."])
    f = parse_caption(CAPTION)
    assert torch.equal(sq.encode_captions([f]), sq.encode_captions([describe(f)]))


# ----------------------------------------------------------------------------- one model, four tasks


def test_one_model_object_performs_all_four_tasks():
    model = tiny()
    views = model.text_to_image([CAPTION, CAPTION], steps=4, guidance=2.0, seed=0)
    assert views.shape == (2, 8, 8) and views.dtype == torch.long
    assert ((views >= 0) & (views < K)).all()  # image codes only: the vocabulary is restricted
    captions = model.image_to_text(views, steps=4, grammar=False)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    assert all(w in text.CAPTION_VOCAB for c in captions for w in text.tokenize_caption(c))
    # the default decoder stays inside the caption grammar: even untrained, every caption parses
    assert all(text.parses(c) for c in model.image_to_text(views, temperature=1.0))
    caps, joint = model.generate_joint(3, steps=6, seed=1)
    assert len(caps) == 3 and joint.shape == (3, 8, 8) and ((joint >= 0) & (joint < K)).all()
    seq = model.infill(
        ([CAPTION], views[:1]), (torch.ones(64, dtype=torch.bool), ~torch.eye(8, dtype=torch.bool))
    )
    assert seq.shape == (1, 128)


def test_a_caption_written_in_a_batch_is_the_one_written_alone(pairs):
    # rows whose next word is forced skip the model, so the rows of a batch run out of step;
    # the most likely caption of a view must not depend on its neighbours
    model = tiny(seed=3)
    views = pairs.views[:5]
    together = model.image_to_text(views, candidates=1)
    alone = [model.image_to_text(views[i : i + 1], candidates=1)[0] for i in range(5)]
    assert together == alone and all(text.parses(c) for c in together)


def test_infilling_never_changes_given_tokens_in_either_modality(pairs):
    model = tiny()
    lay = model.layout
    x = lay.join(pairs.captions[:6], pairs.views[:6])
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(x.shape, generator=gen) < 0.4  # holes in both modalities, per row
    assert mask[:, :64].any() and mask[:, 64:].any()
    out = model.infill(x, mask, steps=5, temperature=1.0, seed=3)
    assert torch.equal(out[~mask], x[~mask])
    assert (out != model.mask_id).all()
    assert (out[:, :64] < lay.text_vocab).all() and (out[:, 64:] >= lay.text_vocab).all()
    # the pair form: regenerate the middle of the view and two words of the caption
    region = torch.zeros(8, 8, dtype=torch.bool)
    region[2:6, 2:6] = True
    words = torch.zeros(64, dtype=torch.bool)
    words[[3, 5]] = True
    seq = model.infill(
        (pairs.captions[:2], pairs.views[:2]), (words, region), steps=4, guidance=1.5
    )
    caps, views = lay.split(seq)
    assert torch.equal(views[:, ~region], pairs.views[:2, ~region])
    assert torch.equal(caps[:, ~words], pairs.captions[:2, ~words])


def test_captions_decode_in_parallel_or_block_by_block_left_to_right(pairs):
    model = tiny(seed=3)
    views = pairs.views[:3]
    for block in (64, 8, 1):
        history = []
        caps = model.image_to_text(
            views, steps=16, block=block, temperature=1.0, history=history, grammar=False
        )
        assert len(caps) == 3
        assert all(w in text.CAPTION_VOCAB for c in caps for w in text.tokenize_caption(c))
        seq = history[-1]
        assert (seq[:, :64] < model.layout.text_vocab).all()  # no [MASK] left in the caption
        assert torch.equal(model.layout.split(seq)[1], views)  # the view is never touched
        if block == 8:  # blocks fill left to right: after block k, later positions are [MASK]
            assert (history[0][:, 8:64] == model.mask_id).all()
            assert (history[0][:, :8] != model.mask_id).all()
    for bad in (0, 65):
        with pytest.raises(ValueError, match="block must lie in"):
            model.image_to_text(views, block=bad, grammar=False)


def test_guidance_zero_reproduces_the_unguided_path():
    model = tiny(seed=1)
    caps = sq.encode_captions([CAPTION] * 3)
    x = torch.full((3, 128), model.mask_id)
    x[:, :64] = caps
    todo = model.layout.is_view().expand_as(x)
    plain = iterative_decode(
        model.restricted_logits,
        x,
        todo,
        model.mask_id,
        6,
        1.0,
        "cosine",
        4.5,
        torch.Generator().manual_seed(7),
    )
    for s in (0, 0.0):
        views = model.text_to_image(caps, steps=6, guidance=s, temperature=1.0, seed=7)
        assert torch.equal(views, model.layout.split(plain)[1])
    guided = model.text_to_image(caps, steps=6, guidance=3.0, temperature=1.0, seed=7)
    assert not torch.equal(guided, views)  # guidance does act
    # the guided formula itself: s = 0 leaves the conditional logits untouched on every position
    with torch.no_grad():
        both = model.guided_logits(x, 0.0)
        cond = model.restricted_logits(x)
    assert torch.allclose(both, cond, atol=1e-5)


def test_guided_logits_apply_the_guidance_mix_on_view_positions_only():
    from hitchhiker.unified.masked_model import guidance_mix

    c, u = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    assert torch.equal(guidance_mix(c, u, 0.0), c)
    assert torch.allclose(guidance_mix(c, u, 1.0), 2 * c - u)
    model = tiny(seed=2)
    x = torch.full((2, 128), model.mask_id)
    x[:, :64] = sq.encode_captions([CAPTION] * 2)
    with torch.no_grad():
        guided = model.guided_logits(x, 2.0)
        free = x.clone()
        free[:, :64] = model.mask_id  # the unconditional pass: the caption all [MASK]
        cond, uncond = (model(s, model.modality_ids).float() for s in (x, free))
    view = model.layout.view_slice
    assert torch.allclose(guided[:, :64], model.layout.restrict(cond)[:, :64], atol=1e-5)
    want = model.layout.restrict(guidance_mix(cond, uncond, 2.0))[:, view]  # view positions
    assert torch.allclose(guided[:, view], want, atol=1e-5)


def test_loss_masks_only_what_each_task_hides(pairs):
    model = tiny()
    batch = {"caption": pairs.captions[:16], "view": pairs.views[:16]}
    torch.manual_seed(0)
    loss, metrics = um.unified_loss(model, batch, (1.0, 0.0, 0.0), 0.0)  # t2i only
    assert torch.isfinite(loss) and set(metrics) == {"view_acc", "text_acc"}
    seen = []
    model.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    um.unified_loss(model, batch, (0.0, 1.0, 0.0), 0.0)  # i2t only: views stay visible
    assert (seen[-1][:, 64:] != model.mask_id).all() and (seen[-1][:, :64] == model.mask_id).any()
    um.unified_loss(model, batch, (1.0, 0.0, 0.0), 0.0)  # t2i only: captions stay visible
    assert (seen[-1][:, :64] != model.mask_id).all() and (seen[-1][:, 64:] == model.mask_id).any()
    um.unified_loss(model, batch, (1.0, 0.0, 0.0), 0.999)  # caption dropout: captions all hidden
    assert (seen[-1][:, :64] == model.mask_id).all()


def test_fact_weight_weights_exactly_the_kind_and_heading_words(pairs, monkeypatch):
    model = tiny()
    caps, views = pairs.captions[:8], pairs.views[:8]
    everything = lambda captions, *args: torch.ones_like(captions, dtype=torch.bool)
    monkeypatch.setattr(objective, "caption_mask", everything)  # i2t with every word hidden
    x = model.layout.join(caps, views)
    x[:, :64] = model.mask_id
    with torch.no_grad():
        logits = model.restricted_logits(x)[:, :64]
        per_word = F.cross_entropy(logits.flatten(0, 1), caps.flatten(), reduction="none")
        fact = fact_positions(caps).float().flatten()
        assert fact.sum() > 0
        for w in (1.0, 5.0):
            weight = 1 + (w - 1) * fact
            want = (per_word * weight).sum() / weight.sum()
            batch = {"caption": caps, "view": views}
            got, _ = um.unified_loss(model, batch, (0.0, 1.0, 0.0), 0.0, fact_weight=w)
            assert torch.allclose(got, want, atol=1e-5)


# ----------------------------------------------------------------------------- learning and recipe


def test_caption_masks_follow_their_schedule(pairs):
    caps = pairs.captions[:64]
    length = (caps != text.PAD_ID).sum(1)
    torch.manual_seed(0)
    suffix = caption_mask(caps, "cosine", suffix_share=1.0)
    start = suffix.int().argmax(1)
    # a suffix: nothing hidden before its first hidden word, everything after it (pads included)
    assert torch.equal(suffix, torch.arange(64)[None] >= start[:, None])
    assert (start <= length).all() and len(set(start.tolist())) > 5
    cosine = caption_mask(caps, "cosine").float().mean()
    uniform = caption_mask(caps, "uniform").float().mean()
    assert cosine > 0.55 and 0.35 < uniform < 0.65  # cosine: E = 2/pi; uniform: E = 1/2
    with pytest.raises(ValueError, match="caption schedule"):
        caption_mask(caps, "linear")


def test_a_tiny_model_learns_to_caption_and_to_draw(pairs):
    model = tiny(dim=48)
    cfg = TrainConfig(steps=200, batch_size=16, lr=3e-3, warmup_steps=10, log_every=50)
    loss = lambda m, b: um.unified_loss(m, b, (0.5, 0.5, 0.0), 0.0)
    result = train(model, sq.PairDataset(pairs), loss, cfg, progress=False)
    assert result.log[-1]["loss"] < 0.5 * result.log[0]["loss"]
    # one forward pass, whole caption hidden (image-to-text) or whole view hidden (text-to-image)
    x = model.layout.join(pairs.captions, pairs.views)
    no_caption, no_view = x.clone(), x.clone()
    no_caption[:, :64] = model.mask_id
    no_view[:, 64:] = model.mask_id
    with torch.no_grad():
        words = model.restricted_logits(no_caption).argmax(-1)[:, :64]
        codes = model.restricted_logits(no_view).argmax(-1)[:, 64:]
    assert (words == x[:, :64]).float().mean() > 0.7  # untrained: ~0.01
    majority = torch.bincount(pairs.views.flatten()).max() / pairs.views.numel()  # ~0.45
    assert (codes == x[:, 64:]).float().mean() > majority + 0.15


def test_the_recipe_fits_and_reports_every_figure():
    cfg, deps = zoo.prepare("unified", "smoke")
    assert isinstance(deps["tokenizer"], OracleTokenizer)
    model = um.fit(cfg, deps, progress=False)
    assert isinstance(model, um.UnifiedModel) and cfg.tokens.vocab_size == K
    figures = um.evaluate(model, cfg, deps)
    assert zoo.evaluate("unified", model, cfg).keys() == figures.keys()
    names = {
        f"stage2.unified.{n}"
        for n in (
            "t2i_fact_accuracy",
            "i2t_precision",
            "i2t_recall",
            "i2t_parse_rate",
            "ms_per_t2i_sample_b1",
            "ms_per_t2i_sample_b16",
            "ms_per_i2t_caption_b16",
        )
    }
    assert names <= set(figures)
    for name in names:
        assert (figures[name] > 0) if ".ms_per_" in name else (0.0 <= figures[name] <= 1.0)
    # the decoding settings travel with the config (and so with a shipped file)
    rebuilt = um.build(config_from_dict(um.Config, config_to_dict(cfg)))
    assert rebuilt.decoding == model.decoding
    # the val sweep that fit() runs at real presets picks its settings from its own table
    cfg.tune_samples = 4
    model.decoding.update(t2i_candidates=2, i2t_candidates=3)  # e.g. a shipped model's picks
    table = um.tune_decoding(model, cfg, deps)
    # every setting of the grid is measured with one candidate, whatever the model's default was
    val = scoring.tuning_pairs(cfg, OracleTokenizer())
    one = scoring.i2t_figures(model, val, grammar=True, candidates=1, seed=cfg.train.seed)
    assert table["i2t grammar precision"] == one["precision"]
    t2i = {k: v for k, v in table.items() if k.startswith("t2i steps=")}
    n_i2t = len(um.SWEEP_I2T) + len(um.SWEEP_I2T_CANDIDATES)
    assert len(t2i) == 18 and len(table) == 18 + 1 + n_i2t
    best = max(t2i, key=t2i.get)
    assert (
        best
        == f"t2i steps={cfg.t2i_steps} guidance={cfg.guidance:g} temperature={cfg.temperature:g}"
    )
    i2t = {k: v for k, v in table.items() if k.startswith("i2t") and "best of" not in k}
    picked = table[
        "i2t grammar precision"
        if cfg.i2t_grammar
        else f"i2t block={cfg.i2t_block} steps={cfg.i2t_steps} precision"
    ]
    assert max(i2t.values()) == picked
    (n,) = um.SWEEP_I2T_CANDIDATES  # best-of-n captions are kept only if they gain enough
    gained = table[f"i2t best of {n} (self-check) precision"] >= picked + um.CANDIDATE_GAIN
    assert cfg.i2t_candidates == (n if gained else 1)
    assert cfg.t2i_candidates in (1, 4) and model.decoding == um.decoding_of(cfg)


def test_bad_configs_and_inputs_raise():
    with pytest.raises(ValueError, match="task probabilities"):
        um.Config(p_t2i=-1)
    with pytest.raises(ValueError, match="the unified config has no tokenizer bound"):
        um.Config()  # complete when built: the zoo binds the tokenizer's grid
    # a model reads the tokenizer it was trained on: another codebook is refused, not decoded
    other = dataclasses.replace(zoo.config_for("unified", "smoke"), tokens=TokenGrid(4, 8, 8))
    model = tiny()
    with pytest.raises(ValueError, match="4-code"):
        um.evaluate(model, other, {"tokenizer": OracleTokenizer()})
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        model.image_to_text(torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="shaped"):
        model.infill(torch.zeros(1, 10, dtype=torch.long), torch.zeros(10, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        model.infill(torch.zeros(1, 128, dtype=torch.long), torch.zeros(128))
    with pytest.raises(ValueError, match="n must be"):
        model.generate_joint(0)


def test_every_preset_turns_half_of_each_head_and_older_files_load_as_trained():
    for name in ("unified", "unified_ar"):
        for preset in ("smoke", "cpu", "gpu", "large"):
            assert zoo.config_for(name, preset).rotary == 0.5
    # a config stored before the field existed has no "rotary": it must rebuild without RoPE
    stored = config_to_dict(zoo.config_for("unified", "smoke"))
    new = config_from_dict(um.Config, stored)
    del stored["rotary"]
    old = config_from_dict(um.Config, stored)
    assert old.rotary == 0.0
    assert um.build(old).core.rotary_dims == 0
    assert um.build(new).core.rotary_dims == (new.dim // new.heads) // 2


def flat_file_config(cfg) -> dict:
    """The config as files stored it before the configs were nested: one flat dict."""
    stored = config_to_dict(cfg)
    flat = {k: v for k, v in stored.items() if k not in ("tokens", "data", "train")}
    flat.update(stored["data"], **stored["train"], tokenizer_sha256="ab" * 32)
    tok = stored["tokens"]
    flat.update(image_vocab=tok["vocab_size"], grid_h=tok["grid_h"], grid_w=tok["grid_w"])
    return flat


def test_flat_files_load_nested_and_without_rope_when_they_lack_it():
    over = {"train.steps": 77, "train.lr": 2e-3, "data.episodes": 5, "data.episode_steps": 9}
    cfg = zoo.config_for("unified", "smoke", **over)
    flat = flat_file_config(cfg)
    migrated = config_from_dict(um.Config, flat)
    assert migrated.tokens == TokenGrid(K, 8, 8, "ab" * 32)
    assert (migrated.train.steps, migrated.train.lr) == (77, 2e-3)  # "steps": optimizer steps
    assert (migrated.data.episodes, migrated.data.episode_steps) == (5, 9)
    assert config_to_dict(migrated) == {
        **config_to_dict(cfg),
        "tokens": config_to_dict(migrated.tokens),
    }
    del flat["rotary"]  # written before RoPE came in
    assert config_from_dict(um.Config, flat).rotary == 0.0


class _Knower:
    """A stand-in model that answers every position with the true token of the pair it belongs
    to (or the next word id, a wrong one, if asked): checks kind_reading's bookkeeping exactly."""

    def __init__(self, pairs, layout, wrong=False):
        self.layout, self.mask_id, self.pos = layout, layout.vocab_size, torch.zeros(1)
        self.truth = layout.join(pairs.captions, pairs.views)
        self.truth[:, layout.caption_slice] += int(wrong)

    def restricted_logits(self, x):
        view = self.layout.view_slice
        owner = (x[:, None, view] == self.truth[None, :, view]).all(-1).float().argmax(1)
        return F.one_hot(self.truth[owner], self.layout.vocab_size + 1).float()


@pytest.mark.parametrize("rest_hidden", [False, True])
def test_kind_reading_counts_every_kind_sentence_and_scores_exactly(pairs, rest_hidden):
    from hitchhiker.unified.scoring import KIND_SENTENCES, kind_reading

    lay = sq.Layout(OracleTokenizer().codebook_size)
    share, count = kind_reading(_Knower(pairs, lay), pairs, rest_hidden)
    groups = np.array([len(set(f.regions.values())) for f in pairs.facts])  # a sentence per kind
    assert count.tolist() == [(groups > k).sum() for k in range(KIND_SENTENCES)]
    assert np.all(share[count > 0] == 1.0)
    share, _ = kind_reading(_Knower(pairs, lay, wrong=True), pairs, rest_hidden)
    assert np.all(share == 0.0)
