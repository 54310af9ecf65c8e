"""Recorded play: deterministic trajectories with exact ground truth, cached, as torch datasets.

Every stage learns from the same recordings: a behaviour policy (:mod:`.policies`) walks the
explorer through worlds made from fixed seeds, and we keep, at every step t,

    frame o[t] (H, W, 3) uint8,  action a[t],  position, heading, visible tiles (R, C), animals, light.

Seeds are split once and for all — ``train``, ``val`` and ``test`` draw worlds from disjoint seed
ranges — so a held-out figure is measured on maps the model never saw. A recording is a pure
function of (split, episode count, steps, policy, world config), so it is cached on first use
under ``data/cache/`` (git-ignored; override with ``HITCHHIKER_CACHE``) as a compressed ``.npz``
named by a hash of those arguments, and loaded without pickle afterwards.

Shapes: E episodes, T steps per episode (T + 1 frames: the reset frame, then one per step),
L window length, H x W pixels, R x C view tiles.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from hitchhiker.world.env import HitchhikerWorld, WorldConfig
from hitchhiker.world.policies import make_policy, policy_settings

SPLITS = {"train": 0, "val": 1_000_000, "test": 2_000_000}
"""First world seed of each split; episode i of a split plays the world seeded SPLITS[split] + i."""
FORMAT_VERSION = 1
"""Bump when the recording format or the world's appearance changes: old caches are then ignored."""
FIELDS = ("frames", "actions", "positions", "headings", "tiles", "animals", "light")


@dataclass
class DataConfig:
    """What a recipe records to learn from and to be measured on (nested as ``cfg.data``)."""

    episodes: int = 256
    """Training episodes recorded (train split)."""
    episode_steps: int = 32
    """Steps per recorded training episode (T + 1 frames each)."""
    policy: str | tuple[str, ...] = "random"
    """Behaviour policy that records the episodes (see :mod:`.policies`); a tuple records every
    policy named, each for ``episodes`` episodes."""
    eval_episodes: int = 16
    """Held-out episodes (test split) the recipe's figures are measured on."""
    eval_steps: int = 0
    """Steps per held-out episode (0: ``episode_steps``)."""

    def __post_init__(self):
        bad = [
            f"{name}={getattr(self, name)!r}"
            for name, ok in {
                "episodes": self.episodes >= 1,
                "episode_steps": self.episode_steps >= 1,
                "eval_episodes": self.eval_episodes >= 1,
                "eval_steps": self.eval_steps >= 0,
            }.items()
            if not ok
        ]
        if bad:
            raise ValueError(f"invalid DataConfig values: {', '.join(bad)} (counts must be >= 1)")

    @property
    def held_out_steps(self) -> int:
        """Steps per held-out episode."""
        return self.eval_steps or self.episode_steps


def cache_dir() -> Path:
    """Where recordings are cached (``HITCHHIKER_CACHE`` or ``data/cache`` in the repo)."""
    env = os.environ.get("HITCHHIKER_CACHE")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data" / "cache"


def episode_seed(split: str, index: int) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if not 0 <= index < 1_000_000:
        raise ValueError(f"episode index must lie in [0, 1000000); got {index}")
    return SPLITS[split] + index


def record_episode(
    seed: int,
    steps: int,
    policy: str = "random",
    world: WorldConfig | None = None,
    policy_kwargs: dict | None = None,
) -> dict[str, np.ndarray]:
    """Play one episode of ``steps`` actions in the world of ``seed``; return its arrays.

    frames (T+1, H, W, 3) uint8 · actions (T,) int64 · positions (T+1, 2) · headings (T+1,)
    · tiles (T+1, R, C) int8 · animals (T+1, R, C) bool · light (T+1, 3) float32.
    """
    env = HitchhikerWorld(world or WorldConfig(), max_steps=0)
    obs, info = env.reset(seed=seed)
    pol = make_policy(policy, **(policy_kwargs or {}))
    pol.reset(env, np.random.default_rng(seed))
    rows = {k: [] for k in FIELDS if k != "actions"}
    actions = np.zeros(steps, dtype=np.int64)

    def keep(o, i):
        rows["frames"].append(o)
        rows["positions"].append(np.asarray(i["position"]))
        rows["headings"].append(i["heading"])
        rows["tiles"].append(i["tiles"])
        rows["animals"].append(i["animals"])
        rows["light"].append(i["light"])

    keep(obs, info)
    for t in range(steps):
        actions[t] = pol.act(info)
        obs, _, _, _, info = env.step(int(actions[t]))
        keep(obs, info)
    out = {k: np.stack(v) for k, v in rows.items()}
    out["actions"] = actions
    out["positions"] = out["positions"].astype(np.int64)
    out["headings"] = out["headings"].astype(np.int64)
    out["light"] = out["light"].astype(np.float32)
    return out


