"""Masked dynamics: block-causal attention (later frames never change earlier predictions), actions
that change the prediction, cached decoding equal to uncached, training windows padded like a
reset, the engine interface driving the play controller, and a tiny model that learns."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hitchhiker import zoo
from hitchhiker.config import make_config
from hitchhiker.interactive import masked_dynamics_recipe as dyn
from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.interactive.masked_dynamics_model import DynamicsModel, block_causal_mask
from hitchhiker.interactive.rollout import teacher_forced_frames
from hitchhiker.interactive.truth import truth_set
from hitchhiker.masks.core import CoreConfig, KVCache
from hitchhiker.play import PlayController
from hitchhiker.tokens import OracleTokenizer, TokenGrid
from hitchhiker.world import ACTION_NAMES, SimulatorEngine, read_tiles
from hitchhiker.world.dataset import LEARNING_WORLD, record

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(vocab=9, tokens=64, context=3, actions=6, seed=0) -> DynamicsModel:
    torch.manual_seed(seed)
    core = CoreConfig(vocab, tokens, dim=32, depth=2, heads=2, modalities=context + 1)
    return DynamicsModel(core, actions, context, (8, tokens // 8)).eval()


def tiny_cfg(**over):
    base = {
        "tokens": TokenGrid.of(OracleTokenizer()),
        "actions": 6,
        "action_codes": tuple(range(6)),
    }
    return make_config(dyn.Config, "smoke", **{**base, **over})


def truth_of(split="val", episodes=2, steps=12):
    rec = record(split, episodes, steps, world=LEARNING_WORLD, progress=False)
    return SimpleNamespace(frames=rec.frames, actions=rec.actions, tiles=rec.tiles)


def teacher_forced_accuracy(engine, truth) -> float:
    return float(
        (read_tiles(teacher_forced_frames(engine, truth)).kinds == truth.tiles[:, 1:]).mean()
    )


@pytest.fixture(scope="module")
def trained():
    """A small model trained on oracle tokens (tile kinds): shared by the learning tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg, deps = zoo.prepare(
        "dynamics",
        "smoke",
        context=1,
        dim=64,
        heads=4,
        depth=2,
        data={"episodes": 24},
        train={"steps": 300, "batch_size": 32, "lr": 3e-3, "warmup_steps": 20},
    )
    model = dyn.fit(cfg, deps, progress=False)
    torch.set_num_threads(threads)
    return model, cfg


# ----------------------------------------------------------------------------- the model


def test_block_causal_mask_is_bidirectional_within_and_causal_across_frames():
    m = block_causal_mask(3, 2)
    want = torch.tensor([[1, 1, 0, 0, 0, 0]] * 2 + [[1, 1, 1, 1, 0, 0]] * 2 + [[1] * 6] * 2)
    assert torch.equal(m, want.bool())


def test_later_frames_never_change_predictions_for_earlier_ones():
    model = tiny()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 9, (2, 4, 64), generator=g)
    actions = torch.randint(0, 6, (2, 4), generator=g)
    base = model(tokens, actions)
    for f in (1, 2, 3):  # rewrite frame f (tokens and action): frames < f must not notice
        t2, a2 = tokens.clone(), actions.clone()
        t2[:, f:] = torch.randint(0, 10, t2[:, f:].shape, generator=g)
        a2[:, f:] = (a2[:, f:] + 1) % 6
        out = model(t2, a2)
        torch.testing.assert_close(out[:, :f], base[:, :f], rtol=0, atol=1e-6)
        assert (out[:, f] - base[:, f]).abs().max() > 1e-3  # and frame f itself does


def test_the_training_pass_predicts_each_frame_as_inference_would():
    model = tiny()
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 9, (2, 4, 64), generator=g)
    actions = torch.randint(0, 6, (2, 4), generator=g)
    hide = torch.rand(2, 3, 64, generator=g) < 0.5
    train = model(tokens, actions, hide=hide)  # every slot 1..3 in one pass
    assert train.shape == (2, 3, 64, 9)
    for j in (1, 2, 3):  # slot j alone: its clean past, then itself with [MASK]s
        x = torch.where(hide[:, j - 1], model.mask_id, tokens[:, j])
        alone = model(torch.cat([tokens[:, :j], x[:, None]], 1), actions[:, : j + 1])[:, -1]
        torch.testing.assert_close(train[:, j - 1], alone, rtol=0, atol=1e-5)


