"""Retrieval memory: a bank of past frames with pose and time, and the rules to write, read and forget.

WorldMem (arXiv 2504.12369) keeps every past frame with its camera pose and time step and, before
generating a view, retrieves the few past frames that best cover it; Context-as-Memory (arXiv
2506.03141) does the same by field-of-view overlap and feeds the frames back as context. In a tile
world overlap is exact. A frame stored at pose p shows world cells p + (r - R//2, c - C//2); seen
from a query pose q its cell (r, c) lands on target cell (r, c) + (p - q), so two views share

    overlap(p, q) = max(0, R - |drow|) * max(0, C - |dcol|) cells,   (drow, dcol) = p - q.

*Retrieve* "overlap" is WorldMem's greedy set cover of the target view (the view centred on the
query pose): repeatedly take the frame whose fresh cells cover the most still-uncovered target
cells, ties to the newest, until k frames are taken or no frame adds a cell (the rest is padding,
never a useless frame). "recency" takes the k newest, "random" k at random — the baselines
WorldMem and Context-as-Memory compare against.

*Write* "every" frame, or only "novel" ones (at least ``novel_cells`` cells no fresh stored cell
covers). *Update*: a newly written frame makes the cells it shows stale in every older frame, so
a tree cut since is never read back from the frame that showed it standing; retrieval counts only
fresh cells. *Forget*: with a capacity, a write into a full bank first evicts the "oldest" frame
or the "least_covering" one (fewest fresh cells).

Cost: every operation is one vectorised pass over the stored frames, O(N R C); with a capacity the
bank holds at most ``capacity`` frames, so its bytes stay fixed however long the walk.

Shapes: N stored frames, k retrieved, R x C view cells = h x w tokens (one token per tile);
poses (row, col) int64, steps int64.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

WRITE_RULES = ("every", "novel")
RETRIEVE_RULES = ("overlap", "recency", "random")
EVICT_RULES = ("oldest", "least_covering")


@dataclass(frozen=True)
class MemoryPolicy:
    """What a :class:`FrameBank` writes, retrieves, updates and forgets."""

    write: str = "every"
    """"every" frame written, or only "novel" ones (see ``novel_cells``)."""
    novel_cells: int = 8
    """With write="novel": the fewest cells of a frame no fresh stored cell covers for it to be
    written (8 = one row of an 8 x 8 view)."""
    novel_counts_changes: bool = False
    """With write="novel": also count as novel the covered cells whose token differs from the one
    remembered there, so that an edit made on the spot is written (off: coverage only)."""
    retrieve: str = "overlap"
    """"overlap" (greedy set cover of the target view, ties to the newest), "recency" (the k
    newest) or "random" (k uniformly at random, seeded)."""
    k: int = 2
    """Frames retrieved per step (fewer valid ones when the rule finds fewer; the rest is padding)."""
    update: bool = True
    """A newly written frame makes the cells it shows stale in every older frame (edits overwrite
    what was remembered); off: every stored cell stays fresh (but see ``update_changed``)."""
    update_changed: bool = False
    """With ``update`` off: a new frame still makes stale the older cells it shows *differently*
    (a tree cut, a sheep gone): what changed is overwritten, what stayed the same stays readable
    in every frame that saw it."""
    window_first: bool = False
    """Read by an engine that keeps its newest frames in a window before they are written (the
    bank itself ignores it): a remembered cell that a frame still in the window shows differently
    is not read, since the window is newer (an edit made a few steps ago is not yet in the bank)."""
    capacity: int | None = None
    """The most frames held (None: unbounded); a write into a full bank first evicts one."""
    evict: str = "oldest"
    """Which frame a full bank forgets: "oldest" (lowest step) or "least_covering" (fewest fresh
    cells, the oldest among equals)."""
    seed: int = 0
    """Seed of "random" retrieval; a draw depends only on (seed, query step), so it is reproducible."""

    def __post_init__(self):
        for name, value, options in [
            ("write", self.write, WRITE_RULES),
            ("retrieve", self.retrieve, RETRIEVE_RULES),
            ("evict", self.evict, EVICT_RULES),
        ]:
            if value not in options:
                raise ValueError(f"unknown {name} policy {value!r}; expected one of {options}")
        for name, low in [("k", 1), ("novel_cells", 1), ("seed", 0)]:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"MemoryPolicy.{name} must be an int >= {low}, got {value!r}")
        cap = self.capacity
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer))):
            raise ValueError(f"MemoryPolicy.capacity must be an int >= 1 or None, got {cap!r}")
        if cap is not None and cap < 1:
            raise ValueError(f"MemoryPolicy.capacity must be >= 1 frame or None, got {cap}")


@dataclass
class Retrieved:
    """k frames read from a bank for one query pose, in the order the rule picked them."""

    tokens: np.ndarray
    """(k, h, w) int64 the frames' tokens (zeros in padding slots)."""
    offset: np.ndarray
    """(k, 2) int64 stored pose minus query pose: frame cell (r, c) lands on target cell
    (r, c) + offset."""
    age: np.ndarray
    """(k,) int64 query step minus the frame's step."""
    fresh: np.ndarray
    """(k, h, w) bool cells not overwritten by a newer frame since (False in padding)."""
    index: np.ndarray
    """(k,) int64 the frame's write number (0 = first frame ever written; stable across evictions;
    -1 in padding)."""
    valid: np.ndarray
    """(k,) bool False for padding slots (fewer than k useful frames)."""


