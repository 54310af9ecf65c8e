"""The world's rows of the course benchmark (:mod:`hitchhiker.bench`): simulator speed and the
ground-truth reader, measured on real frames."""

from __future__ import annotations

import time

import numpy as np
import torch

from hitchhiker.bench import Figure, figures
from hitchhiker.world import HitchhikerWorld, read_tiles
from hitchhiker.world.reader import frame_validity


@figures(
    "world",
    Figure(
        "world.steps_per_s",
        "simulator steps per second, one world, one core, 64x64 view",
        "steps/s",
        ">= 2000",
    ),
    Figure(
        "world.reader_accuracy",
        "ground-truth reader: tile accuracy on real frames (day and night, animals)",
        "",
        "= 1.0",
    ),
    Figure(
        "world.reader_heading_accuracy",
        "ground-truth reader: explorer heading read from real frames",
        "",
        "= 1.0",
    ),
    Figure("world.reader_validity_real", "frame validity of real frames", "", "= 1.0"),
    Figure("world.reader_validity_noise", "frame validity of uniform-noise frames", "", "~ 0"),
    Figure(
        "world.reader_frames_per_s",
        "ground-truth reader throughput, one batch of all those frames",
        "frames/s",
    ),
)
def world_figures(preset: str) -> dict[str, float]:
    torch.set_num_threads(1)  # "one core": keep torch (and what it drives) from fanning out
    n_steps = 500 if preset == "smoke" else 5000
    env = HitchhikerWorld()
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, env.action_space.n, size=n_steps)
    t0 = time.perf_counter()
    for a in actions:
        _, _, _, truncated, _ = env.step(int(a))
        if truncated:
            env.reset()
    steps_per_s = n_steps / (time.perf_counter() - t0)

    # Real frames across seeds, times of day and with animals about.
    frames, tiles, headings = [], [], []
    n_seeds = 2 if preset == "smoke" else 8
    for seed in range(n_seeds):
        env = HitchhikerWorld(day_length=64)
        obs, info = env.reset(seed=1000 + seed)
        rng = np.random.default_rng(seed)
        for _ in range(64):
            obs, _, _, _, info = env.step(int(rng.integers(0, 6)))
            frames.append(obs)
            tiles.append(info["tiles"])
            headings.append(info["heading"])
    frames, tiles, headings = np.stack(frames), np.stack(tiles), np.array(headings)
    t0 = time.perf_counter()
    reading = read_tiles(frames)
    reader_fps = len(frames) / (time.perf_counter() - t0)
    noise = np.random.default_rng(1).integers(0, 256, size=frames[:64].shape, dtype=np.uint8)
    return {
        "world.steps_per_s": steps_per_s,
        "world.reader_accuracy": float(np.mean(reading.kinds == tiles)),
        "world.reader_heading_accuracy": float(np.mean(reading.heading == headings)),
        "world.reader_validity_real": float(np.mean(frame_validity(frames))),
        "world.reader_validity_noise": float(np.mean(frame_validity(noise))),
        "world.reader_frames_per_s": reader_fps,
    }
