"""The ground-truth reader: exact on real frames (day, night, sheep), strict on bad inputs."""

import numpy as np
import pytest
import torch

from hitchhiker.world import (
    CONFIDENT,
    HitchhikerWorld,
    confident_share,
    frame_validity,
    read_tiles,
    tile_accuracy,
)


def rollout(seed, steps=80, **overrides):
    """Frames and infos of a random walk; a short day so every lighting phase shows up."""
    cfg = dict(map_size=32, animals=20, day_length=24, max_steps=0) | overrides
    env = HitchhikerWorld(**cfg)
    frame, info = env.reset(seed=seed)
    frames, infos = [frame], [info]
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        frame, *_, info = env.step(int(rng.choice(6, p=[0.05, 0.2, 0.2, 0.2, 0.2, 0.15])))
        frames.append(frame)
        infos.append(info)
    return np.stack(frames), infos


def truth(infos, key):
    return np.stack([np.asarray(i[key]) for i in infos])


@pytest.fixture(scope="module")
def real():
    parts = [rollout(seed) for seed in range(6)]
    frames = np.concatenate([f for f, _ in parts])
    infos = [i for _, part in parts for i in part]
    return frames, infos


def test_reader_is_exact_on_real_frames_at_every_hour_with_sheep(real):
    frames, infos = real
    reading = read_tiles(frames)
    assert reading.kinds.shape == (len(frames), 8, 8) and reading.kinds.dtype == np.int64
    assert np.array_equal(reading.kinds, truth(infos, "tiles"))
    assert np.array_equal(reading.animals, truth(infos, "animals"))
    assert np.array_equal(reading.heading, truth(infos, "heading"))
    light = truth(infos, "light")
    assert np.abs(reading.light - light).max() < 0.01
    assert light.min() < 0.5 and truth(infos, "animals").sum() > 100  # night and sheep were seen
    assert reading.distance.max() < 1e-4
    assert reading.confidence.min() >= CONFIDENT
    assert ((reading.confidence >= 0) & (reading.confidence <= 1)).all()
    # With the light given, the answer is the same.
    given = read_tiles(frames, light=light)
    assert np.array_equal(given.kinds, reading.kinds)
    assert np.array_equal(given.heading, reading.heading)
    assert np.allclose(given.light, light)


def test_reader_sees_cut_trees_and_planted_flowers():
    frames, infos = rollout(11, steps=300, animals=4)
    changed = [i for i, info in enumerate(infos) if info["changed"] is not None]
    assert len(changed) >= 3
    reading = read_tiles(frames[changed])
    assert np.array_equal(reading.kinds, truth([infos[i] for i in changed], "tiles"))


def test_reader_accepts_numpy_and_torch_batched_or_not(real):
    frames, infos = real
    one, tiles = frames[7], infos[7]["tiles"]
    single = read_tiles(one)
    assert (
        single.kinds.shape == (8, 8) and single.heading.shape == () and single.light.shape == (3,)
    )
    assert np.array_equal(single.kinds, tiles)
    as_float = read_tiles(one.astype(np.float32) / 255)
    assert np.array_equal(as_float.kinds, tiles)
    chw = torch.from_numpy(frames[:6]).permute(0, 3, 1, 2)
    for tensor in (chw, chw.float() / 255, chw[0].float() / 255):
        got = read_tiles(tensor)
        expected = truth(infos[:6], "tiles") if tensor.ndim == 4 else infos[0]["tiles"]
        assert np.array_equal(got.kinds, expected)
    nested = read_tiles(frames[:6].reshape(2, 3, 64, 64, 3))
    assert nested.kinds.shape == (2, 3, 8, 8) and nested.light.shape == (2, 3, 3)
    assert tile_accuracy(frames[:20], truth(infos[:20], "tiles")) == 1.0


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (np.zeros((64, 64), np.uint8), ValueError, r"\(\.\.\., H, W, 3\)"),
        (np.zeros((64, 60, 3), np.uint8), ValueError, "multiple of tile_px"),
        (np.full((64, 64, 3), 200.0), ValueError, r"in \[0, 1\]"),
        (np.zeros((64, 64, 3), np.int32), TypeError, "uint8 or float"),
        (torch.zeros(64, 64, 3), ValueError, r"\(\.\.\., 3, H, W\)"),
        ([[0, 0, 0]], TypeError, "numpy array"),
    ],
)
def test_reader_rejects_bad_inputs_clearly(bad, error, message):
    with pytest.raises(error, match=message):
        read_tiles(bad)


def test_reader_rejects_mismatched_light_and_truth():
    frames = np.zeros((4, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="light"):
        read_tiles(frames, light=np.ones((3, 3)))
    with pytest.raises(ValueError, match="true_tiles"):
        tile_accuracy(frames, np.zeros((4, 4, 4)))


def test_validity_is_one_on_real_frames_and_low_on_noise_and_blur(real):
    frames, infos = real
    assert np.array_equal(frame_validity(frames), np.ones(len(frames)))
    assert frame_validity(frames[0]) == 1.0
    assert np.array_equal(confident_share(frames), np.ones(len(frames)))
    noise = np.random.default_rng(0).integers(0, 256, size=(16, 64, 64, 3), dtype=np.uint8)
    assert frame_validity(noise).max() < 0.05
    x = np.pad(frames.astype(np.float32), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    blurred = sum(x[:, i : i + 64, j : j + 64] for i in range(3) for j in range(3)) / 9
    assert frame_validity(np.rint(blurred).astype(np.uint8)).mean() < 0.1
    # Tiles shuffled between cells are still valid pictures but the wrong map.
    shuffled = frames[:8].reshape(8, 8, 8, 8, 8, 3)[:, ::-1]
    shuffled = shuffled.reshape(8, 64, 64, 3)
    assert tile_accuracy(shuffled, truth(infos[:8], "tiles")) < 0.8


@pytest.mark.parametrize("tile_px, view_px", [(4, 36), (16, 128)])
def test_reader_is_exact_at_other_tile_sizes_and_odd_views(tile_px, view_px):
    frames, infos = rollout(3, steps=30, tile_px=tile_px, view_px=view_px)
    reading = read_tiles(frames, tile_px=tile_px)
    assert np.array_equal(reading.kinds, truth(infos, "tiles"))
    assert np.array_equal(reading.animals, truth(infos, "animals"))
    assert np.array_equal(reading.heading, truth(infos, "heading"))
