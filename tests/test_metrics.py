import math

import numpy as np
import pytest
import torch

from hitchhiker import metrics


def test_psnr_matches_its_formula():
    a = np.full((2, 16, 16, 3), 0.5, dtype=np.float32)
    b = a + 0.1  # MSE = 0.01 -> 20 dB
    assert metrics.psnr(a, b) == pytest.approx(20.0, abs=1e-4)
    assert metrics.psnr(a, a) == pytest.approx(100.0)  # clipped, finite
    per = metrics.psnr(a, b, reduce=False)
    assert per.shape == (2,)


def test_uint8_and_float_and_chw_agree():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    ta = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255
    assert metrics.psnr(a, b) == pytest.approx(metrics.psnr(ta, tb), rel=1e-5)
    assert metrics.ssim(a, b) == pytest.approx(metrics.ssim(ta, tb), rel=1e-5)


def test_ssim_of_constant_images_is_the_luminance_term():
    a = np.full((1, 16, 16, 3), 0.2, dtype=np.float32)
    b = np.full((1, 16, 16, 3), 0.6, dtype=np.float32)
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert metrics.ssim(a, b) == pytest.approx(expected, rel=1e-4)


def test_ssim_is_one_on_identical_images_and_falls_with_noise():
    rng = np.random.default_rng(1)
    a = rng.random((2, 32, 32, 3)).astype(np.float32)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-5)
    small = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    big = np.clip(a + rng.normal(0, 0.3, a.shape), 0, 1)
    assert 1.0 > metrics.ssim(a, small) > metrics.ssim(a, big)
    assert metrics.ssim(a, small) == pytest.approx(metrics.ssim(small, a), rel=1e-6)


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
    with pytest.raises(ValueError, match="colour channels"):
        metrics.psnr(np.zeros((8, 8, 4)), np.zeros((8, 8, 4)))
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))


def test_horizon_curve_means_and_nan_padding():
    errors = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, np.nan]])
    c = metrics.horizon_curve(errors, label="x")
    assert c.steps.tolist() == [1, 2, 3]
    assert c.mean.tolist() == [2.0, 3.0, 3.0]
    assert c.at(1) == 2.0 and c.low[0] < 2.0 < c.high[0]
    assert c.low[2] == c.high[2] == 3.0  # one rollout: no spread to show
    with pytest.raises(ValueError):
        c.at(4)
    with pytest.raises(ValueError, match="at least one rollout"):
        metrics.horizon_curve(np.array([[1.0, np.nan]]))
    ax = metrics.plot_horizon([c], log=True)
    assert len(ax.lines) == 1


def test_tile_metrics_on_real_frames():
    from hitchhiker.world import HitchhikerWorld

    env = HitchhikerWorld(map_size=64)
    obs, info = env.reset(seed=3)
    frames, tiles = [obs], [info["tiles"]]
    for a in [4, 4, 2, 2, 3, 1]:
        obs, _, _, _, info = env.step(a)
        frames.append(obs)
        tiles.append(info["tiles"])
    frames, tiles = np.stack(frames), np.stack(tiles)
    assert metrics.tile_accuracy(frames, tiles) == 1.0
    assert metrics.frame_validity(frames) == 1.0
    noise = np.random.default_rng(0).integers(0, 256, frames.shape, dtype=np.uint8)
    assert metrics.frame_validity(noise) < 0.2
    wrong = (tiles + 1) % tiles.max()
    assert metrics.tile_accuracy(frames, wrong) < 0.5
    assert math.isfinite(metrics.psnr(frames[0], frames[1]))


def test_ratio_interval_matches_the_delta_method_by_hand():
    from hitchhiker.metrics import ratio_interval

    num, den = np.array([2.0, 0.0, 3.0, 1.0]), np.array([1.0, 1.0, 2.0, 4.0])
    r, half = ratio_interval(num, den)
    assert r == pytest.approx(6.0 / 8.0)
    # d = num - r den = [1.25, -0.75, 1.5, -2.0], mean 0; s_d^2 = sum(d^2) / 3
    s_d = np.sqrt((1.25**2 + 0.75**2 + 1.5**2 + 2.0**2) / 3)
    assert half == pytest.approx(1.96 * s_d / (2.0 * 2.0))  # sqrt(E) = 2, mean(den) = 2
    # Paired: when num moves with den world by world, the interval is narrower than unpaired.
    _, paired = ratio_interval(den * 1.5 + 0.1 * np.arange(4), den)
    assert paired < 0.1


def test_ratio_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    from hitchhiker.metrics import ratio_interval

    rng = np.random.default_rng(0)
    hits, trials = 0, 400
    for _ in range(trials):
        ease = rng.gamma(2.0, 1.0, 128)  # a world's ease, shared by both policies
        den = rng.poisson(ease * 2.0)
        num = rng.poisson(ease * 1.6)  # true ratio of means 0.8
        r, half = ratio_interval(num, den)
        hits += abs(r - 0.8) <= half
    assert 0.92 <= hits / trials <= 0.98


def test_ratio_interval_rejects_unpaired_or_undefined_ratios():
    from hitchhiker.metrics import ratio_interval

    with pytest.raises(ValueError, match="same length"):
        ratio_interval([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="mean must be > 0"):
        ratio_interval([1.0, 2.0], [0.0, 0.0])


def test_against_goal_says_whether_the_interval_settles_it():
    from hitchhiker.measured import against_goal

    assert against_goal(0.9, 0.05, 0.8).endswith("whole interval above it")
    assert against_goal(0.83, 0.1, 0.8).startswith("meets") and "below it" in against_goal(
        0.83, 0.1, 0.8
    )
    assert against_goal(0.79, 0.17, 0.8) == (
        "falls short of the goal of 0.8, though its interval reaches it"
    )
    assert against_goal(0.5, 0.1, 0.8).endswith("whole interval below it")
    assert against_goal(3.0, 0.0, 3).startswith("meets the goal of 3,")