STATE_KEYS = ("tokens", "fresh", "pose", "step", "serial", "next_serial", "view", "policy")


def landed(cells, offsets, view) -> np.ndarray:
    """(M, R, C) bool: which target cells the True cells of each frame (M, R, C) land on, the
    frames sitting at ``offsets`` (M, 2) from the target (frame cell (r, c) -> target
    (r, c) + offset) in views of ``view`` (R, C)."""
    rows, cols = view
    r = np.arange(rows)[None, :, None] - offsets[:, 0, None, None]  # source row of target row
    c = np.arange(cols)[None, None, :] - offsets[:, 1, None, None]
    inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
    m = np.arange(len(cells))[:, None, None]
    return inside & cells[m, np.clip(r, 0, rows - 1), np.clip(c, 0, cols - 1)]


def paint(tokens, fresh, offsets, view, order) -> tuple[np.ndarray, np.ndarray]:
    """(tokens (R, C) int64, known (R, C) bool): the fresh cells of frames ``tokens`` (M, R, C)
    sitting at ``offsets`` (M, 2) from the target view (frame cell (r, c) -> target
    (r, c) + offset), painted in ``order`` (frame indices; a later one wins a cell). Unknown cells
    hold 0."""
    rows, cols = view
    canvas = np.zeros(view, dtype=np.int64)
    known = np.zeros(view, dtype=bool)
    for j in order:
        dr, dc = (int(v) for v in offsets[j])
        tr = slice(max(0, dr), min(rows, rows + dr))
        tc = slice(max(0, dc), min(cols, cols + dc))
        sr = slice(max(0, -dr), min(rows, rows - dr))
        sc = slice(max(0, -dc), min(cols, cols - dc))
        if tr.start >= tr.stop or tc.start >= tc.stop:
            continue
        cells = fresh[j, sr, sc]
        canvas[tr, tc][cells] = tokens[j, sr, sc][cells]
        known[tr, tc] |= cells
    return canvas, known


