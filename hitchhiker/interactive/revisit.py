"""Walk away from a place and come back: does the engine redraw the land it was shown?

The seed of Stage IV's revisit benchmark. A frame-by-frame engine knows only its last W frames;
the simulator's land *is* its state. So: take held-out walks that leave a place and retrace their
steps (the world's ``loop`` policy: ``period // 2`` moves out, the same moves undone), give an
engine the first real frame only (the place it is about to leave), let it imagine the whole walk
under the recorded actions, and read every imagined frame back with the tile reader against the
simulator's exact ground truth.

Figures (:func:`revisit_scores`; :func:`evaluate_revisits` names them ``prefix.figure``):

- ``revisit_tile_accuracy``: the view at the moment of return, frame P, which shows the very place
  of frame 0: the share of its R x C cells whose read kind is the true one. Every one of those
  cells was shown to the engine (frame 0), so a perfect memory scores 1.
- ``revisit_water_recall``: of the true water cells at the return, the share drawn as water (the
  lake came back); NaN when no walk has water in view at its return.
- ``revisit_seen_land_accuracy``: every imagined frame 1..P, on the cells that show land of
  frame 0 (:func:`hitchhiker.interactive.rollout.seen_masks` with no window: shown however long
  ago). A frozen world that repeats frame 0 (:class:`~hitchhiker.interactive.truth.CopyLastFrame`)
  gets the return frame right by construction, since the place is the same; it cannot get the way
  out and back right, and this figure tells the two apart.

The simulator behind the engine interface (:class:`~hitchhiker.interactive.truth.SimulatorRollout`)
scores 1 on all three: the reader is exact on real frames.

Shapes: E walks, P = period steps of a walk (frame 0 the place left, frame P the return),
H x W pixels (64 x 64), R x C view tiles (8 x 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hitchhiker.interactive.rollout import run_rollout, seen_masks
from hitchhiker.world import Tile, read_tiles
from hitchhiker.world.dataset import LEARNING_WORLD, episode_seed, record
from hitchhiker.world.env import WorldConfig


@dataclass(frozen=True)
class Revisits:
    """Held-out walks that leave a place and stand on it again ``period`` steps later."""

    frames: np.ndarray
    """(E, P+1, H, W, 3) uint8 real frames; frame 0 is the place left, frame P the return."""
    actions: np.ndarray
    """(E, P) int64 the walk's actions; actions[:, a] leads from frame a to frame a+1."""
    positions: np.ndarray
    """(E, P+1, 2) int64 explorer (row, col) on the map; positions[:, P] == positions[:, 0]."""
    tiles: np.ndarray
    """(E, P+1, R, C) int8 true tile kinds in view."""
    seeds: np.ndarray
    """(E,) int64 world seed of each walk (frame 0 is that world's first view after reset)."""
    period: int
    """P: steps from leaving the place to standing on it again."""

    @property
    def episodes(self) -> int:
        return self.frames.shape[0]


def revisit_set(
    split: str = "test",
    episodes: int = 48,
    period: int = 32,
    limit: int = 12,
    water: bool = True,
    world: WorldConfig | None = None,
    edit_every: int = 0,
) -> Revisits:
    """The first ``limit`` of ``episodes`` recorded loop walks of ``split`` (in ``world``, default
    LEARNING_WORLD) that stand on their starting cell again after ``period`` steps.

    A walk whose way out was blocked may not return; it is left out. With ``water``, walks with
    water in view at the start (a lake to come back to) are taken; if none has, every returning
    walk is. ``edit_every``: the walks change the world on the way out (see
    :class:`~hitchhiker.world.policies.LoopWalk`). ValueError if no walk returns.
    """
    rec = record(
        split,
        episodes,
        period,
        policy="loop",
        policy_kwargs={"period": period, **({"edit_every": edit_every} if edit_every else {})},
        world=world or LEARNING_WORLD,
        progress=False,
    )
    returned = (rec.positions[:, period] == rec.positions[:, 0]).all(axis=1)
    keep = returned
    if water:
        lake = returned & (rec.tiles[:, 0] == Tile.WATER).any(axis=(1, 2))
        keep = lake if lake.any() else returned
    pick = np.flatnonzero(keep)[:limit]
    if not len(pick):
        raise ValueError(f"none of {episodes} walks of {split!r} returned after {period} steps")
    seeds = np.array([episode_seed(split, int(i)) for i in pick], dtype=np.int64)
    return Revisits(
        frames=rec.frames[pick],
        actions=rec.actions[pick],
        positions=rec.positions[pick],
        tiles=rec.tiles[pick],
        seeds=seeds,
        period=period,
    )


def imagine(engine, revisits: Revisits) -> np.ndarray:
    """The engine's walk: from frame 0 alone (no earlier frames, no earlier actions), under the
    recorded actions: (E, P, H, W, 3) uint8, imagined frames 1..P. The simulator gets the seeds."""
    no_past = np.zeros((revisits.episodes, 0), dtype=np.int64)
    return run_rollout(
        engine, revisits.frames[:, :1], no_past, revisits.actions, seeds=revisits.seeds
    )


def revisit_scores(imagined, revisits: Revisits) -> dict[str, float]:
    """The three revisit figures of imagined frames 1..P (E, P, H, W, 3) (see the module)."""
    return kinds_scores(read_tiles(np.asarray(imagined)).kinds, revisits)


def kinds_scores(kinds, revisits: Revisits) -> dict[str, float]:
    """:func:`revisit_scores` of imagined frames already read: tile kinds (E, P, R, C)."""
    p = revisits.period
    if kinds.shape[:2] != (revisits.episodes, p):
        raise ValueError(
            f"expected imagined frames (E={revisits.episodes}, P={p}, H, W, 3); "
            f"got {kinds.shape[:2]} frames"
        )
    truth = revisits.tiles[:, 1:]
    back, true_back = kinds[:, -1], truth[:, -1]
    wet = true_back == Tile.WATER
    shown = seen_masks(revisits.positions, 1, p, None, truth.shape[-2:])  # land of frame 0
    nan = float("nan")
    return {
        "revisit_tile_accuracy": float((back == true_back).mean()),
        "revisit_water_recall": float((back[wet] == Tile.WATER).mean()) if wet.any() else nan,
        "revisit_seen_land_accuracy": float((kinds == truth)[shown].mean()),
    }


def evaluate_revisits(engine, revisits: Revisits, prefix: str) -> dict[str, float]:
    """:func:`revisit_scores` of ``engine``'s walks (:func:`imagine`), named ``prefix.figure``."""
    scores = revisit_scores(imagine(engine, revisits), revisits)
    return {f"{prefix}.{name}": value for name, value in scores.items()}