def test_changing_the_action_changes_the_prediction_by_construction():
    model = tiny()
    tokens = torch.randint(0, 9, (1, 4, 64), generator=torch.Generator().manual_seed(1))
    outs = [model(tokens, torch.tensor([[6, 0, 0, a]]))[0, -1] for a in range(6)]
    for a in range(1, 6):
        assert (outs[a] - outs[0]).abs().max() > 1e-3


def test_bad_inputs_raise_clear_errors():
    model = tiny()
    tokens, actions = torch.zeros(1, 4, 64, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="token ids"):
        model(tokens[:, :, :10], actions)
    with pytest.raises(ValueError, match="actions shaped"):
        model(tokens, actions[:, :2])
    with pytest.raises(ValueError, match="slots"):
        model(tokens, actions, slot=1)
    with pytest.raises(ValueError, match="actions must lie"):
        model(tokens, actions + 7)
    with pytest.raises(ValueError, match="action_source"):
        tiny_cfg(action_source="mind reading")
    with pytest.raises(ValueError, match="no tokenizer bound"):
        make_config(dyn.Config, "smoke")  # a config is complete when built: tokens and actions
    with pytest.raises(ValueError, match="no actions bound"):
        tiny_cfg(actions=0, action_codes=())


# ----------------------------------------------------------------------------- training data


def test_windows_pad_the_episode_start_like_a_reset():
    tokens = torch.arange(5)[None, :, None, None].expand(1, 5, 8, 8)  # frame i is all i
    actions = torch.tensor([[1, 2, 3, 4]])
    data = dyn.WindowDataset(tokens, actions, context=3, pad_action=0)
    assert len(data) == 4
    first, last = data[0], data[3]
    assert first["tokens"][:, 0, 0].tolist() == [0, 0, 0, 1]
    assert first["actions"].tolist() == [-1, 0, 0, 1]  # -1: "none", then padding, then the action
    assert last["tokens"][:, 0, 0].tolist() == [1, 2, 3, 4]
    assert last["actions"].tolist() == [-1, 2, 3, 4]


def test_pad_windows_and_context_noise():
    tokens = torch.arange(4)[None, :, None].expand(64, 4, 16).clone()
    actions = torch.full((64, 4), 5)
    t, a = dyn.pad_windows(tokens, actions, pad_action=0, prob=1.0)
    k = (a[:, 1:] == 0).sum(1)  # padded slots after the first
    assert ((k >= 1) & (k <= 2)).all() and (a[:, -1] == 5).all()
    assert torch.equal(t[:, :, 0], torch.maximum(torch.arange(4)[None], k[:, None]))
    assert torch.equal(dyn.pad_windows(tokens, actions, 0, prob=0.0)[0], tokens)
    noisy = dyn.corrupt_context(tokens, 1.0, vocab=1000)
    assert torch.equal(noisy[:, -1], tokens[:, -1])  # the target frame is never corrupted
    changed = (noisy[:, :-1] != tokens[:, :-1]).float().mean().item()
    assert 0.3 < changed < 0.7  # p ~ U(0, 1) per window: half on average
    assert torch.equal(dyn.corrupt_context(tokens, 0.0, vocab=9), tokens)


def test_the_loss_weighs_the_explorer_cell():
    model = tiny()
    g = torch.Generator().manual_seed(4)
    batch = {"tokens": torch.randint(0, 9, (8, 4, 8, 8), generator=g)}
    batch["actions"] = torch.randint(0, 6, (8, 4), generator=g)
    losses = []
    for weight in (1.0, 1.0, 50.0):
        torch.manual_seed(0)  # the same masks each time
        loss, metrics = dyn.dynamics_loss(model, batch, explorer_weight=weight)
        losses.append(loss.item())
        assert {"masked_acc", "explorer_acc"} <= set(metrics)
    assert losses[0] == losses[1] != losses[2] and np.isfinite(losses).all()


# ----------------------------------------------------------------------------- the engine