@dataclass(frozen=True)
class Recording:
    """Episodes of one split, stacked: every array has leading axes (E, T+1) (actions: (E, T))."""

    frames: np.ndarray
    actions: np.ndarray
    positions: np.ndarray
    headings: np.ndarray
    tiles: np.ndarray
    animals: np.ndarray
    light: np.ndarray

    @property
    def episodes(self) -> int:
        return self.frames.shape[0]

    @property
    def steps(self) -> int:
        return self.actions.shape[1]


def record(
    split: str,
    episodes: int,
    steps: int,
    policy: str = "random",
    world: WorldConfig | None = None,
    policy_kwargs: dict | None = None,
    cache: bool = True,
    progress: bool = True,
) -> Recording:
    """Record (or load from the cache) ``episodes`` episodes of ``split``.

    Deterministic: the same arguments always give the same arrays, on any machine.
    """
    if episodes < 1 or steps < 1:
        raise ValueError(f"episodes and steps must be >= 1; got {episodes} and {steps}")
    world = world or WorldConfig()
    key = {
        "v": FORMAT_VERSION,
        "split": split,
        "episodes": episodes,
        "steps": steps,
        "policy": policy,
        # resolved settings, defaults included: a changed default must not reuse stale play
        "policy_settings": policy_settings(policy, **(policy_kwargs or {})),
        "world": asdict(world),
    }
    episode_seed(split, episodes - 1)  # validates split and range before any work
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{split}-{policy}-{episodes}x{steps}-{digest}.npz"
    if cache and path.exists():
        with np.load(path, allow_pickle=False) as z:
            return Recording(**{k: z[k] for k in FIELDS})

    eps = [
        record_episode(episode_seed(split, i), steps, policy, world, policy_kwargs)
        for i in tqdm(range(episodes), desc=f"recording {split}/{policy}", disable=not progress)
    ]
    rec = Recording(**{k: np.stack([e[k] for e in eps]) for k in FIELDS})
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # one per process: two may record at once
        np.savez_compressed(tmp, **{k: getattr(rec, k) for k in FIELDS})
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    return rec


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [0, 1], the layout every model takes."""
    return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3).float().div_(255.0)


def views(rec) -> tuple[torch.Tensor, np.ndarray]:
    """(frames (M, 3, H, W) float, tiles (M, R, C)) of every view of a recording."""
    frames = frames_to_tensor(rec.frames.reshape(-1, *rec.frames.shape[2:]))
    return frames, rec.tiles.reshape(-1, *rec.tiles.shape[2:])


class FrameDataset(Dataset):
    """Single views with their tile grid: for MAE, tokenizers, MaskGIT (Stage I).

    Item: {"frame": (3, H, W) float in [0, 1], "tiles": (R, C) int64}.
    """

    def __init__(self, rec: Recording):
        self.frames = rec.frames.reshape(-1, *rec.frames.shape[2:])
        self.tiles = rec.tiles.reshape(-1, *rec.tiles.shape[2:])

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "frame": frames_to_tensor(self.frames[i]),
            "tiles": torch.from_numpy(self.tiles[i].astype(np.int64)),
        }


class TrajectoryDataset(Dataset):
    """Windows of ``length`` consecutive frames and the ``length - 1`` actions between them.

    Item: {"frames": (L, 3, H, W) float, "actions": (L-1,) int64, "tiles": (L, R, C) int64,
    "positions": (L, 2) int64} — for dynamics models and memory (Stages III-IV).
    """

    def __init__(self, rec: Recording, length: int, stride: int = 1):
        if not 2 <= length <= rec.steps + 1:
            raise ValueError(f"window length must lie in [2, {rec.steps + 1}]; got {length}")
        self.rec, self.length = rec, length
        starts = np.arange(0, rec.steps + 2 - length, stride)
        self.index = [(e, s) for e in range(rec.episodes) for s in starts]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        e, s = self.index[i]
        sl = slice(s, s + self.length)
        return {
            "frames": frames_to_tensor(self.rec.frames[e, sl]),
            "actions": torch.from_numpy(self.rec.actions[e, s : s + self.length - 1].copy()),
            "tiles": torch.from_numpy(self.rec.tiles[e, sl].astype(np.int64)),
            "positions": torch.from_numpy(self.rec.positions[e, sl].copy()),
        }


LEARNING_WORLD = WorldConfig(day_length=0)
"""The world the learned models of Stages I-III train on: the course's default world with the
day-night cycle off. A global tint is a nuisance variable that would cost every tokenizer code one
copy per light level; sheep, textures and persistent changes stay on."""
