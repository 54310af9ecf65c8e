"""The engine contract: every engine kind satisfies it, the one argument check refuses bad input
with a message naming what was expected, padding and frame conversion do what they say, and many
worlds step as one batch exactly as they would alone."""

import numpy as np
import pytest
import torch

from hitchhiker.config import make_config
from hitchhiker.engine import (
    BatchPlayable,
    Engine,
    LoopBatch,
    Playable,
    StepResult,
    action_index,
    action_names,
    as_frame,
    as_rollout_frames,
    as_step_result,
    check_engine,
    check_rollout_args,
    check_seed,
    check_seeds,
    context_window,
    decode_steps_of,
    pad_context,
)
from hitchhiker.interactive import diffusion_recipe as diffusion
from hitchhiker.interactive import masked_dynamics_recipe as dyn
from hitchhiker.interactive.diffusion_engine import DiffusionEngine
from hitchhiker.interactive.dream_play import SideBySide
from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.interactive.truth import CopyLastFrame, SimulatorRollout
from hitchhiker.masks.core import CoreConfig
from hitchhiker.tokens import OracleTokenizer, TokenGrid
from hitchhiker.world import ACTION_NAMES, Action, SimulatorEngine
from hitchhiker.world.dataset import LEARNING_WORLD

pytestmark = pytest.mark.usefixtures("one_thread")


def masked_engine() -> DynamicsEngine:
    """A tiny untrained masked dynamics engine over oracle tokens (tile kinds)."""
    torch.manual_seed(0)
    core = CoreConfig(9, 64, dim=32, depth=2, heads=2, modalities=4)
    model = dyn.DynamicsModel(core, 6, 3, (8, 8)).eval()
    tokens = TokenGrid.of(OracleTokenizer())
    cfg = make_config(dyn.Config, "smoke", tokens=tokens, actions=6, action_codes=tuple(range(6)))
    return DynamicsEngine(model, OracleTokenizer(), cfg=cfg)


def diffusion_engine() -> DiffusionEngine:
    """A tiny untrained diffusion engine in pixel space (DIAMOND's)."""
    return DiffusionEngine(diffusion.build(make_config(diffusion.Config, "smoke", space="pixels")))


def latent_diffusion_engine() -> DiffusionEngine:
    """A tiny untrained diffusion engine over the shipped tokenizer's latents (GameNGen's way)."""
    from hitchhiker import zoo

    cfg, deps = zoo.prepare("diffusion", "smoke")
    model = diffusion.build(cfg)
    model.set_codebook(deps["tokenizer"])
    return diffusion.engine_of(model, deps)


def real_start(batch=2, n=2):
    """A real context: batch copies of world 7's first n frames under 'right', and the actions."""
    sim = SimulatorEngine(LEARNING_WORLD)
    frames = [sim.reset(7)] + [sim.step("right") for _ in range(n - 1)]
    past = np.full((batch, n - 1), int(Action.RIGHT))
    return np.repeat(np.stack(frames)[None], batch, axis=0), past


@pytest.mark.parametrize(
    "make",
    [SimulatorRollout, CopyLastFrame, masked_engine, diffusion_engine, latent_diffusion_engine],
    ids=lambda f: f.__name__,
)
def test_every_engine_kind_satisfies_the_contract(make):
    engine = make()
    assert isinstance(engine, Engine) and isinstance(engine, Playable)
    assert list(engine.actions) == ACTION_NAMES and context_window(engine) == engine.context
    frame = engine.reset(3)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert engine.step("up").shape == (64, 64, 3)
    frames, past = real_start(2, 2)
    kw = {"seeds": np.array([7, 7])} if make is SimulatorRollout else {}
    out = engine.rollout(frames, past, np.array([[1, 2, 0], [4, 4, 5]]), **kw)
    assert as_rollout_frames(out, (2, 3, 64, 64, 3)).shape == (2, 3, 64, 64, 3)
    with pytest.raises(ValueError, match="unknown action"):
        engine.step("fly")
    with pytest.raises(ValueError, match="context_actions"):
        engine.rollout(frames, past[:, :0], np.zeros((2, 1), np.int64), **kw)
    has_steps = make in (masked_engine, diffusion_engine, latent_diffusion_engine)
    assert (decode_steps_of(engine) is not None) == has_steps


def test_playable_engines_are_not_whole_engines():
    for engine in (SimulatorEngine(), SideBySide(CopyLastFrame())):
        assert isinstance(engine, Playable) and not isinstance(engine, Engine)
        check_engine(engine)
        assert decode_steps_of(engine) is None
    assert not isinstance(object(), Playable)
    with pytest.raises(TypeError, match="reset"):
        check_engine(object())
    assert context_window(object()) == 1 and action_names(object()) == ACTION_NAMES


@pytest.mark.parametrize("bad", ["jump", "Up", 6, -1, True, 2.0, None])
def test_action_index_names_every_valid_action(bad):
    assert action_index("down") == 2 and action_index(np.int64(5)) == 5
    assert action_index(Action.LEFT) == 3 and action_index("b", ["a", "b"]) == 1
    with pytest.raises(ValueError) as info:
        action_index(bad)
    assert repr(bad) in str(info.value) and all(n in str(info.value) for n in ACTION_NAMES)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, True])
def test_bad_seeds_are_refused(bad):
    assert check_seed(np.int64(4)) == 4
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        check_seed(bad)
    with pytest.raises(ValueError, match="seed"):
        CopyLastFrame().reset(bad)


