"""Stage III evaluation: the reference engines score what they must, and every measurement is
right on cases whose answer is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from hitchhiker.engine import pad_context
from hitchhiker.interactive.rollout import (
    SHIFTS,
    estimate_shift,
    evaluate_engine,
    free_rollout,
    horizon_curve,
    plot_rollouts,
    run_rollout,
    seen_masks,
    true_shift,
)
from hitchhiker.interactive.truth import CopyLastFrame, SimulatorRollout, truth_set

HORIZONS = (8, 16, 16)


@pytest.fixture(scope="module")
def truth():
    return truth_set(episodes=4, context=3, horizon=16)


@pytest.fixture(scope="module")
def simulator_figures(truth):
    return evaluate_engine(SimulatorRollout(), truth, "sim", horizons=HORIZONS, fps_steps=8)


@pytest.fixture(scope="module")
def copy_figures(truth):
    return evaluate_engine(CopyLastFrame(), truth, "copy", horizons=HORIZONS, fps_steps=8)


def test_truth_set_shapes_seeds_and_cache(truth):
    e, a = 4, 3 + 16
    assert truth.frames.shape == (e, a, 64, 64, 3) and truth.frames.dtype == np.uint8
    assert truth.actions.shape == (e, a - 1)
    assert truth.positions.shape == (e, a, 2) and truth.tiles.shape == (e, a, 8, 8)
    assert truth.seeds.tolist() == [2_000_000 + i for i in range(e)]  # held-out test worlds
    assert truth_set(episodes=4, context=3, horizon=16) is truth
    assert not truth.frames.flags.writeable
    # the simulator replays an episode from its seed
    sim = SimulatorRollout()
    np.testing.assert_array_equal(sim.reset(int(truth.seeds[1])), truth.frames[1, 0])
    np.testing.assert_array_equal(sim.step(int(truth.actions[1, 0])), truth.frames[1, 1])
    with pytest.raises(ValueError, match="horizon"):
        truth.future_actions(17)


def test_simulator_is_perfect(simulator_figures):
    f = simulator_figures
    assert f["sim.teacher_forced_tile_accuracy"] == 1.0
    assert f["sim.teacher_forced_tile_accuracy_all"] == 1.0
    assert f["sim.teacher_forced_validity"] == 1.0
    assert f["sim.action_following_8"] == 1.0
    assert f["sim.seen_land_accuracy_16"] == 1.0
    assert f["sim.seen_land_accuracy_ever_16"] == 1.0
    assert f["sim.new_land_validity_16"] == 1.0
    assert all(f[f"sim.tile_error_h{h}"] == 0.0 for h in (1, 8, 16))
    assert f["sim.delta_psnr_8"] > 10  # random actions take the explorer elsewhere
    assert f["sim.fps_b1"] > 0


def test_figures_carry_per_episode_intervals(simulator_figures, copy_figures, truth):
    from hitchhiker.interactive.rollout import episode_means
    from hitchhiker.metrics import mean_interval

    # a perfect engine: every episode scores 1, so the interval has no width
    assert simulator_figures["sim.action_following_8_ci95"] == 0.0
    assert "sim.fps_b1_ci95" not in simulator_figures  # a speed, not a mean over episodes
    # the copy engine's interval is the spread of its episodes' own error at step 16
    errors = np.stack([(truth.tiles[i, 3 + 15] != truth.tiles[i, 2]).mean() for i in range(4)])
    mean, half = mean_interval(errors)
    assert copy_figures["copy.tile_error_h16"] == pytest.approx(mean)
    assert copy_figures["copy.tile_error_h16_ci95"] == pytest.approx(half) and half > 0
    # an episode with no selected cell is left out, not counted as 0
    values = np.array([[1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(
        episode_means(values, np.array([[True, True], [False, False]])), [0.5, np.nan]
    )


def test_copy_last_frame_ignores_actions(copy_figures):
    f = copy_figures
    assert f["copy.action_following_8"] < 0.3  # only blocked moves that keep the heading pass
    assert f["copy.delta_psnr_8"] == 0.0
    assert f["copy.tile_error_h16"] > f["copy.tile_error_h1"] > 0
    assert f["copy.seen_land_accuracy_16"] < 0.9


def test_shift_estimator_recovers_recorded_moves(truth):
    prev, nxt = truth.frames[:, :-1], truth.frames[:, 1:]
    want = true_shift(truth.positions)
    assert set(np.unique(want)) >= {0, 1, 2, 3, 4}  # every kind of shift occurs
    np.testing.assert_array_equal(estimate_shift(prev, nxt), want)
    # played backwards, every move is the opposite one
    opposite = np.array([0, 2, 1, 4, 3])
    np.testing.assert_array_equal(estimate_shift(nxt, prev), opposite[want])


def test_shift_estimator_on_a_synthetic_scroll():
    rng = np.random.default_rng(0)
    big = truth_set(episodes=4, context=3, horizon=16).frames[0, 0]
    big = np.concatenate([big, big[::-1]], axis=0)  # 128 x 64: crop views 8 pixels apart
    big = np.concatenate([big, big[:, ::-1]], axis=1)  # 128 x 128
    r, c = 24, 24
    base = big[r : r + 64, c : c + 64]
    for i, (dr, dc) in enumerate(SHIFTS):
        moved = big[r + 8 * dr : r + 8 * dr + 64, c + 8 * dc : c + 8 * dc + 64]
        assert int(estimate_shift(base, moved)) == i, (i, rng)


def test_seen_masks_on_a_hand_made_walk():
    # frame 0 is real; then the explorer walks east twice and back two tiles west (imagined)
    pos = np.array([[[10, 10], [10, 11], [10, 12], [10, 11], [10, 10]]])
    seen = seen_masks(pos, start=1, steps=4, window=1)
    assert seen.shape == (1, 4, 8, 8)
    # one step east: the rightmost view column is new land, the rest was in the real frame
    assert not seen[0, 0, :, 7].any() and seen[0, 0, :, :7].all()
    # two steps east: column 6 was first shown by an imagined frame (the engine's invention)
    assert seen[0, 1, :, :6].all() and not seen[0, 1, :, 6:].any()
    # stepping back west: with a window of one frame, the land that left the view is forgotten
    assert seen[0, 2, :, 1:7].all() and not seen[0, 2, :, 0].any() and not seen[0, 2, :, 7].any()
    # a longer window carries it across the gap; all of history (memory) knows every real cell
    assert seen_masks(pos, 1, 4, window=2)[0, 2, :, :7].all()
    ever = seen_masks(pos, 1, 4, window=None)
    assert ever[0, 3].all() and ever[0, 2, :, :7].all() and not ever[0, 2, :, 7].any()
    assert not seen_masks(pos, 1, 4, window=1)[0, 3, :, 0].any()
    with pytest.raises(ValueError, match="window"):
        seen_masks(pos, 1, 4, window=0)


def test_reference_engines_follow_the_rollout_interface(truth):
    frames, past = truth.context_frames(), truth.context_actions()
    future = truth.future_actions(5)
    copy = run_rollout(CopyLastFrame(), frames, past, future)
    assert copy.shape == (4, 5, 64, 64, 3) and copy.dtype == np.uint8
    np.testing.assert_array_equal(copy[:, 3], frames[:, -1])
    sim = free_rollout(SimulatorRollout(), truth, 5)
    np.testing.assert_array_equal(sim, truth.future("frames", 5))
    with pytest.raises(ValueError, match="seeds"):
        SimulatorRollout().rollout(frames, past, future)
    with pytest.raises(ValueError, match="replayed"):
        SimulatorRollout().rollout(frames[:, 1:], past[:, 1:], future, seeds=truth.seeds)
    with pytest.raises(ValueError, match="context_actions"):
        CopyLastFrame().rollout(frames, past[:, :1], future)
    with pytest.raises(ValueError, match="uint8"):
        CopyLastFrame().rollout(frames.astype(np.float32), past, future)
    with pytest.raises(ValueError, match="unknown action"):
        CopyLastFrame().step("jump")


def test_pad_context_repeats_the_first_frame_with_noop(truth):
    frames, past = truth.frames[:, :2], truth.actions[:, :1]
    padded, actions = pad_context(frames, past, window=4)
    assert padded.shape == (4, 4, 64, 64, 3) and actions.shape == (4, 3)
    np.testing.assert_array_equal(padded[:, :3], np.repeat(frames[:, :1], 3, axis=1))
    np.testing.assert_array_equal(padded[:, 3], frames[:, 1])
    assert (actions[:, :2] == 0).all() and (actions[:, 2] == past[:, 0]).all()
    last, last_actions = pad_context(truth.frames[:, :6], truth.actions[:, :5], window=2)
    np.testing.assert_array_equal(last, truth.frames[:, 4:6])
    np.testing.assert_array_equal(last_actions, truth.actions[:, 4:5])


def test_horizon_curve_and_filmstrip(truth):
    curve = horizon_curve(CopyLastFrame(), truth, horizon=16)
    assert curve.steps.tolist() == list(range(1, 17)) and curve.label == "copy_last_frame"
    assert curve.at(16) > curve.at(1) > 0
    assert horizon_curve(SimulatorRollout(), truth, 8).mean.max() == 0.0
    fig = plot_rollouts(truth, {"copy": free_rollout(CopyLastFrame(), truth, 8)}, steps=[1, 4, 8])
    assert len(fig.axes) == 2 * 3
    with pytest.raises(ValueError, match="steps"):
        plot_rollouts(truth, {}, steps=[0])


def test_horizons_name_the_figures(truth):
    f = evaluate_engine(CopyLastFrame(), truth, "c", horizons=(4,), fps_steps=2)
    assert {"c.action_following_4", "c.seen_land_accuracy_4", "c.delta_psnr_4"} <= set(f)
    assert {"c.tile_error_h1", "c.tile_error_h4"} <= set(f) and "c.tile_error_h8" not in f
    with pytest.raises(ValueError, match="horizons"):
        evaluate_engine(CopyLastFrame(), truth, "c", horizons=(8, 32))
