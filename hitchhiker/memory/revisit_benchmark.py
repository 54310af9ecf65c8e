"""Leave a place, come back: is it the same place? Condition (i) of Stage IV's revisit benchmark.

Held-out out-and-back walks (:func:`~hitchhiker.interactive.revisit.revisit_set`: the world's
``loop`` policy, ``P // 2`` moves out, the same moves undone, back on the first cell at step P).
The engine is given the *real* way out (frames 0..P/2 and the actions between them) and imagines
the way back (frames P/2+1..P) under the recorded actions. Everything on the way back was shown to
it on the way out, so a perfect memory scores 1 and drift plays no part: this isolates memory.
Condition (ii) (:func:`evaluate_whole_walk`) imagines the whole walk from frame 0: the memory then
holds the engine's own frames, and drift counts (Stage III's
:func:`~hitchhiker.interactive.revisit.revisit_scores`, with an interval).

Every imagined cell is read with the tile reader and scored against the simulator, on three sets
of cells, per walk (E walks, each walk one sample):

- ``seen``: land shown in any real frame (:func:`~hitchhiker.interactive.rollout.seen_masks`,
  no window);
- ``beyond_window``: seen land that left the engine's W-frame window and came back (seen, but not
  carried within the window): only a memory can know it;
- ``memory_needing``: beyond-window cells whose kind is not the walk's dominant kind (the most
  common kind in its real frames). A memory-less engine guessing from its prior draws the dominant
  kind (an all-grass guess already scores well on ``beyond_window``); these it cannot guess;
- ``edits``: seen cells the player changed on the way out (walks made with ``edit_every``: a tree
  cut, flowers planted or picked), :func:`edited_cells`: does the world remember what was done?

A figure is the mean over walks with a 95% interval, mean +- 1.96 s / sqrt(E) (s the walks'
standard deviation); walks with no cell of a set are left out of that set's mean.

Shapes: E walks, P period, h = P // 2 steps out, R x C view tiles (8 x 8), H x W pixels.
"""

from __future__ import annotations

import numpy as np

from hitchhiker.interactive.revisit import Revisits, kinds_scores
from hitchhiker.interactive.rollout import _accepts_seeds, episode_means, seen_masks
from hitchhiker.metrics import mean_interval
from hitchhiker.world import read_tiles

SETS = ("seen", "beyond_window", "memory_needing", "edits")