def test_seed_batches_need_one_integer_per_world():
    assert check_seeds([1, 2], 2).dtype == np.int64
    for bad in ([1], [1, -2], [1.0, 2.0], [[1, 2]]):
        with pytest.raises(ValueError, match=r"seeds must be 2 non-negative integers"):
            check_seeds(bad, 2)


def test_rollout_args_refuse_wrong_shapes_and_types():
    frames, past = real_start(2, 3)
    future = np.zeros((2, 4), np.int32)
    f, p, a = check_rollout_args(frames, past, future)
    assert f.shape == (2, 3, 64, 64, 3) and p.dtype == a.dtype == np.int64
    cases = [
        ((frames.astype(np.float32), past, future), r"context_frames must be uint8 \(B, N>=1"),
        ((frames[:, :, :, :, :1], past, future), "context_frames"),
        ((frames, past[:, :1], future), r"context_actions must have shape \(2, 2\)"),
        ((frames, past.astype(float), future), "context_actions must be integer"),
        ((frames, past, future[:1]), r"actions must be integer \(B=2"),
        ((frames, past, future + 6), r"actions must lie in \[0, 5\]"),
    ]
    for args, words in cases:
        with pytest.raises(ValueError, match=words):
            check_rollout_args(*args)


def test_pad_context_repeats_the_first_frame_and_cuts_to_the_window():
    frames, past = real_start(1, 3)
    padded, acts = pad_context(frames, past, window=5)
    assert padded.shape == (1, 5, 64, 64, 3) and acts.tolist() == [
        [0, 0, 4, 4]
    ]  # noop padding, then right, right
    assert all(np.array_equal(padded[0, i], frames[0, 0]) for i in range(3))
    assert np.array_equal(padded[0, 3:], frames[0, 1:])
    cut, cut_acts = pad_context(frames, past, window=2)
    assert np.array_equal(cut, frames[:, 1:]) and cut_acts.tolist() == [[4]]
    one, none = pad_context(frames, past, window=1)
    assert np.array_equal(one, frames[:, 2:]) and none.shape == (1, 0)


def test_frame_conversion_and_rollout_output_checks():
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    for variant in (rgb, rgb / 255.0, torch.from_numpy(rgb).permute(2, 0, 1), StepResult(rgb)):
        out = as_frame(variant)
        assert out.dtype == np.uint8 and np.array_equal(out, rgb)
    assert as_frame(np.zeros((2, 2, 1), bool)).shape == (2, 2, 3)
    with pytest.raises(ValueError, match=r"float frame must lie in \[0, 1\]"):
        as_frame(rgb.astype(np.float32))
    good = torch.zeros(2, 3, 4, 4, 3, dtype=torch.uint8)
    assert isinstance(as_rollout_frames(good, (2, 3, 4, 4, 3)), np.ndarray)
    with pytest.raises(ValueError, match=r"Dream.rollout must return uint8 frames \(2, 4"):
        as_rollout_frames(good, (2, 4, 4, 4, 3), "Dream")
    plain = as_step_result(rgb)
    assert plain.reward == 0.0 and plain.terminated is False and np.array_equal(plain.frame, rgb)
    rich = as_step_result(StepResult(rgb / 255.0, reward=np.float32(2), terminated=np.True_))
    assert rich.reward == 2.0 and rich.terminated is True and rich.frame.dtype == np.uint8


def test_loop_batch_steps_each_world_as_if_alone():
    batch = LoopBatch([SimulatorEngine(LEARNING_WORLD) for _ in range(3)])
    assert isinstance(batch, BatchPlayable) and len(batch) == 3
    start = batch.reset_batch([4, 5, 4])
    assert start.shape == (3, 64, 64, 3) and np.array_equal(start[0], start[2])
    result = batch.step_batch(["up", 4, "up"])
    assert result.frame.shape == (3, 64, 64, 3) and result.frame.dtype == np.uint8
    assert result.reward.tolist() == [0, 0, 0] and result.terminated.tolist() == [False] * 3
    alone = SimulatorEngine(LEARNING_WORLD)
    alone.reset(5)
    assert np.array_equal(result.frame[1], alone.step(4))
    assert np.array_equal(result.frame[0], result.frame[2])
    with pytest.raises(ValueError, match=r"one per world, \(B=3,\)"):
        batch.step_batch(["up", "up"])
    with pytest.raises(ValueError, match="unknown action"):
        batch.step_batch(["up", "fly", "up"])
    with pytest.raises(ValueError, match="seeds must be 3"):
        batch.reset_batch([1, 2])
    sim = SimulatorEngine()
    with pytest.raises(ValueError, match="distinct"):
        LoopBatch([sim, sim])


def test_loop_batch_carries_rewards_of_engines_that_have_them():
    class Rewarding:
        def __init__(self):
            self.t = 0

        def reset(self, seed):
            self.t = 0
            return np.full((2, 2, 3), seed, np.uint8)

        def step(self, action):
            self.t += 1
            return StepResult(
                np.zeros((2, 2, 3), np.uint8), reward=float(action), terminated=self.t > 1
            )

    batch = LoopBatch([Rewarding(), Rewarding()])
    batch.reset_batch([1, 2])
    first, second = batch.step_batch([1, 3]), batch.step_batch([0, 2])
    assert first.reward.tolist() == [1.0, 3.0] and not first.terminated.any()
    assert second.reward.tolist() == [0.0, 2.0] and second.terminated.all()
