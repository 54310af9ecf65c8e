"""Judge an interactive world model against the simulator: every Stage III figure, exactly.

An *engine* answers actions with frames (the contract: :mod:`hitchhiker.engine`). Because the course owns
its simulator, we need no human raters and no learned judge: record held-out episodes with their
exact ground truth (a :class:`Truth`), let the engine imagine the same episodes from the same real
start under the same actions, and read every generated frame back with the tile reader
(:func:`hitchhiker.world.read_tiles`). :func:`evaluate_engine` reports, per engine,

- **teacher-forced tile accuracy**: frame t+1 predicted from the real frames up to t, every t, on
  the cells those frames showed (the row a move scrolls into view is undetermined by the inputs;
  ``..._all`` scores it too); and its *validity*, the share of those cells drawn closely enough to
  a real tile for the reader to call them valid (a pixel engine's near-misses show here first);
- **action following** (Genie, MineWorld): in 16-step free rollouts, did the generated explorer do
  what the simulator did? The view shift between consecutive generated frames (one of none / up /
  down / left / right, estimated by matching the read tile grids) and the heading read from the
  explorer sprite must both equal the simulator's;
- **seen-land accuracy**: tile accuracy of 32-step free rollouts on land the engine was shown in
  its real context and that never left its context window since (it *could* know it: see
  :func:`seen_masks`), and the same on land shown in any real frame however long ago (what a world
  with memory would know: Stage IV's number); land never shown in a real frame is the engine's
  own invention and is scored by reader validity (does it look like real land at all?);
- **error versus horizon**: tile error (1 - accuracy) after h = 1, 8, 16, 32, 64 steps;
- **controllability** (Genie's delta-PSNR):
      delta_PSNR = PSNR(x, x_hat | recorded actions) - PSNR(x, x_hat' | random actions),
  averaged over 16 steps: an engine that ignores its actions scores 0;
- **frames per second** at batch 1 (``reset`` + 64 ``step`` calls, median of 3 runs).

Each figure but the frame rate is a mean over held-out episodes with the half-width of its 95%
interval (``..._ci95``): figures move by points from one draw of worlds to another, so a figure
without its interval cannot say whether it met a goal.

The ground truth (:func:`~.truth.truth_set`) and two reference engines live in :mod:`.truth`:
:class:`~.truth.SimulatorRollout` (the simulator itself: perfect everywhere) and
:class:`~.truth.CopyLastFrame` (the world freezes: a fair score on short horizons, no action
following, zero delta-PSNR). A simulator cannot infer a world from pixels, so the truth
carries each episode's world seed, and an engine whose ``rollout`` has a ``seeds`` keyword (only
the simulator) gets ``seeds=`` and the whole real prefix as context; learned engines get neither.

Shapes: E episodes, K context frames, T (horizon) imagined steps, B batch, N context length,
W an engine's context window, H x W pixels (64 x 64), R x C view tiles (8 x 8).
"""

from __future__ import annotations

import inspect
import statistics
import time

import numpy as np
import torch

from hitchhiker.engine import as_rollout_frames, check_rollout_args, context_window
from hitchhiker.interactive.truth import Truth
from hitchhiker.metrics import HorizonCurve, mean_interval, psnr
from hitchhiker.metrics import horizon_curve as _curve
from hitchhiker.world import VALID_DISTANCE, Action, read_tiles

SHIFTS = np.array([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)])
"""Candidate moves of the explorer between two frames, (d_row, d_col) in tiles, indexed like the
actions noop/up/down/left/right. The view scrolls the other way: frame_t[r, c] = frame_t-1[r+dr, c+dc]."""
SHIFT_NAMES = ("none", "up", "down", "left", "right")
"""Names of :data:`SHIFTS`."""


def _accepts_seeds(engine) -> bool:
    try:
        return "seeds" in inspect.signature(engine.rollout).parameters
    except (TypeError, ValueError):
        return False


def run_rollout(engine, frames, past, future, seeds=None, batch_size: int = 64) -> np.ndarray:
    """``engine.rollout`` in batches of ``batch_size``, output checked: uint8 (B, T, H, W, 3).

    ``seeds`` is passed only to engines whose ``rollout`` takes it (the simulator)."""
    frames, past, future = check_rollout_args(frames, past, future)
    extra = _accepts_seeds(engine) and seeds is not None
    parts = []
    for i in range(0, len(frames), batch_size):
        sl = slice(i, i + batch_size)
        kw = {"seeds": np.asarray(seeds)[sl]} if extra else {}
        # writable copies: the truth is read-only and shared, torch.from_numpy warns on it
        out = engine.rollout(np.array(frames[sl]), np.array(past[sl]), np.array(future[sl]), **kw)
        want = (len(frames[sl]), future.shape[1], *frames.shape[2:])
        parts.append(as_rollout_frames(out, want, type(engine).__name__))
    return np.concatenate(parts)