class FrameBank:
    """A bank of past token frames with pose and step, written and read under a
    :class:`MemoryPolicy`; see the module docstring for the rules."""

    def __init__(self, policy: MemoryPolicy | None = None, view=(8, 8)):
        policy = MemoryPolicy() if policy is None else policy
        if not isinstance(policy, MemoryPolicy):
            raise ValueError(f"policy must be a MemoryPolicy, got {type(policy).__name__}")
        view = tuple(int(v) for v in view)
        if len(view) != 2 or min(view) < 1:
            raise ValueError(f"view must be (R, C) with R, C >= 1, got {view}")
        self.policy, self.view = policy, view
        self.clear()

    def clear(self) -> None:
        """Forget everything."""
        self._alloc(0)
        self._n, self._next_serial = 0, 0

    def _alloc(self, slots: int) -> None:
        rows, cols = self.view
        self._tokens = np.zeros((slots, rows, cols), dtype=np.int64)
        self._fresh = np.zeros((slots, rows, cols), dtype=bool)
        self._pose = np.zeros((slots, 2), dtype=np.int64)
        self._step = np.zeros(slots, dtype=np.int64)
        self._serial = np.zeros(slots, dtype=np.int64)

    def _grow(self) -> None:
        """Room for one more frame: double the slots, never beyond the capacity."""
        slots = len(self._step)
        if self._n < slots:
            return
        cap = self.policy.capacity
        self._resize(max(4, 2 * slots) if cap is None else min(cap, max(4, 2 * slots)))

    def _resize(self, slots: int) -> None:
        """Room for ``slots`` frames, the ones held kept (``slots`` >= frames held)."""
        old = (self._tokens, self._fresh, self._pose, self._step, self._serial)
        self._alloc(slots)
        for dst, src in zip((self._tokens, self._fresh, self._pose, self._step, self._serial), old):
            dst[: self._n] = src[: self._n]

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays the bank holds (allocated slots included)."""
        arrays = (self._tokens, self._fresh, self._pose, self._step, self._serial)
        return int(sum(a.nbytes for a in arrays))

    def held_cells(self) -> np.ndarray:
        """(K, 2) int64: the map cells (row, col) some fresh stored cell shows, each once (in the
        bank's pose frame; a frame's view is centred on its pose)."""
        rows, cols = self.view
        slot, r, c = np.nonzero(self._fresh[: self._n])
        cells = self._pose[slot] + np.stack([r - rows // 2, c - cols // 2], 1)
        return np.unique(cells, axis=0) if len(cells) else cells.reshape(0, 2)

    def limit(self, capacity: int | None) -> None:
        """Set the policy's capacity (a memory budget, in frames) and forget down to it now, by
        the policy's eviction rule (None: unbounded)."""
        self.policy = replace(self.policy, capacity=capacity)  # validates it
        while capacity is not None and self._n > capacity:
            self._evict()
        if capacity is not None and len(self._step) > capacity:  # give the memory back
            self._resize(capacity)

    # ------------------------------------------------------------------ checks
    def _check_pose(self, pose) -> np.ndarray:
        pose = np.asarray(pose)
        if pose.shape != (2,) or not np.issubdtype(pose.dtype, np.integer):
            raise ValueError(f"pose must be an integer (row, col) of shape (2,), got {pose!r}")
        return pose.astype(np.int64)

    @staticmethod
    def _check_step(step) -> int:
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        if step < 0:
            raise ValueError(f"step must be an int >= 0, got {step}")
        return int(step)

    def _check_grid(self, grid, name: str, kind) -> np.ndarray:
        grid = np.asarray(grid)
        ok = np.issubdtype(grid.dtype, kind) if kind is not bool else grid.dtype == bool
        if grid.shape != self.view or not ok:
            what = "integer" if kind is not bool else "bool"
            raise ValueError(
                f"{name} must be an {what} grid of shape {self.view}, got {grid.dtype} {grid.shape}"
            )
        return grid

    # ------------------------------------------------------------------ geometry
    def _landed(self, cells, offsets) -> np.ndarray:
        """:func:`landed` in this bank's view."""
        return landed(cells, offsets, self.view)

    def _moved(self, values, offsets) -> np.ndarray:
        """(M, R, C): what each frame's ``values`` (M, R, C) show at each target cell, the frames
        at ``offsets`` (M, 2) (cells no frame covers hold a clipped neighbour: mask them with
        :meth:`_landed`)."""
        rows, cols = self.view
        r = np.arange(rows)[None, :, None] - offsets[:, 0, None, None]
        c = np.arange(cols)[None, None, :] - offsets[:, 1, None, None]
        m = np.arange(len(values))[:, None, None]
        return values[m, np.clip(r, 0, rows - 1), np.clip(c, 0, cols - 1)]

    def _overlapping(self, pose: np.ndarray) -> np.ndarray:
        """Slots whose view shares at least one cell with the view at ``pose``."""
        d = np.abs(self._pose[: self._n] - pose)
        return np.flatnonzero((d[:, 0] < self.view[0]) & (d[:, 1] < self.view[1]))

    def _recency_order(self, slots: np.ndarray) -> np.ndarray:
        """``slots`` newest first: highest step, then latest written."""
        return slots[np.lexsort((-self._serial[slots], -self._step[slots]))]

    def coverage(self, pose) -> np.ndarray:
        """(R, C) bool: the cells of the view at ``pose`` that some fresh stored cell shows."""
        pose = self._check_pose(pose)
        slots = self._overlapping(pose)
        landed = self._landed(self._fresh[slots], self._pose[slots] - pose)
        return landed.any(0)

    # ------------------------------------------------------------------ write
    def write(self, tokens, pose, step, ignore=None) -> bool:
        """Store the frame ``tokens`` (h, w) seen at ``pose`` (2,) at ``step``; whether it was written.

        ``ignore`` (h, w) bool: cells not to remember (e.g. the explorer's own cell, sheep): they
        are stored stale, and they make no older cell stale.
        """
        tokens = self._check_grid(tokens, "tokens", np.integer)
        pose, step = self._check_pose(pose), self._check_step(step)
        known = np.ones(self.view, dtype=bool)
        if ignore is not None:
            known = ~self._check_grid(ignore, "ignore", bool)
        slots = self._overlapping(pose)
        if self.policy.write == "novel" and not self._is_novel(tokens, known, pose, slots):
            return False
        if (self.policy.update or self.policy.update_changed) and len(slots):
            # the new frame's known cells, seen from each older frame: those cells are now stale
            offsets = pose - self._pose[slots]
            shown = self._landed(np.broadcast_to(known, (len(slots), *self.view)), offsets)
            if not self.policy.update:  # only where the new frame shows something else there
                seen = self._moved(np.broadcast_to(tokens, (len(slots), *self.view)), offsets)
                shown &= seen != self._tokens[slots]
            self._fresh[slots] &= ~shown
        if self.policy.capacity is not None and self._n >= self.policy.capacity:
            self._evict()
        self._grow()
        i = self._n
        self._tokens[i], self._fresh[i], self._pose[i] = tokens, known, pose
        self._step[i], self._serial[i] = step, self._next_serial
        self._n += 1
        self._next_serial += 1
        return True

    def _is_novel(self, tokens, known, pose, slots) -> bool:
        landed = self._landed(self._fresh[slots], self._pose[slots] - pose)
        novel = known & ~landed.any(0)
        if self.policy.novel_counts_changes and len(slots):
            oldest_first = np.lexsort((self._serial[slots], self._step[slots]))
            remembered, held = paint(
                self._tokens[slots],
                self._fresh[slots],
                self._pose[slots] - pose,
                self.view,
                oldest_first,
            )
            novel |= known & held & (remembered != tokens)
        return int(novel.sum()) >= self.policy.novel_cells

    def _evict(self) -> None:
        n = self._n
        if self.policy.evict == "oldest":
            victim = self._recency_order(np.arange(n))[-1]
        else:
            fresh = self._fresh[:n].sum(axis=(1, 2))
            # fewest fresh cells; among equals the oldest (lowest step, then first written)
            victim = np.lexsort((self._serial[:n], self._step[:n], fresh))[0]
        last = n - 1  # keep the slots packed: the last frame moves into the freed one
        for a in (self._tokens, self._fresh, self._pose, self._step, self._serial):
            a[victim] = a[last]
        self._n -= 1

    # ------------------------------------------------------------------ read
    def retrieve(self, pose, step, k: int | None = None) -> Retrieved:
        """The frames the policy reads for the view at ``pose`` (2,) at ``step``: k slots
        (``k`` or the policy's), padded when fewer frames are worth reading. Arrays are copies."""
        pose, step = self._check_pose(pose), self._check_step(step)
        k = self.policy.k if k is None else k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        rule, everything = self.policy.retrieve, np.arange(self._n)
        if rule == "overlap":
            chosen = self._cover(pose, k)
        elif rule == "recency":
            chosen = self._recency_order(everything)[:k]
        else:
            rng = np.random.default_rng([self.policy.seed, step])
            chosen = rng.permutation(self._n)[:k]
        return self._gather(np.asarray(chosen, dtype=np.int64), pose, step, k)

    def _cover(self, pose, k: int) -> list[int]:
        """Greedy set cover of the target view by fresh cells, ties to the newest."""
        slots = self._recency_order(self._overlapping(pose))  # argmax then picks the newest
        landed = self._landed(self._fresh[slots], self._pose[slots] - pose)
        uncovered = np.ones(self.view, dtype=bool)
        chosen: list[int] = []
        while len(chosen) < k and len(slots):
            gain = (landed & uncovered).sum(axis=(1, 2))
            best = int(np.argmax(gain))
            if gain[best] == 0:
                break
            chosen.append(int(slots[best]))
            uncovered &= ~landed[best]
        return chosen

    def _gather(self, chosen, pose, step, k) -> Retrieved:
        rows, cols = self.view
        m = len(chosen)
        out = Retrieved(
            tokens=np.zeros((k, rows, cols), dtype=np.int64),
            offset=np.zeros((k, 2), dtype=np.int64),
            age=np.zeros(k, dtype=np.int64),
            fresh=np.zeros((k, rows, cols), dtype=bool),
            index=np.full(k, -1, dtype=np.int64),
            valid=np.arange(k) < m,
        )
        out.tokens[:m] = self._tokens[chosen]
        out.offset[:m] = self._pose[chosen] - pose
        out.age[:m] = step - self._step[chosen]
        out.fresh[:m] = self._fresh[chosen]
        out.index[:m] = self._serial[chosen]
        return out

    def aligned(self, retrieved: Retrieved) -> tuple[np.ndarray, np.ndarray]:
        """(tokens (R, C) int64, known (R, C) bool): the retrieved frames' fresh tokens moved into
        the target view's cells, the newest frame winning where several show a cell — what an
        oracle "token map" reader would see. Unknown cells hold 0."""
        if not isinstance(retrieved, Retrieved):
            raise ValueError(f"aligned takes a Retrieved, got {type(retrieved).__name__}")
        if retrieved.tokens.shape[1:] != self.view:
            raise ValueError(
                f"retrieved frames are {retrieved.tokens.shape[1:]}, bank view is {self.view}"
            )
        valid = np.flatnonzero(retrieved.valid)
        # oldest first, so the newest paints last (largest age first; later written wins ties)
        order = valid[np.lexsort((retrieved.index[valid], -retrieved.age[valid]))]
        return paint(retrieved.tokens, retrieved.fresh, retrieved.offset, self.view, order)

    # ------------------------------------------------------------------ save / load
    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything the bank holds as plain numpy arrays (safetensors-ready, no pickle); the
        policy travels as UTF-8 JSON bytes in a uint8 array."""
        n = self._n
        policy = np.frombuffer(json.dumps(asdict(self.policy)).encode(), dtype=np.uint8)
        return {
            "tokens": self._tokens[:n].copy(),
            "fresh": self._fresh[:n].copy(),
            "pose": self._pose[:n].copy(),
            "step": self._step[:n].copy(),
            "serial": self._serial[:n].copy(),
            "next_serial": np.array([self._next_serial], dtype=np.int64),
            "view": np.array(self.view, dtype=np.int64),
            "policy": policy.copy(),
        }

    @staticmethod
    def policy_of(state: dict) -> MemoryPolicy:
        """The :class:`MemoryPolicy` a state dict was saved under."""
        if "policy" not in state:
            raise ValueError("state has no 'policy' entry: not a FrameBank state_dict")
        raw = json.loads(np.asarray(state["policy"], dtype=np.uint8).tobytes().decode())
        names = {f.name for f in fields(MemoryPolicy)}
        return MemoryPolicy(**{key: value for key, value in raw.items() if key in names})

    @classmethod
    def from_state_dict(cls, state: dict) -> FrameBank:
        """A bank rebuilt from :meth:`state_dict`, with the policy and view it was saved under."""
        view = tuple(int(v) for v in np.asarray(state.get("view", ())))
        bank = cls(cls.policy_of(state), view)
        bank.load_state_dict(state)
        return bank

    def load_state_dict(self, state: dict) -> None:
        """Replace the contents by a :meth:`state_dict`; its view and policy must be this bank's."""
        missing = [key for key in STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"not a FrameBank state_dict: missing {missing}")
        view = tuple(int(v) for v in np.asarray(state["view"]))
        if view != self.view:
            raise ValueError(f"state was saved with view {view}, this bank's view is {self.view}")
        saved = self.policy_of(state)
        if saved != self.policy:
            raise ValueError(
                f"state was saved under {saved}, this bank runs {self.policy}; "
                "use FrameBank.from_state_dict to load it with its own policy"
            )
        tokens, fresh = np.asarray(state["tokens"]), np.asarray(state["fresh"])
        pose, step, serial = (np.asarray(state[key]) for key in ("pose", "step", "serial"))
        n = len(tokens)
        shapes_ok = (
            tokens.shape == (n, *view)
            and fresh.shape == (n, *view)
            and pose.shape == (n, 2)
            and step.shape == (n,)
            and serial.shape == (n,)
        )
        if not shapes_ok:
            raise ValueError("state arrays disagree on the number of frames or the view")
        if self.policy.capacity is not None and n > self.policy.capacity:
            raise ValueError(
                f"state holds {n} frames, more than the capacity {self.policy.capacity}"
            )
        slots = n if self.policy.capacity is None else self.policy.capacity
        self._alloc(max(slots, n))
        self._tokens[:n], self._fresh[:n], self._pose[:n] = tokens, fresh.astype(bool), pose
        self._step[:n], self._serial[:n] = step, serial
        self._n, self._next_serial = n, int(np.asarray(state["next_serial"]).reshape(-1)[0])
