"""The latent action model: shapes, the bottleneck, the agreement figures, a tiny model that learns."""

import dataclasses

import matplotlib
import numpy as np
import pytest
import torch

from hitchhiker.config import config_from_dict, make_config
from hitchhiker.interactive import action_agreement as agree
from hitchhiker.interactive import latent_action_model as lam_model
from hitchhiker.interactive import latent_action_recipe as lam
from hitchhiker.tokens import OracleTokenizer, TokenGrid
from hitchhiker.world import ACTION_NAMES
from hitchhiker.world.dataset import LEARNING_WORLD, record

matplotlib.use("Agg")


ORACLE = {"tokenizer": OracleTokenizer()}
"""The dependencies of a smoke LAM: the oracle tokenizer its smoke preset names."""


def tiny_config(**overrides) -> lam.Config:
    return make_config(lam.Config, "smoke", tokens=TokenGrid.of(OracleTokenizer()), **overrides)


def random_tokens(cfg, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = cfg.tokens
    return torch.randint(0, t.vocab_size, (n, t.grid_h, t.grid_w), generator=g)


# ----------------------------------------------------------------------------- shapes and API


def test_shapes_and_code_range():
    cfg = tiny_config(codes=5, action_tokens=2)
    model = lam.build(cfg).eval()
    a, b = random_tokens(cfg, 6), random_tokens(cfg, 6, seed=1)
    logits, codes, _ = model(a, b)
    assert logits.shape == (6, cfg.tokens.grid_h * cfg.tokens.grid_w, cfg.tokens.vocab_size)
    assert codes.shape == (6, 2) and codes.min() >= 0 and codes.max() < 5
    ids = model.infer(a, b)
    assert ids.shape == (6,) and model.num_codes == 25
    assert ids.min() >= 0 and ids.max() < 25
    assert torch.equal(model.code_id(model.codes_of(ids)), ids)
    assert torch.equal(model.codes_of(ids), codes)
    assert model.predict(a, ids).shape == logits.shape
    assert model.predict(a, 3).shape == logits.shape  # one latent action for the whole batch
    # flat (B, N) token ids work the same as grids
    assert torch.equal(model.infer(a.flatten(1), b.flatten(1)), ids)


def test_bad_input_raises():
    cfg = tiny_config()
    model = lam.build(cfg).eval()
    a = random_tokens(cfg, 2)
    with pytest.raises(ValueError, match="tokens_t1"):
        model.infer(a, a[:, :4])
    with pytest.raises(ValueError, match="ids must lie"):
        model.infer(a, torch.full_like(a, cfg.tokens.vocab_size))
    with pytest.raises(ValueError, match="integer"):
        model.infer(a.float(), a)
    with pytest.raises(ValueError, match="latent action ids"):
        model.predict(a, torch.tensor([cfg.codes, 0]))
    with pytest.raises(ValueError, match="no tokenizer bound"):
        make_config(lam.Config, "smoke")  # a config is complete when built: tokens and all
    with pytest.raises(ValueError, match="codes >= 2"):
        tiny_config(codes=1)
    with pytest.raises(ValueError, match="E, T\\+1"):
        lam_model.latent_actions_of(model, np.zeros((2, 64, 64, 3), np.uint8), OracleTokenizer())


def test_bottleneck_limits_what_reaches_the_decoder():
    # Whatever frame t+1 is, the decoder only learns which of K codes it got: many different next
    # frames share a code, and then their predictions are identical (up to the float rounding of
    # the straight-through estimator, z + (e - z), which is not exactly e).
    cfg = tiny_config(codes=2)
    model = lam.build(cfg).eval()
    a = random_tokens(cfg, 1).expand(64, -1, -1)
    b = random_tokens(cfg, 64, seed=3)
    with torch.no_grad():
        ids = model.infer(a, b)
        logits = model(a, b)[0]
    assert set(ids.tolist()) <= {0, 1}
    for code in ids.unique():
        group = logits[ids == code]
        torch.testing.assert_close(group, group[:1].expand_as(group), rtol=0, atol=1e-5)
    torch.testing.assert_close(model.predict(a, ids), logits, rtol=0, atol=1e-5)


def test_training_without_labels():
    # The dataset the LAM trains on has no actions in it.
    rec_tokens = torch.zeros(2, 5, 8, 8, dtype=torch.long)
    item = lam.TransitionDataset(rec_tokens)[3]
    assert set(item) == {"tokens_t", "tokens_t1"} and len(lam.TransitionDataset(rec_tokens)) == 8


# ----------------------------------------------------------------------------- agreement figures


def test_nmi_hand_cases():
    x = np.array([0, 0, 1, 1, 2, 2])
    assert agree.nmi(x, x) == pytest.approx(1.0)
    assert agree.nmi(x, np.array([5, 5, 9, 9, 7, 7])) == pytest.approx(1.0)  # a relabelling
    # independent: every code meets every action equally often
    codes, actions = np.meshgrid(np.arange(4), np.arange(3))
    assert agree.nmi(codes, actions) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    assert agree.nmi(rng.integers(0, 6, 20000), rng.integers(0, 6, 20000)) < 0.01
    # one code split in two: I = H(Y) = log 2, H(X) = log 4 -> geometric 1/sqrt(2), arithmetic 2/3
    y = np.array([0, 0, 1, 1])
    assert agree.nmi(np.array([0, 1, 2, 3]), y) == pytest.approx(2**-0.5)
    assert agree.nmi(np.array([0, 1, 2, 3]), y, average="arithmetic") == pytest.approx(2 / 3)
    assert agree.nmi(np.zeros(4), np.zeros(4)) == 1.0 and agree.nmi(np.zeros(4), y) == 0.0
    with pytest.raises(ValueError):
        agree.nmi(x, x[:3])
    with pytest.raises(ValueError, match="average"):
        agree.nmi(x, x, average="max")


def test_purity_and_consistency():
    codes = np.array([0, 0, 0, 1, 1, 2])
    actions = np.array([3, 3, 4, 4, 4, 4])
    assert agree.purity(codes, actions) == pytest.approx(5 / 6)  # code 0 -> 3 (2 of 3), 1, 2 -> 4
    assert agree.consistency(codes, actions) == pytest.approx(4 / 6)  # action 4 spread over 3 codes
    table = agree.contingency(codes, actions)
    assert table.tolist() == [[2, 1], [0, 2], [0, 1]]


def test_effective_transitions_follow_ground_truth():
    rec = record("test", 2, 24, "random", world=LEARNING_WORLD, progress=False)
    eff = agree.effective_transitions(rec)
    moved = (rec.positions[:, 1:] != rec.positions[:, :-1]).any(-1)
    assert eff.shape == rec.actions.shape
    assert eff[moved].all()
    assert not eff[rec.actions == 0].any()  # a noop never shows
    new = agree.revealed_cells(rec)
    assert new.shape == rec.actions.shape + rec.tiles.shape[-2:]
    assert (new.sum((-2, -1)) == np.where(moved, rec.tiles.shape[-1], 0)).all()  # one edge row
    up = moved & (rec.positions[:, 1:, 0] < rec.positions[:, :-1, 0])
    assert new[up][:, 0].all() and not new[up][:, 1:].any()  # moving north reveals the top row


# ----------------------------------------------------------------------------- training


def recolour_episodes(n, steps, seed, actions=5, vocab=8, side=4):
    """A toy world with a hidden action per step: every token of the next frame is the token
    before plus the action, modulo the vocabulary. Invisible in any single frame, obvious in a
    pair: exactly what a latent action model must discover, learnable in seconds."""
    g = torch.Generator().manual_seed(seed)
    acts = torch.randint(0, actions, (n, steps), generator=g)
    frames = [torch.randint(0, vocab, (n, side, side), generator=g)]
    for t in range(steps):
        frames.append((frames[-1] + acts[:, t, None, None]) % vocab)
    return torch.stack(frames, 1), acts.numpy()


def test_tiny_model_learns_codes_that_mean_actions(one_thread):
    from hitchhiker.train import train

    cfg = make_config(
        lam.Config, "smoke", tokens=TokenGrid(8, 4, 4), bypass_steps=50, dead_after=10,
        train={"steps": 150, "lr": 3e-3},
    )  # fmt: skip
    tokens, _ = recolour_episodes(64, 16, seed=0)  # the labels are not even handed over
    model = lam.build(cfg)
    loss = lambda m, b: lam_model.lam_loss(m, b["tokens_t"], b["tokens_t1"])  # noqa: E731
    train(model, lam.TransitionDataset(tokens), loss, cfg.train, progress=False)
    held_out, actions = recolour_episodes(16, 16, seed=1)
    ids = lam_model.infer_tokens(model, held_out)
    # chance: NMI ~0.03 for 256 random codes of 8 against 5 actions; purity ~0.25
    assert agree.nmi(ids, actions) > 0.6
    assert agree.purity(ids, actions) > 0.8
    assert agree.nmi(np.random.default_rng(0).permutation(ids.ravel()), actions.ravel()) < 0.1


@pytest.fixture(scope="module")
def tiny_run():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = tiny_config()
    model = lam.fit(cfg, ORACLE, progress=False)
    figures = lam.evaluate(model, cfg, ORACLE)
    torch.set_num_threads(threads)
    return cfg, model, figures


def test_recipe_figures(tiny_run):
    cfg, model, figures = tiny_run
    names = (
        "nmi nmi_effective purity purity_effective consistency codes_used effective_share "
        "next_frame_token_accuracy next_frame_loss copy_token_accuracy new_land_token_accuracy "
        "seen_token_accuracy"
    ).split()
    assert set(figures) == {f"stage3.lam.{k}" for k in names}
    assert all(np.isfinite(v) for v in figures.values())
    assert 1 <= figures["stage3.lam.codes_used"] <= cfg.codes
    assert 0 <= figures["stage3.lam.nmi"] <= 1 and 0 < figures["stage3.lam.purity"] <= 1
    assert figures["stage3.lam.effective_share"] > 0.8  # the random walk mostly moves


def test_confusion_and_action_map(tiny_run):
    cfg, model, _ = tiny_run
    counts = lam.confusion(model, cfg, "test", OracleTokenizer())
    assert counts.shape == (cfg.codes, len(ACTION_NAMES))
    assert counts.sum() == cfg.data.eval_episodes * cfg.data.episode_steps
    mapping = lam.code_for_action(model, cfg, OracleTokenizer())
    assert sorted(mapping) == list(range(len(ACTION_NAMES)))
    assert all(0 <= c < cfg.codes for c in mapping.values())
    ax = agree.plot_confusion(counts)
    assert ax.get_xlabel() == "true action"


def test_fit_is_deterministic(tiny_run, one_thread):  # same threads as tiny_run: same sums
    cfg, model, figures = tiny_run
    again = lam.fit(dataclasses.replace(cfg), ORACLE, progress=False)
    tokens, _ = lam.split_tokens(cfg, "test", OracleTokenizer())
    assert np.array_equal(
        lam_model.infer_tokens(model, tokens), lam_model.infer_tokens(again, tokens)
    )
    for (name, p), q in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(p, q), name


def test_leaky_variant_widens_the_bottleneck(one_thread):
    cfg = tiny_config()
    leaky = lam.leaky_config(cfg)
    assert leaky.name == "lam_leaky" and cfg.name == "lam"
    assert leaky.codes**leaky.action_tokens > 100 * cfg.codes**cfg.action_tokens
    assert leaky.dim == cfg.dim  # only the bottleneck differs
    # too many ids for a dense table: confusion counts the ids that occur, the action map still works
    model = lam.build(leaky).eval()
    counts = lam.confusion(model, leaky, "test", OracleTokenizer())
    assert counts.shape[1] == len(ACTION_NAMES) and counts.sum(1).min() >= 1
    assert counts.sum() == leaky.data.eval_episodes * leaky.data.episode_steps
    mapping = lam.code_for_action(model, leaky, OracleTokenizer())
    assert all(0 <= c < model.num_codes for c in mapping.values())
    with pytest.raises(ValueError, match="int64"):
        lam.build(dataclasses.replace(leaky, codes=256, action_tokens=8))


def test_a_flat_stored_config_migrates_into_the_nested_shape():
    # Files shipped before the configs were nested store one flat dict: each key finds its place.
    flat = {
        "name": "lam", "tokenizer": "shipped", "vocab_size": 128, "grid_h": 8, "grid_w": 8,
        "tokenizer_sha256": "abc", "codes": 8, "episodes": 256, "episode_steps": 32,
        "policy": "random", "eval_episodes": 32, "steps": 1200, "batch_size": 32, "lr": 3e-3,
        "weight_decay": 0.05, "warmup_steps": 100, "checkpoint_every": 500, "seed": 0,
    }  # fmt: skip
    cfg = config_from_dict(lam.Config, flat)
    assert cfg.tokens == TokenGrid(128, 8, 8, "abc")
    assert (cfg.data.episodes, cfg.data.episode_steps, cfg.data.eval_episodes) == (256, 32, 32)
    assert (cfg.train.steps, cfg.train.lr, cfg.train.seed) == (1200, 3e-3, 0)