def way_back(walks: Revisits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames 0..h (E, h+1, H, W, 3), actions 0..h-1 (E, h), actions h..P-1 (E, P-h))."""
    h = walks.period // 2
    return walks.frames[:, : h + 1], walks.actions[:, :h], walks.actions[:, h:]


def edited_cells(walks: Revisits, start: int, steps: int) -> np.ndarray:
    """(E, steps, R, C) bool: the view cells of frames start..start+steps-1 that show a map cell
    the player changed (its true kind differs from what an earlier frame showed there) at or
    before that frame. Only ``interact`` changes the ground, so these are the player's edits."""
    pos, tiles = np.asarray(walks.positions), np.asarray(walks.tiles)
    e, a = pos.shape[:2]
    rows, cols = tiles.shape[-2:]
    top = pos.min(axis=(0, 1)) - np.array([rows // 2, cols // 2])
    size = pos.max(axis=(0, 1)) - top + np.array([rows, cols])
    out = np.zeros((e, steps, rows, cols), dtype=bool)
    for i in range(e):
        kind = np.full(size, -1, dtype=np.int64)
        edited_at = np.full(size, a, dtype=np.int64)
        for f in range(a):
            r0, c0 = pos[i, f] - top - np.array([rows // 2, cols // 2])
            box = (slice(r0, r0 + rows), slice(c0, c0 + cols))
            changed = (kind[box] >= 0) & (kind[box] != tiles[i, f])
            edited_at[box] = np.where(changed, np.minimum(edited_at[box], f), edited_at[box])
            kind[box] = tiles[i, f]
            if start <= f < start + steps:
                out[i, f - start] = edited_at[box] <= f
    return out


def dominant_kind(kinds) -> int:
    """The most common tile kind of ``kinds`` (tile kinds, any shape): what an engine that does
    not remember draws from its prior."""
    return int(np.bincount(np.ravel(kinds).astype(np.int64)).argmax())


def cell_sets(walks: Revisits, window: int) -> dict[str, np.ndarray]:
    """Each set of :data:`SETS` as (E, P-h, R, C) bool over the imagined frames h+1..P."""
    h, p = walks.period // 2, walks.period
    view = walks.tiles.shape[-2:]
    seen = seen_masks(walks.positions, h + 1, p - h, None, view)
    carried = seen_masks(walks.positions, h + 1, p - h, window, view)
    beyond = seen & ~carried
    dominant = np.array([dominant_kind(real) for real in walks.tiles[:, : h + 1]])
    rare = walks.tiles[:, h + 1 :] != dominant[:, None, None, None]
    edits = edited_cells(walks, h + 1, p - h) & seen
    return {"seen": seen, "beyond_window": beyond, "memory_needing": beyond & rare, "edits": edits}


def return_scores(imagined, walks: Revisits, window: int) -> dict[str, np.ndarray]:
    """Per-walk accuracy (E,) of the imagined way back on each set of cells (NaN: empty set)."""
    h, p = walks.period // 2, walks.period
    imagined = np.asarray(imagined)
    if imagined.shape[:2] != (walks.episodes, p - h):
        raise ValueError(
            f"expected the imagined way back (E={walks.episodes}, {p - h}, H, W, 3); "
            f"got {imagined.shape}"
        )
    right = read_tiles(imagined).kinds == walks.tiles[:, h + 1 :]
    return {name: episode_means(right, cells) for name, cells in cell_sets(walks, window).items()}


def imagine_way_back(engine, walks: Revisits, poses: bool = False, oracle: bool = False):
    """The engine's way back (E, P-h, H, W, 3) after the real way out.

    ``poses`` hands a memory engine the true positions (its ``pose="true"``); ``oracle`` writes the
    real frames of the way back into its memory instead of the imagined ones."""
    frames, past, future = way_back(walks)
    kw = {"seeds": walks.seeds} if _accepts_seeds(engine) else {}  # the simulator replays seeds
    if poses:
        kw["poses"] = walks.positions
    if oracle:
        kw["truth"] = walks.frames[:, walks.period // 2 + 1 :]
    return np.asarray(engine.rollout(frames, past, future, **kw))


def evaluate_whole_walk(engine, walks: Revisits, prefix: str, poses: bool = False) -> dict:
    """Condition (ii): the whole walk imagined from its first frame (``poses``: a memory engine
    gets the true positions), scored by :func:`~hitchhiker.interactive.revisit.revisit_scores`,
    with a 95% interval for the seen land (per walk)."""
    no_past = np.zeros((walks.episodes, 0), dtype=np.int64)
    kw = {"seeds": walks.seeds} if _accepts_seeds(engine) else {}
    if poses:
        kw["poses"] = walks.positions
    imagined = np.asarray(engine.rollout(walks.frames[:, :1], no_past, walks.actions, **kw))
    kinds = read_tiles(imagined).kinds  # read once: the scores and the intervals share it
    out = {f"{prefix}.{k}": v for k, v in kinds_scores(kinds, walks).items()}
    right = kinds == walks.tiles[:, 1:]
    shown = seen_masks(walks.positions, 1, walks.period, None, kinds.shape[-2:])
    out[f"{prefix}.revisit_seen_land_accuracy_ci95"] = mean_interval(episode_means(right, shown))[1]
    edits = edited_cells(walks, 1, walks.period)
    if edits.any():  # walks that change the world: the edits, drawn and kept (after each edit)
        mean, half = mean_interval(episode_means(right, edits))
        out[f"{prefix}.revisit_edits_accuracy"] = mean
        out[f"{prefix}.revisit_edits_accuracy_ci95"] = half
    return out


def evaluate_way_back(engine, walks: Revisits, prefix: str, window: int, **kw) -> dict:
    """``prefix.way_back_<set>_accuracy`` and its ``..._ci95`` half-width, for every set."""
    scores = return_scores(imagine_way_back(engine, walks, **kw), walks, window)
    out = {}
    for name, per_walk in scores.items():
        if np.isnan(per_walk).all():
            continue  # no walk shows a cell of this set (e.g. edits, on walks that edit nothing)
        mean, half = mean_interval(per_walk)
        out[f"{prefix}.way_back_{name}_accuracy"] = mean
        out[f"{prefix}.way_back_{name}_accuracy_ci95"] = half
    return out