def free_rollout(engine, truth: Truth, horizon: int | None = None, actions=None) -> np.ndarray:
    """Imagine ``horizon`` steps from each episode's real context: (E, T, H, W, 3) uint8.

    ``actions`` (E, T) defaults to the recorded ones."""
    future = truth.future_actions(horizon) if actions is None else np.asarray(actions)
    frames, past = truth.context_frames(), truth.context_actions()
    return run_rollout(engine, frames, past, future, seeds=truth.seeds)


# ----------------------------------------------------------------------------- measurements
def estimate_shift(prev_frames, next_frames, prev_kinds=None, next_kinds=None) -> np.ndarray:
    """Which way the view scrolled between two frames: (...) index into :data:`SHIFTS`.

    Each candidate move d is scored by the share of overlapping cells whose read kinds disagree,
    next[r, c] vs prev[r + dr, c + dc]; ties (uniform land) are broken by the pixel error on the
    overlap, leaving out the explorer's cell in either frame. Kinds may be passed when read already.
    """
    prev, nxt = np.asarray(prev_frames), np.asarray(next_frames)
    if prev.shape != nxt.shape or prev.ndim < 3 or prev.shape[-1] != 3:
        raise ValueError(
            f"expected two frame batches (..., H, W, 3) of one shape; got {prev.shape}, {nxt.shape}"
        )
    batch = prev.shape[:-3]
    prev, nxt = prev.reshape(-1, *prev.shape[-3:]), nxt.reshape(-1, *nxt.shape[-3:])
    k0 = read_tiles(prev).kinds if prev_kinds is None else np.asarray(prev_kinds)
    k1 = read_tiles(nxt).kinds if next_kinds is None else np.asarray(next_kinds)
    k0, k1 = k0.reshape(len(prev), *k0.shape[-2:]), k1.reshape(len(nxt), *k1.shape[-2:])
    rows, cols = k0.shape[-2:]
    p = prev.shape[-2] // cols
    x0 = prev.astype(np.float32) / 255
    x1 = nxt.astype(np.float32) / 255
    scores = np.empty((len(prev), len(SHIFTS)))
    for i, (dr, dc) in enumerate(SHIFTS):
        # overlap in next-frame cells: r such that r + dr is a cell of prev
        r1, c1 = slice(max(0, -dr), rows - max(0, dr)), slice(max(0, -dc), cols - max(0, dc))
        r0, c0 = slice(max(0, dr), rows - max(0, -dr)), slice(max(0, dc), cols - max(0, -dc))
        mismatch = (k1[:, r1, c1] != k0[:, r0, c0]).mean(axis=(1, 2))
        keep = np.ones((rows, cols), bool)  # in next-frame cells, the overlap minus explorers
        keep[rows // 2, cols // 2] = False
        if 0 <= rows // 2 - dr < rows and 0 <= cols // 2 - dc < cols:
            keep[rows // 2 - dr, cols // 2 - dc] = False
        keep = keep[r1, c1]
        a = x1[:, r1.start * p : r1.stop * p, c1.start * p : c1.stop * p]
        b = x0[:, r0.start * p : r0.stop * p, c0.start * p : c0.stop * p]
        err = ((a - b) ** 2).mean(-1)
        err = err.reshape(len(err), keep.shape[0], p, keep.shape[1], p).mean(axis=(2, 4))
        # kinds decide; pixels only break ties (1e-3 * mse < the smallest mismatch step, 1/64)
        scores[:, i] = mismatch + 1e-3 * err[:, keep].mean(-1)
    return scores.argmin(axis=1).reshape(batch)


def true_shift(positions) -> np.ndarray:
    """(..., T+1, 2) explorer positions -> (..., T) index into :data:`SHIFTS` of each move."""
    d = np.diff(np.asarray(positions), axis=-2)
    match = (d[..., None, :] == SHIFTS).all(-1)
    if not match.any(-1).all():
        raise ValueError("positions jump by more than one tile between steps")
    return match.argmax(-1)


def seen_masks(positions, start: int, steps: int, window: int | None, view=(8, 8)) -> np.ndarray:
    """Which view cells of the imagined frames show land the engine was *shown*: (E, steps, R, C).

    Frames 0..start-1 are real (the context); frame a = start + j (j < steps) is imagined and shows
    the world cell positions[a] + (r - R//2, c - C//2) at view cell (r, c). Land first revealed in
    an imagined frame is the engine's own invention, never ground truth it was given, so only land
    shown in a real frame can be scored for accuracy:

    - ``window=W``: the cell was shown in a real frame and has been *carried* since: in view in at
      least one of every W consecutive frames (real, or imagined while carried), so it never left
      the engine's context window. A frame-by-frame engine with window W can know exactly these.
    - ``window=None``: the cell was in view in any real frame, however long ago. Cells that left
      the window and came back count here: what a world *with memory* would know (Stage IV).

    Positions are the true ones, (E, A, 2) with A >= start + steps.
    """
    pos = np.asarray(positions)[:, : start + steps]
    rows, cols = view
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1 frame or None; got {window}")
    # Each frame's view as a box on a local grid of world cells covering the whole walk.
    top = pos.min(axis=(0, 1)) - np.array([rows // 2, cols // 2])
    size = pos.max(axis=(0, 1)) - top + np.array([rows, cols])
    e, a = pos.shape[:2]
    in_view = np.zeros((e, a, *size), dtype=bool)
    for i in range(e):
        for f in range(a):
            r0, c0 = pos[i, f] - top - np.array([rows // 2, cols // 2])
            in_view[i, f, r0 : r0 + rows, c0 : c0 + cols] = True
    carried = in_view.copy()  # real frames carry what they show
    shown_ever = in_view[:, :start].any(1)
    for f in range(start, start + steps):
        lo = 0 if window is None else max(0, f - window)
        known = shown_ever if window is None else carried[:, lo:f].any(1)
        carried[:, f] = in_view[:, f] & known
    # back to view cells: frame f's cell (r, c) is grid cell pos[f] - top - (R//2, C//2) + (r, c)
    out = np.zeros((e, steps, rows, cols), dtype=bool)
    for i in range(e):
        for j, f in enumerate(range(start, start + steps)):
            r0, c0 = pos[i, f] - top - np.array([rows // 2, cols // 2])
            out[i, j] = carried[i, f, r0 : r0 + rows, c0 : c0 + cols]
    return out


def episode_means(values, mask=None) -> np.ndarray:
    """(E, ...) values (bool or float) -> (E,) each episode's mean over the cells ``mask`` (same
    shape) selects, NaN for an episode with none; every cell when ``mask`` is None."""
    v = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if mask is None:
        return v.mean(1)
    m = np.asarray(mask, dtype=bool).reshape(v.shape)
    n = m.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (v * m).sum(1) / np.maximum(n, 1), np.nan)


def _tile_error(kinds, tiles) -> np.ndarray:
    """(E, T, R, C) read and true kinds -> (E, T) share of wrong cells."""
    return (np.asarray(kinds) != np.asarray(tiles)).mean(axis=(-2, -1))


def teacher_forced_frames(engine, truth: Truth, batch_size: int = 64) -> np.ndarray:
    """Frame a+1 predicted from the real frames 0..a, for every a: (E, K+T-1, H, W, 3).

    Each prediction is a rollout of one step; an engine with a window W gets the last
    max(W, K) real frames (the simulator, which replays from the start, gets them all)."""
    total = truth.frames.shape[1]
    keep = None if _accepts_seeds(engine) else max(context_window(engine), truth.context)
    out = np.empty_like(truth.frames[:, 1:])
    for a in range(total - 1):
        lo = 0 if keep is None else max(0, a + 1 - keep)
        frames, past = truth.frames[:, lo : a + 1], truth.actions[:, lo:a]
        next_action = truth.actions[:, a : a + 1]
        out[:, a] = run_rollout(engine, frames, past, next_action, truth.seeds, batch_size)[:, 0]
    return out


def teacher_forced_masks(engine, truth: Truth) -> np.ndarray:
    """(E, K+T-1, R, C) bool: cells of each teacher-forced frame a+1 that were in view in the real
    frames the engine was given for it (see :func:`teacher_forced_frames`).

    The other cells are land revealed by the step itself: the inputs do not determine them (the
    row that scrolls into view could hold anything), so no engine can be scored on them; the
    headline teacher-forced accuracy counts only these cells, and ``..._all`` every cell.
    """
    total = truth.frames.shape[1]
    keep = None if _accepts_seeds(engine) else max(context_window(engine), truth.context)
    view = truth.tiles.shape[-2:]
    return np.concatenate(
        [
            seen_masks(truth.positions[:, : a + 2], a + 1, 1, keep or a + 1, view)
            for a in range(total - 1)
        ],
        axis=1,
    )


def frames_per_second(engine, seed: int, actions, repeats: int = 3) -> float:
    """Frames per second of ``reset(seed)`` followed by len(actions) ``step`` calls, at batch 1,
    wall clock with torch threads as they are: len(actions) / seconds, median of ``repeats``."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.reset(int(seed))
        for a in actions:
            engine.step(int(a))
        runs.append(time.perf_counter() - start)
    return len(actions) / max(statistics.median(runs), 1e-9)


@torch.no_grad()
def evaluate_engine(
    engine, truth: Truth, prefix: str, horizons=(16, 32, 64), seed: int = 0, fps_steps: int = 64
) -> dict[str, float]:
    """Every Stage III figure of ``engine`` on ``truth``, named ``prefix + "." + figure``.

    ``horizons`` are rollout lengths (1 to 3 of them, at most the truth's horizon): the shortest
    for action following and delta-PSNR, the second for seen land (the shortest if only one), the
    longest for the error curve; figure names carry the lengths (``action_following_16``). One free
    rollout of the longest is made and its prefixes scored (rollouts are causal). ``seed`` seeds
    the engine's sampler (``engine.seed`` when it has one) and the random actions of delta-PSNR.

    Every figure but the frame rate is a mean over episodes (each episode's own mean first, so a
    world with more land of one kind does not outvote the others) and comes with the half-width
    of its 95% interval, ``<figure>_ci95`` (:func:`hitchhiker.metrics.mean_interval`).
    """
    hs = sorted(int(h) for h in horizons)
    if not 1 <= len(hs) <= 3 or hs[0] < 1 or hs[-1] > truth.horizon:
        raise ValueError(
            f"horizons must be 1 to 3 rollout lengths in [1, {truth.horizon}]; got {horizons}"
        )
    follow_h, seen_h, long_h = hs[0], hs[min(1, len(hs) - 1)], hs[-1]
    if hasattr(engine, "seed"):
        engine.seed = seed
    k, window = truth.context, context_window(engine)
    out: dict[str, float] = {}

    per_episode: dict[str, np.ndarray] = {}  # figure -> (E,) one value per held-out episode

    tf_reading = read_tiles(teacher_forced_frames(engine, truth))
    tf_right = tf_reading.kinds == truth.tiles[:, 1:]
    tf_shown = teacher_forced_masks(engine, truth)
    per_episode["teacher_forced_tile_accuracy"] = episode_means(tf_right, tf_shown)
    per_episode["teacher_forced_tile_accuracy_all"] = episode_means(tf_right)
    # drawn from a real past, on land it was shown: are the cells real tiles at all?
    per_episode["teacher_forced_validity"] = episode_means(
        tf_reading.distance < VALID_DISTANCE, tf_shown
    )

    gen = free_rollout(engine, truth, long_h)
    reading = read_tiles(gen)
    errors = _tile_error(reading.kinds, truth.future("tiles", long_h))
    for h in sorted({1, 8, *hs}):
        if h <= long_h:
            per_episode[f"tile_error_h{h}"] = errors[:, h - 1]

    # action following: the last real frame, then the imagined ones
    prev = np.concatenate([truth.frames[:, k - 1 : k], gen[:, : follow_h - 1]], axis=1)
    prev_kinds = np.concatenate(
        [read_tiles(truth.frames[:, k - 1 : k]).kinds, reading.kinds[:, : follow_h - 1]], axis=1
    )
    shift = estimate_shift(prev, gen[:, :follow_h], prev_kinds, reading.kinds[:, :follow_h])
    want_shift = true_shift(truth.positions[:, k - 1 : k + follow_h])
    heading_ok = reading.heading[:, :follow_h] == truth.future("headings", follow_h)
    per_episode[f"action_following_{follow_h}"] = episode_means((shift == want_shift) & heading_ok)

    # seen land (engine's window, and ever) and new land
    right = reading.kinds[:, :seen_h] == truth.future("tiles", seen_h)
    valid = reading.distance[:, :seen_h] < VALID_DISTANCE
    seen = seen_masks(truth.positions, k, seen_h, window, right.shape[-2:])
    ever = seen_masks(truth.positions, k, seen_h, None, right.shape[-2:])
    per_episode[f"seen_land_accuracy_{seen_h}"] = episode_means(right, seen)
    per_episode[f"seen_land_accuracy_ever_{seen_h}"] = episode_means(right, ever)
    # never shown in a real frame: invented, so only its plausibility is scored
    per_episode[f"new_land_validity_{seen_h}"] = episode_means(valid, ~ever)

    # controllability: same start, recorded versus uniformly random actions
    rng = np.random.default_rng(seed)
    random_actions = rng.integers(0, len(Action), size=(truth.episodes, follow_h))
    if hasattr(engine, "seed"):
        engine.seed = seed
    gen_random = free_rollout(engine, truth, follow_h, random_actions)
    real = np.array(truth.future("frames", follow_h))  # a writable copy, as torch wants
    gain = psnr(gen[:, :follow_h], real, reduce=False) - psnr(gen_random, real, reduce=False)
    per_episode[f"delta_psnr_{follow_h}"] = gain.reshape(truth.episodes, -1).mean(1).numpy()

    for name, values in per_episode.items():
        out[name], out[f"{name}_ci95"] = mean_interval(values)

    fps_actions = np.resize(truth.actions[0], fps_steps)
    out["fps_b1"] = frames_per_second(engine, int(truth.seeds[0]), fps_actions)
    return {f"{prefix}.{name}": value for name, value in out.items()}


@torch.no_grad()
def horizon_curve(
    engine, truth: Truth, horizon: int = 64, label: str | None = None
) -> HorizonCurve:
    """Tile error after 1 .. ``horizon`` imagined steps, mean and 95% interval over episodes."""
    gen = free_rollout(engine, truth, horizon)
    errors = _tile_error(read_tiles(gen).kinds, truth.future("tiles", horizon))
    return _curve(errors, label=label if label is not None else getattr(engine, "name", ""))


def plot_rollouts(truth: Truth, rollouts: dict, episode: int = 0, steps=None, scale: float = 1.0):
    """A filmstrip: the real future on top, each engine's imagined one below, at ``steps``
    (1-based, default 8 evenly spaced); ``rollouts`` maps a name to frames (E, T, H, W, 3).
    Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt  # lazy: heavy, and only the notebooks draw

    horizon = min([truth.horizon] + [np.shape(f)[1] for f in rollouts.values()])
    if steps is None:
        steps = np.unique(np.linspace(1, horizon, num=min(8, horizon)).round().astype(int))
    steps = [int(s) for s in steps]
    if not steps or min(steps) < 1 or max(steps) > horizon:
        raise ValueError(f"steps must lie in [1, {horizon}]; got {steps}")
    rows = {"simulator": truth.future("frames")} | dict(rollouts)
    fig, axes = plt.subplots(
        len(rows),
        len(steps),
        figsize=(1.3 * scale * len(steps), 1.4 * scale * len(rows)),
        squeeze=False,
    )
    for i, (name, frames) in enumerate(rows.items()):
        for j, s in enumerate(steps):
            ax = axes[i, j]
            ax.imshow(np.asarray(frames)[episode, s - 1], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t+{s}", fontsize=8)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


@torch.no_grad()
def decoding_steps_sweep(
    engine, truth: Truth, steps=(1, 2, 3, 4), fps_repeats: int = 1
) -> dict[str, np.ndarray]:
    """Quality and speed of ``engine`` at each number of decoding steps (``engine.decode_steps``).

    For each entry of ``steps``: teacher-forced frames (:func:`teacher_forced_frames`, every frame
    predicted from the real past) scored on every cell by the tile reader and by PSNR against the
    real frames, and :func:`frames_per_second` at batch 1 on the first episode's actions (median
    of ``fps_repeats``). The engine's own ``decode_steps`` is restored afterwards.

    Returns columns of one row per entry, each (S,): ``steps`` (int), ``tile_accuracy``, ``psnr``
    (dB), ``fps``.
    """
    if not hasattr(engine, "decode_steps"):
        raise ValueError(f"{type(engine).__name__} has no decode_steps to sweep")
    steps = [int(s) for s in steps]
    if not steps or min(steps) < 1:
        raise ValueError(f"steps must be >= 1 decoding steps each; got {steps}")
    kept = engine.decode_steps
    rows = []
    try:
        for s in steps:
            engine.decode_steps = s
            tf = teacher_forced_frames(engine, truth)
            acc = float((read_tiles(tf).kinds == truth.tiles[:, 1:]).mean())
            db = psnr(tf, np.array(truth.frames[:, 1:]))
            fps = frames_per_second(engine, int(truth.seeds[0]), truth.actions[0], fps_repeats)
            rows.append((s, acc, db, fps))
    finally:
        engine.decode_steps = kept
    names = ("steps", "tile_accuracy", "psnr", "fps")
    return {name: np.array(column) for name, column in zip(names, zip(*rows))}
