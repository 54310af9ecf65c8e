"""Where am I? Dead reckoning of the explorer's own actions, corrected by the shift read from frames.

A memory keyed by position needs a position. Outside the dream the simulator's ``info`` has it;
inside the dream nothing does, so the engine must infer it from what it did and what it saw. This
is the road's filter ``q(z[t] | h[t-1], o[t])`` made concrete for one variable, the pose z = (row,
col): a prediction from the action, corrected by the observation.

*Predict* (dead reckoning): each move adds its displacement ``ACTION_DELTAS[a]``; no-op and interact
add nothing. Alone this drifts: a move into water or rock turns the explorer but leaves it where it
was, and dead reckoning still counts the step.

*Correct* (read the shift): in a tile world the view moves by whole cells, so the displacement d
between two consecutive views is one of five candidates {(0, 0), (+-1, 0), (0, +-1)} and can be read
by agreement. If the explorer moved by d = (dr, dc), the next view shows at cell (r, c) what the
previous one showed at (r + dr, c + dc):

    mismatch(d) = #{(r, c) compared : next[r, c] != prev[r + dr, c + dc]} / #{compared}
    d* = argmin_d mismatch(d)     (None when several candidates tie at the minimum)

The explorer's own cell is left out of the comparison in both views (its sprite turns with the
heading), and so are cells the caller masks out (wandering sheep). A tie, e.g. in a uniform meadow
where every shift looks alike, returns None and the tracker keeps its prediction. The views can be
tile kinds from the reader or token ids from a tokenizer: only equality of ids is used.

By default the tracker reads among the outcomes the action allows — {(0, 0), the move's delta} for a
move, nothing for no-op and interact (the explorer is never pushed) — which is exact on real walks;
``candidates="all"`` reads among all five, for a dreamed world that may shift its view on its own.
It has a known blind spot: in a uniform region, an edit of the faced tile (a tree cut in a forest)
agrees perfectly with a one-cell move away from it (the edited cell then pairs with the excluded
centre), so a standing explorer is read as moving.
WorldMem (arXiv 2504.12369, Table 8) measures what inferring the pose instead of being given it
costs a retrieval memory; this module supplies the inferred pose for that comparison.

Shapes: E episodes, T steps (T + 1 views), R x C view cells; poses are (row, col) int64.
"""

from __future__ import annotations

import numpy as np

from hitchhiker.world.env import Action

ACTION_DELTAS = np.zeros((len(Action), 2), dtype=np.int64)
"""(A, 2) displacement (drow, dcol) of each action of :class:`hitchhiker.world.env.Action`, as the
world applies it when the move is not blocked (HEADING_DELTAS, in Heading order = move order)."""
ACTION_DELTAS[Action.UP] = (-1, 0)
ACTION_DELTAS[Action.DOWN] = (1, 0)
ACTION_DELTAS[Action.LEFT] = (0, -1)
ACTION_DELTAS[Action.RIGHT] = (0, 1)
ACTION_DELTAS.flags.writeable = False

CANDIDATES: tuple[tuple[int, int], ...] = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
"""The five displacements a view can make in one step: stay, or one cell up, down, left, right."""

CANDIDATE_MODES = ("action", "all")


def _grid(view, name: str) -> np.ndarray:
    view = np.asarray(view)
    if view.ndim != 2 or not np.issubdtype(view.dtype, np.integer):
        raise ValueError(f"{name} must be an (R, C) integer grid, got {view.dtype} {view.shape}")
    return view


def _ignore_masks(ignore, shape) -> tuple[np.ndarray, np.ndarray]:
    """(prev, next) masks of cells to skip from None, one (R, C) mask or a (2, R, C) pair."""
    if ignore is None:
        empty = np.zeros(shape, dtype=bool)
        return empty, empty
    ignore = np.asarray(ignore, dtype=bool)
    if ignore.shape == shape:
        return ignore, ignore
    if ignore.shape == (2, *shape):
        return ignore[0], ignore[1]
    raise ValueError(
        f"ignore must be an (R, C) = {shape} mask or a (2, R, C) pair (prev, next), "
        f"got {ignore.shape}"
    )