def test_cached_and_uncached_decoding_agree():
    model, cfg = tiny(), tiny_cfg()
    engine = DynamicsEngine(model, OracleTokenizer(), decode_steps=4, temperature=1.0, cfg=cfg)
    g = torch.Generator().manual_seed(2)
    ctx, acts = torch.randint(0, 9, (3, 3, 64), generator=g), torch.randint(0, 6, (3, 3))
    acts[:, 0] = model.none_action
    nxt = torch.randint(0, 6, (3,), generator=g)
    x = torch.where(torch.rand(3, 64, generator=g) < 0.5, model.mask_id, ctx[:, -1])
    with torch.no_grad():
        cached = engine.logits_fn(ctx, acts, nxt, cached=True)
        uncached = engine.logits_fn(ctx, acts, nxt, cached=False)
        torch.testing.assert_close(cached(x), uncached(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(cached(x), uncached(x), rtol=0, atol=1e-5)  # cache stays frozen
    outs = [
        engine.predict(ctx, acts, nxt, torch.Generator().manual_seed(7), cached=c)
        for c in (True, False)
    ]
    assert torch.equal(outs[0], outs[1])
    assert ((outs[0] >= 0) & (outs[0] < 9)).all()


def test_the_context_filled_frame_by_frame_is_the_masked_pass():
    """fill_context (the dream's fast path) gives the block-causal pass's features and KV cache."""
    model = tiny().eval()
    g = torch.Generator().manual_seed(5)
    ctx, acts = torch.randint(0, 9, (4, 3, 64), generator=g), torch.randint(0, 6, (4, 3))
    acts[:, 0] = model.none_action
    with torch.no_grad():
        masked, framed = KVCache(), KVCache()
        want = model.hidden(ctx, acts, 0, masked)[:, -64:]
        got = model.fill_context(ctx, acts, framed)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert len(framed) == len(masked) == 3 * 64
    for (k1, v1), (k2, v2) in zip(masked.layers, framed.layers):
        torch.testing.assert_close(k2, k1, rtol=0, atol=1e-6)
        torch.testing.assert_close(v2, v1, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="empty KV cache"):
        model.fill_context(ctx, acts, framed)
    with pytest.raises(ValueError, match="keys_only fills a KV cache"):
        model.core(torch.zeros(1, 64, model.cfg.dim), keys_only=True)


def test_engine_interface_and_rollout_shapes():
    engine = DynamicsEngine(tiny(), OracleTokenizer(), cfg=tiny_cfg(), seed=3)
    assert engine.actions == ACTION_NAMES and engine.name == "dynamics"
    assert engine.decode_steps == tiny_cfg().decode_steps
    frame = engine.reset(5)
    assert np.array_equal(frame, SimulatorEngine(LEARNING_WORLD).reset(5))  # a real first frame
    out = engine.step("up")
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert engine.step(2).shape == (64, 64, 3)
    with pytest.raises(ValueError, match="unknown action"):
        engine.step("fly")
    truth = truth_of()
    for n in (1, 2, 5):  # shorter and longer contexts than the window of 3
        ctx, ctx_actions, actions = truth.frames[:, :n], truth.actions[:, : n - 1], truth.actions
        imagined = engine.rollout(ctx, ctx_actions, actions[:, n - 1 :])
        assert imagined.shape == (2, 13 - n, 64, 64, 3) and imagined.dtype == np.uint8
    args = truth.frames[:, :2], truth.actions[:, :1], truth.actions[:, 1:]
    assert np.array_equal(engine.rollout(*args), engine.rollout(*args))  # deterministic by seed
    with pytest.raises(ValueError, match="context_actions"):
        engine.rollout(truth.frames[:, :2], truth.actions[:, :2], truth.actions[:, 2:])


def test_a_latent_action_engine_takes_raw_codes():
    cfg = tiny_cfg(action_source="latent", actions=8, action_codes=(5, 1, 2, 3, 4, 5))
    engine = DynamicsEngine(tiny(actions=8), OracleTokenizer(), cfg=cfg, seed=1)
    assert engine.latent_codes == 8 and engine.buttons_of_code(5) == ["noop", "interact"]
    assert engine.buttons_of_code(0) == [] and engine.buttons_of_code(3) == ["left"]
    with pytest.raises(RuntimeError, match="reset"):
        engine.step_code(0)
    engine.reset(2)
    by_code = engine.step_code(3)
    engine.reset(2)
    by_button = engine.step("left")  # the button plays the code it is mapped to
    assert by_code.shape == (64, 64, 3) and np.array_equal(by_code, by_button)
    assert int(engine._actions[0, -1]) == 3  # the window records the code that led to the frame
    for bad in (8, -1, 2.0, True):
        with pytest.raises(ValueError, match="latent code"):
            engine.step_code(bad)
    true = DynamicsEngine(tiny(), OracleTokenizer(), cfg=tiny_cfg())
    assert true.latent_codes is None
    with pytest.raises(ValueError, match="true actions"):
        true.step_code(0)


def test_the_engine_drives_the_play_controller_headlessly(trained):
    model, cfg = trained
    engine = DynamicsEngine(model, OracleTokenizer(), cfg=cfg)
    ctl = PlayController(engine, seed=4)
    start = ctl.frame.copy()
    assert np.array_equal(start, SimulatorEngine(LEARNING_WORLD).reset(4))
    for action in ("right", "right", "down", "noop"):
        frame = ctl.press(action)
        assert ctl.last_error is None and frame.shape == (64, 64, 3)
    assert ctl.steps == 4 and ctl.fps > 0
    assert not np.array_equal(ctl.frame, start)  # the dreamed world moved


def test_a_tiny_model_learns_the_dynamics(trained):
    model, cfg = trained
    assert np.mean(model.losses[-20:]) < 0.6 * np.mean(model.losses[:20])
    truth = truth_set("val", 4, context=3, horizon=10)  # 12 targets per episode
    engine = DynamicsEngine(model, OracleTokenizer(), 2, 0.0, cfg=cfg)
    acc = teacher_forced_accuracy(engine, truth)
    copy = (truth.tiles[:, 1:] == truth.tiles[:, :-1]).mean()  # repeat the last frame
    assert acc > 0.86 and acc > copy + 0.02, (acc, copy)  # it learned to scroll the view


def test_a_trained_model_moves_the_view_as_commanded(trained):
    model, cfg = trained
    engine = DynamicsEngine(model, OracleTokenizer(), 2, 0.0, cfg=cfg)
    truth = truth_of("val", 8, 4)
    ctx, acts = truth.frames[:, :2], truth.actions[:, :1]
    kinds = {}
    for a in ("up", "down", "left", "right"):
        act = np.full((8, 1), ACTION_NAMES.index(a))
        kinds[a] = read_tiles(engine.rollout(ctx, acts, act)[:, 0]).kinds
    assert (kinds["up"] != kinds["down"]).mean() > 0.1
    assert (kinds["left"] != kinds["right"]).mean() > 0.1


def test_recipe_fits_and_evaluates_in_smoke_mode():
    cfg, deps = zoo.prepare("dynamics", "smoke", **{"train.steps": 10})
    model = dyn.fit(cfg, deps, progress=False)
    assert (cfg.tokens.vocab_size, cfg.tokens.grid_h) == (9, 8)
    assert (cfg.actions, cfg.action_codes) == (6, tuple(range(6)))
    figures = dyn.evaluate(model, cfg, deps)
    for k in ("teacher_forced_tile_accuracy", "action_following_16", "delta_psnr_16", "fps_b1"):
        assert np.isfinite(figures[f"stage3.dynamics.{k}"]), k
    for s in (1, 2, 4, 8):
        assert 0 <= figures[f"stage3.dynamics.val_tile_accuracy_s{s}"] <= 1
    assert dyn.VARIANTS["no_context_noise"] == {"context_noise": 0.0, "name": "dynamics_noaug"}
    tokenizer = zoo.dependencies("dynamics", cfg)["tokenizer"]  # what the zoo hands the recipe
    engine = DynamicsEngine(model, tokenizer, decode_steps=1, cfg=cfg)
    assert engine.decode_steps == 1 and engine.reset(0).shape == (64, 64, 3)


def test_the_walls_variant_differs_only_in_the_play_it_learns_from():
    """dynamics_walls is the shipped recipe recorded with the bumping walk and, at the cpu preset
    only, trained three times as long (the wall rule appears only after the shipped 800 steps)."""
    walls, plain = zoo.config_for("dynamics_walls", "smoke"), zoo.config_for("dynamics", "smoke")
    assert walls.data.policy == "bumper" and plain.data.policy == "random"
    assert dataclasses.replace(walls, name="dynamics", data=plain.data) == plain
    shipped_steps = dyn.Config.__dataclass_fields__["train"].default_factory().steps
    assert zoo.variant_overrides("dynamics_walls", "cpu")["train"] == {"steps": 3 * shipped_steps}
    assert "train" not in zoo.variant_overrides("dynamics_walls", "smoke")


def test_the_latent_variant_trains_on_lam_codes_and_plays_with_true_actions():
    cfg, deps = zoo.prepare("dynamics_latent", "smoke", train={"steps": 5})
    assert set(deps) == {"tokenizer", "lam"}  # a smoke LAM fitted on the same (oracle) tokens
    assert deps["lam"].cfg.tokens == cfg.tokens
    model = dyn.fit(cfg, deps, progress=False)
    assert cfg.name == "dynamics_latent" and cfg.action_source == "latent"
    assert model.num_actions == cfg.actions >= 2 and len(cfg.action_codes) == len(ACTION_NAMES)
    assert all(0 <= c < cfg.actions for c in (*cfg.action_codes, cfg.pad_action))
    engine = DynamicsEngine(model, OracleTokenizer(), cfg=cfg)
    engine.reset(0)
    assert engine.step("left").shape == (64, 64, 3)