def shift_mismatch(prev, next, candidates=CANDIDATES, ignore=None, ignore_centre: bool = True):
    """(mismatch rate, compared cells) of each candidate displacement; rate NaN where none compared.

    ``ignore``: cells to leave out, (R, C) for both views or (2, R, C) for (prev, next); a pair of
    cells is compared only when neither end is ignored.
    """
    prev, next = _grid(prev, "prev"), _grid(next, "next")
    if prev.shape != next.shape:
        raise ValueError(f"prev and next must have the same shape, got {prev.shape}, {next.shape}")
    cand = np.asarray(candidates, dtype=np.int64).reshape(-1, 2)
    if len(cand) == 0 or (np.abs(cand) > 1).any() or (np.abs(cand).sum(1) > 1).any():
        raise ValueError(f"candidates must be among {CANDIDATES}, got {cand.tolist()}")
    rows, cols = prev.shape
    skip_prev, skip_next = _ignore_masks(ignore, prev.shape)
    if ignore_centre:
        skip_prev, skip_next = skip_prev.copy(), skip_next.copy()
        skip_prev[rows // 2, cols // 2] = skip_next[rows // 2, cols // 2] = True
    rates, counts = np.full(len(cand), np.nan), np.zeros(len(cand), dtype=np.int64)
    for i, (dr, dc) in enumerate(cand):
        # next[r, c] ~ prev[r + dr, c + dc] on the cells where both exist
        nr, pr = slice(max(0, -dr), rows - max(0, dr)), slice(max(0, dr), rows - max(0, -dr))
        nc, pc = slice(max(0, -dc), cols - max(0, dc)), slice(max(0, dc), cols - max(0, -dc))
        compared = ~(skip_next[nr, nc] | skip_prev[pr, pc])
        counts[i] = compared.sum()
        if counts[i]:
            rates[i] = (next[nr, nc] != prev[pr, pc])[compared].sum() / counts[i]
    return rates, counts


def read_shift(prev, next, candidates=CANDIDATES, ignore=None, ignore_centre: bool = True):
    """The displacement (drow, dcol) of the explorer between two consecutive (R, C) views, chosen
    among ``candidates`` by the lowest mismatch rate on the overlapping cells; None when the
    evidence is ambiguous (several candidates tie at the lowest rate, or nothing could be compared).

    ``ignore``: cells to leave out (sheep), (R, C) for both views or (2, R, C) for (prev, next);
    ``ignore_centre`` leaves out the explorer's own cell (its sprite changes with the heading).
    """
    rates, _ = shift_mismatch(prev, next, candidates, ignore, ignore_centre)
    if np.isnan(rates).all():
        return None
    best = np.flatnonzero(rates == np.nanmin(rates))
    if len(best) != 1:
        return None
    dr, dc = np.asarray(candidates, dtype=np.int64).reshape(-1, 2)[best[0]]
    return int(dr), int(dc)


def _action(action) -> int:
    if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
        raise ValueError(f"action must be an int in [0, {len(Action) - 1}], got {action!r}")
    if not 0 <= action < len(Action):
        raise ValueError(f"action must be an int in [0, {len(Action) - 1}], got {action}")
    return int(action)


class PoseTracker:
    """The explorer's pose relative to where tracking began: dead reckoning of its actions,
    corrected (``correct=True``) by the shift read between consecutive views.

    ``candidates``: "action" reads only among the outcomes the action allows ({stay, its move}; no
    reading for no-op and interact); "all" reads among all five displacements.
    """

    def __init__(
        self, correct: bool = True, candidates: str = "action", ignore_centre: bool = True
    ):
        if candidates not in CANDIDATE_MODES:
            raise ValueError(
                f"candidates must be one of {', '.join(CANDIDATE_MODES)}, got {candidates!r}"
            )
        self.correct, self.candidates, self.ignore_centre = bool(correct), candidates, ignore_centre
        self.reset()

    def reset(self, pose=(0, 0)) -> None:
        pose = np.asarray(pose)
        if pose.shape != (2,) or not np.issubdtype(pose.dtype, np.integer):
            raise ValueError(f"pose must be an integer (row, col), got {pose!r}")
        self._pose = pose.astype(np.int64)

    @property
    def pose(self) -> tuple[int, int]:
        """(row, col) now."""
        return int(self._pose[0]), int(self._pose[1])

    def predict(self, action) -> tuple[int, int]:
        """The displacement dead reckoning expects from ``action``."""
        dr, dc = ACTION_DELTAS[_action(action)]
        return int(dr), int(dc)

    def update(self, action, prev_view=None, next_view=None, ignore=None) -> tuple[int, int]:
        """Advance by one step (``action`` led from ``prev_view`` to ``next_view``); the new pose.

        Views may be omitted (None) when ``correct=False``. ``ignore`` as in :func:`read_shift`.
        """
        delta = self.predict(action)
        if self.correct:
            if prev_view is None or next_view is None:
                raise ValueError("a correcting PoseTracker needs prev_view and next_view")
            if self.candidates == "all":
                read = read_shift(prev_view, next_view, CANDIDATES, ignore, self.ignore_centre)
            elif delta != (0, 0):
                read = read_shift(prev_view, next_view, [(0, 0), delta], ignore, self.ignore_centre)
            else:
                read = None  # nothing the action could have done moves the explorer
            if read is not None:
                delta = read
        self._pose = self._pose + delta
        return self.pose


def track(
    actions, views=None, correct: bool = True, candidates: str = "action", ignore=None
) -> np.ndarray:
    """Poses (E, T+1, 2) int64 relative to each walk's start, from actions (E, T) and views
    (E, T+1, R, C) (views may be None when ``correct=False``; ``ignore``: (E, T+1, R, C) cells to
    leave out of the reading, e.g. sheep)."""
    actions = np.asarray(actions)
    if actions.ndim != 2 or not np.issubdtype(actions.dtype, np.integer):
        raise ValueError(f"actions must be an (E, T) integer array, got {actions.shape}")
    e, t = actions.shape
    if correct or views is not None:
        views = np.asarray(views)
        if views.ndim != 4 or views.shape[:2] != (e, t + 1):
            raise ValueError(
                f"views must be (E, T+1, R, C) = ({e}, {t + 1}, R, C), got {views.shape}"
            )
    if ignore is not None and (views is None or np.shape(ignore) != views.shape):
        raise ValueError(f"ignore must match views' shape (E, T+1, R, C), got {np.shape(ignore)}")
    poses = np.zeros((e, t + 1, 2), dtype=np.int64)
    tracker = PoseTracker(correct=correct, candidates=candidates)
    for i in range(e):
        tracker.reset()
        for s in range(t):
            pair = None if ignore is None else np.stack([ignore[i, s], ignore[i, s + 1]])
            prev_view = None if views is None else views[i, s]
            next_view = None if views is None else views[i, s + 1]
            poses[i, s + 1] = tracker.update(int(actions[i, s]), prev_view, next_view, pair)
    return poses
