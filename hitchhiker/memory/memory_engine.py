"""Play the memory model: the Stage III engine, plus a bank of the frames that left its window.

Each imagined frame is drawn as in Stage III (:class:`~hitchhiker.interactive.masked_dynamics_engine.
DynamicsEngine`: MaskGIT decoding against a frozen cache of the context), with the cache now also
holding M frames read from a :class:`~.frame_bank.FrameBank`. Per frame, in order:

1. **Where will I be?** The pose the action leads to: the current pose plus the action's move
   (:data:`~.pose.ACTION_DELTAS`). Whether the move is blocked is only known once the frame is
   drawn; the model was trained with the same guess.
2. **Retrieve** for that view (the bank's policy: greedy overlap coverage, recency or random), warp
   the frames into it (:func:`~.memory_dynamics_model.warp_memory`) and draw the frame.
3. **Update the pose**: ``pose="true"`` takes it from the world (the simulator stepped in lockstep,
   or the positions handed to :meth:`rollout`); ``pose="estimated"`` infers it, the road's filter
   q(z[t] | h[t-1], o[t]) made concrete: dead reckoning of the action corrected by the shift read
   between the engine's own last two frames (:class:`~.pose.PoseTracker`).
4. **Write**: the frame that just left the W-frame window goes into the bank (the policy's write
   rule decides), with its pose and step. The window and the memory never hold the same frame.

The memory itself sits behind four hooks (``_new_memory``, ``_write``, ``_read``,
``memory_bytes``); a memory of another kind overrides only those
(:class:`~.state_memory_engine.StateMemoryEngine`: a latent grid instead of a bank).

Controls on the same engine: ``use_memory=False`` is the model with an empty memory; ``truth=``
in :meth:`rollout` writes the *real* frames' tokens instead of the imagined ones (the oracle memory,
the ceiling of the read path). The memory costs what the bank holds (``memory_bytes``) and M N
more context tokens per frame, whatever the length of the history.

Shapes: B batch, W window, T imagined steps, M memory frames, h x w token grid, N = h * w.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from hitchhiker.engine import action_index, check_rollout_args
from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.masks.core import KVCache
from hitchhiker.memory.frame_bank import FrameBank, MemoryPolicy, paint
from hitchhiker.memory.memory_dynamics_model import warp_memory
from hitchhiker.memory.pose import ACTION_DELTAS, PoseTracker

POSE_SOURCES = ("true", "estimated")


def explorer_cell(view=(8, 8)) -> np.ndarray:
    """(R, C) bool, True at the view's centre: the explorer's own cell, never worth remembering
    (read back later it would draw the explorer where it no longer stands)."""
    cell = np.zeros(view, dtype=bool)
    cell[view[0] // 2, view[1] // 2] = True
    return cell


def reach_cells(view=(8, 8)) -> np.ndarray:
    """(R, C) bool: the explorer's cell and the four it can face (where its actions edit)."""
    cell = explorer_cell(view)
    r, c = view[0] // 2, view[1] // 2
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        cell[r + dr, c + dc] = True
    return cell


class MemoryEngine(DynamicsEngine):
    """A :class:`~.memory_dynamics_model.MemoryDynamicsModel` and its bank behind the engine
    interface. ``policy`` is the bank's (default: the one it was trained with)."""

    def __init__(
        self,
        model,
        tokenizer,
        policy: MemoryPolicy | None = None,
        pose: str = "estimated",
        use_memory: bool = True,
        decode_steps: int | None = None,
        temperature: float | None = None,
        seed: int = 0,
        cfg=None,
    ):
        super().__init__(model, tokenizer, decode_steps, temperature, seed, cfg)
        if pose not in POSE_SOURCES:
            raise ValueError(f"pose must be one of {POSE_SOURCES}; got {pose!r}")
        self.policy = policy if policy is not None else self.cfg.policy()
        if not isinstance(self.policy, MemoryPolicy):
            raise ValueError(f"policy must be a MemoryPolicy; got {type(self.policy).__name__}")
        if self.policy.k > model.memory_frames:
            raise ValueError(
                f"the model reads at most {model.memory_frames} memory frames; "
                f"the policy retrieves {self.policy.k}"
            )
        self.pose_source, self.use_memory = pose, bool(use_memory)
        self.grid = (self.cfg.tokens.grid_h, self.cfg.tokens.grid_w)
        self._centre = explorer_cell(self.grid)
        self._reach = reach_cells(self.grid)
        self._recalled = None
        self._seed, self._played = None, []
        self._banks: list[FrameBank] = []
        self._memory = None
        self.last_retrieved: list = []
        """What the last frame read, per batch element (the widget's mini-map shows it)."""

    # -- the walk's bookkeeping ----------------------------------------------------------------

    def _begin(self, tokens: torch.Tensor, past: np.ndarray, poses: np.ndarray | None) -> None:
        """Start B walks from real context tokens (B, n, N) and the actions between them; frames
        before the last W go straight into the banks."""
        b, n = tokens.shape[:2]
        grids = tokens.view(b, n, *self.grid).cpu().numpy()
        self._new_memory(b)
        self._trackers = [PoseTracker() for _ in range(b)]
        if poses is None or self.pose_source == "estimated":
            est = np.zeros((b, n, 2), dtype=np.int64)
            for i, tr in enumerate(self._trackers):
                for a in range(1, n):
                    est[i, a] = tr.update(int(past[i, a - 1]), grids[i, a - 1], grids[i, a])
            poses = est
        self._poses = np.asarray(poses, dtype=np.int64)[:, -1].copy()
        self._steps = n - 1  # step of the newest frame
        keep = np.broadcast_to(self._centre, (b, *self.grid))  # real frames: all but the explorer
        self._pending = [(grids[:, a], np.asarray(poses)[:, a], a, keep) for a in range(n)]
        self._last = grids[:, -1]  # the newest frame as drawn (the pose is read from it)
        self._write_leaving()

    def _write_leaving(self) -> None:
        """Frames that left the W-frame window go into the banks (the policy decides if kept)."""
        while len(self._pending) > self.context:
            self._write(*self._pending.pop(0))

    # -- the memory itself: what a memory of another kind overrides ----------------------------

    def _new_memory(self, b: int) -> None:
        """Empty memories for B walks."""
        self._banks = [FrameBank(self.policy, self.grid) for _ in range(b)]

    def _write(self, grids: np.ndarray, poses: np.ndarray, step: int, ignore: np.ndarray) -> None:
        """Write one frame per walk: token grids (B, R, C) seen at ``poses`` (B, 2) at ``step``,
        except the cells of ``ignore`` (B, R, C)."""
        for bank, grid, pose, skip in zip(self._banks, grids, poses, ignore):
            bank.write(grid, pose, step, ignore=skip)

    def _read(self, target: np.ndarray, window: tuple[np.ndarray, np.ndarray]):
        """(the model's memory for the views at ``target`` (B, 2), (B, R, C) bool: the cells of
        those views the memory knows); sets ``last_retrieved``. ``window``: those views as the
        frames still in the window show them (:meth:`_window_view`), for a memory that reads
        the window first."""
        got = [bank.retrieve(p, self._steps + 1) for bank, p in zip(self._banks, target)]
        self.last_retrieved = got
        known = np.stack([bank.coverage(p) for bank, p in zip(self._banks, target)])
        stack = {k: np.stack([getattr(g, k) for g in got]) for k in ("index", "offset", "age")}
        stored = np.stack([g.tokens for g in got])
        fresh = np.stack([g.fresh & g.valid[:, None, None] for g in got])
        dev = self.device
        memory = warp_memory(
            torch.as_tensor(stored, device=dev),
            torch.as_tensor(stack["offset"], device=dev),
            torch.as_tensor(np.maximum(stack["age"], 1), device=dev),
            torch.as_tensor(fresh, device=dev),
            self.grid,
            self.model.mask_id,
        )
        if self.policy.window_first:  # the window is newer than the bank: it wins where they differ
            tokens, shown = window
            dev = memory.tokens.device
            newer = torch.as_tensor(tokens.reshape(len(target), 1, -1), device=dev)
            shown = torch.as_tensor(shown.reshape(len(target), 1, -1), device=dev)
            stale = shown & (memory.tokens != self.model.mask_id) & (memory.tokens != newer)
            memory.tokens.masked_fill_(stale, self.model.mask_id)
        return memory, known

    def memory_map(self, cells: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(held (K, 2), pose (2,), read (J, 2)) of the first walk, in its own frame of reference:
        the map cells its memory holds (a memory that holds a region gives those within ``cells``
        of the pose), where it thinks it stands, and the cells read for the last frame (none with
        the memory off); all empty before a reset. The play panel's mini-map draws them. A bank
        holds the cells its fresh frames show and reads those of the frames it retrieved."""
        none = np.zeros((0, 2), dtype=np.int64)
        if not self._banks:
            return none, np.zeros(2, dtype=np.int64), none
        pose, read = self._poses[0].astype(np.int64), none
        got = self.last_retrieved[0] if self.use_memory and self.last_retrieved else None
        if got is not None and got.valid.any():
            slot, r, c = np.nonzero(got.fresh & got.valid[:, None, None])
            corner = self._read_at() - np.array(self.grid) // 2
            read = corner + got.offset[slot] + np.stack([r, c], 1)
        return self._banks[0].held_cells(), pose, read

    def _read_at(self) -> np.ndarray:
        """(2,) the pose the first walk's last frame was read for (the pose, before any read)."""
        return self._poses[0] if self._recalled is None else self._recalled[0][0]

    def memory_tensors(self) -> dict[str, torch.Tensor]:
        """The first walk's memory as named tensors (:func:`~.saved_world.save_world`)."""
        return {f"bank.{k}": torch.as_tensor(v) for k, v in self._banks[0].state_dict().items()}

    def load_memory_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Put back a memory saved by :meth:`memory_tensors` (ValueError if it is not a bank kept
        under this engine's policy)."""
        bank = {k[len("bank.") :]: v.numpy() for k, v in tensors.items() if k.startswith("bank.")}
        if not bank:
            raise ValueError("this saved world holds no frame bank (saved from another memory?)")
        if FrameBank.policy_of(bank) != self.policy:
            raise ValueError(
                f"this world's memory was kept under {FrameBank.policy_of(bank)}; this engine "
                f"runs {self.policy}"
            )
        self._banks = [FrameBank.from_state_dict(bank)]

    # -- the walk's bookkeeping, continued -------------------------------------------------------

    def _retrieve(self, actions: np.ndarray):
        """The memory for the next frame of each walk, read at the pose its action leads to."""
        if not self.use_memory:
            self.last_retrieved, self._recalled = [], None
            return None
        target = self._poses + ACTION_DELTAS[np.asarray(actions)]
        window = self._window_view(target)
        memory, known = self._read(target, window)
        # what the memory already knew of the view, where it is (the frame drawn may not move)
        self._recalled = (target, known | window[1])
        return memory

    def _advance(self, drawn, actions, true_poses=None, written=None) -> None:
        """After a frame: update the poses, queue the frame to be written when it leaves."""
        b = drawn.shape[0]
        grids = drawn.view(b, *self.grid).cpu().numpy()
        prev, self._last = self._last, grids
        if self.pose_source == "true" and true_poses is not None:
            self._poses = np.asarray(true_poses, dtype=np.int64).copy()
        else:
            self._poses = np.stack(
                [
                    tr.update(int(a), p, g)
                    for tr, a, p, g in zip(self._trackers, actions, prev, grids)
                ]
            ).astype(np.int64)
        self._steps += 1
        if written is None:
            keep, ignore = grids, self._imagined_ignore(b)
        else:  # the oracle: real frames, written whole
            keep = written.view(b, *self.grid).cpu().numpy()
            ignore = np.broadcast_to(self._centre, (b, *self.grid))
        self._pending.append((keep, self._poses.copy(), self._steps, ignore))
        self._write_leaving()

    def _window_view(self, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tokens (B, R, C), shown (B, R, C) bool): the views at ``target`` (B, 2) as the frames
        still in the window show them (they go to the bank when they leave it), newer frames over
        older ones, each frame's cells as it will be written (its ``ignore`` cells left out)."""
        b = len(target)
        tokens = np.zeros((b, *self.grid), dtype=np.int64)
        shown = np.zeros((b, *self.grid), dtype=bool)
        if not self._pending:
            return tokens, shown
        grids = np.stack([p[0] for p in self._pending], 1)  # (B, P, R, C), oldest first
        poses = np.stack([p[1] for p in self._pending], 1)  # (B, P, 2)
        keep = ~np.stack([p[3] for p in self._pending], 1)  # (B, P, R, C)
        newest_last = range(len(self._pending))
        for i, pose in enumerate(target):
            tokens[i], shown[i] = paint(grids[i], keep[i], poses[i] - pose, self.grid, newest_last)
        return tokens, shown

    def _imagined_ignore(self, b: int) -> np.ndarray:
        """(B, R, C) the cells of the frame just imagined that the memory does *not* take: its
        explorer, and what the memory already knew of the view (away from the explorer's reach).

        An imagined frame only adds to what is remembered: land it revealed, and the cells next to
        the explorer, where an action can change the world (a tree cut, a flower picked). Where
        the memory already knew the land, the frame was drawn from it, and writing it back as
        fresher would let every drawing error overwrite what was seen, frame after frame (measured:
        on the way back of condition (i), remembered cells matched the real ones 0.69 of the time
        when imagined frames overwrote them)."""
        ignore = np.broadcast_to(self._centre, (b, *self.grid)).copy()
        if not self.use_memory or self._recalled is None:
            return ignore
        target, known = self._recalled
        same = (target == self._poses).all(axis=1)  # a blocked move: the view is not the target
        ignore[same] |= known[same] & ~self._reach
        return ignore

    @property
    def poses(self) -> np.ndarray:
        """(B, 2) where each walk's explorer stands now, as the engine knows it (estimated by its
        pose tracker from the frames, relative to the first frame it was given; or the true pose,
        with ``pose="true"``); a copy."""
        return np.array(self._poses, dtype=np.int64)

    @property
    def memory_bytes(self) -> int:
        """Bytes the banks hold now (all walks together)."""
        return int(sum(bank.nbytes for bank in self._banks))

    def describe(self) -> str:
        """One line on what the first walk's memory holds and read for its last frame."""
        got = self.last_retrieved[0] if self.last_retrieved else None
        reading = 0 if got is None else int(got.valid.sum())
        frames, nbytes = (len(self._banks[0]), self._banks[0].nbytes) if self._banks else (0, 0)
        return (
            f"memory: {frames} frames held, {nbytes / 1024:.1f} kB; "
            f"{reading} read for the last frame"
        )

    def set_capacity(self, capacity: int | None) -> None:
        """Keep at most ``capacity`` frames (None: unbounded), now (the banks evict by their rule)
        and after any reset."""
        self.policy = replace(self.policy, capacity=capacity)
        for bank in self._banks:
            bank.limit(capacity)

    # -- drawing a frame with the memory in the cache --------------------------------------------

    def logits_fn(self, tokens, actions, nxt, cached=True):
        """As Stage III's, with the memory retrieved for this frame in front of the context."""
        memory = self._memory
        if memory is None:
            return super().logits_fn(tokens, actions, nxt, cached)
        cache = KVCache()
        self.model.remember(tokens, actions, memory, cache)
        cache.frozen = True
        w = tokens.shape[1]
        return lambda x: self.model(x[:, None], nxt[:, None], w, cache, memory=memory)[:, 0]

    def _draw(self, world_actions: np.ndarray, model_actions: torch.Tensor, gen) -> torch.Tensor:
        self._memory = self._retrieve(world_actions)
        try:
            return self.predict(self._tokens, self._actions, model_actions, gen)
        finally:
            self._memory = None

    def _next(self, world_actions, model_actions, gen, true_poses=None, written=None):
        """One imagined frame (B, N) of every walk: retrieve and draw it, slide the window, update
        the pose and queue what leaves for the bank (``true_poses``, ``written``: see
        :meth:`_advance`)."""
        nxt = self._draw(world_actions, model_actions, gen)
        self._slide(nxt, model_actions)
        self._advance(nxt, world_actions, true_poses, written)
        return nxt

    # -- the engine interface ----------------------------------------------------------------------

    def reset(self, seed: int) -> np.ndarray:
        frame = super().reset(seed)
        self._seed, self._played = int(seed), []  # the real world replays from these (save_world)
        start = np.asarray(self.world.env.position, dtype=np.int64)[None, None]
        self._begin(self._tokens[:, -1:], np.zeros((1, 0), np.int64), start)
        return frame

    def step(self, action) -> np.ndarray:
        if self._tokens is None:
            raise RuntimeError("call reset(seed) before step(action)")
        a = action_index(action, self.actions)
        self.world.step(a)  # the real world in lockstep: the true pose, for pose="true"
        self._played.append(a)
        with torch.inference_mode():
            true = np.asarray(self.world.env.position, dtype=np.int64)[None]
            nxt = self._next(np.array([a]), self.model_actions([a]), self._gen, true)
        return self.decode(nxt[0])

    def step_code(self, code: int) -> np.ndarray:
        raise ValueError(f"{self.name} reads the true actions and a memory: use step()")

    @torch.inference_mode()
    def start_from(self, tokens: torch.Tensor, past) -> None:
        """Begin B walks from real token frames (B, n, N) and the world actions (B, n-1) between
        them: the last W frames are the window, the older ones go into the memory. Then
        :meth:`imagine` steps them (Stage V's capstone re-anchors its dream here: an agent's
        whole real past is remembered, not only the window's)."""
        super().start_from(tokens, past)  # the window and the generator
        past = np.asarray(past, dtype=np.int64).reshape(tokens.shape[0], tokens.shape[1] - 1)
        self._begin(tokens, past, None)

    @torch.inference_mode()
    def imagine(self, actions) -> torch.Tensor:
        """The next imagined frame's tokens (B, N) of each walk begun by :meth:`start_from`, after
        world ``actions`` (B,): retrieved for, drawn, remembered when it leaves the window."""
        if self._tokens is None or self._gen is None:
            raise RuntimeError("call start_from(tokens, past) before imagine(actions)")
        a = np.asarray(actions, dtype=np.int64).reshape(-1)
        return self._next(a, self.model_actions(a), self._gen)

    @torch.inference_mode()
    def rollout(self, context_frames, context_actions, actions, poses=None, truth=None):
        """Imagine T frames (B, T, 64, 64, 3) after real context frames (B, n, ...), the actions
        between them (B, n-1) and the actions to imagine (B, T).

        ``poses`` (B, n+T, 2): the true positions of every frame (used with ``pose="true"``;
        without them the pose is estimated). ``truth`` (B, T, 64, 64, 3): the real frames of the
        imagined steps, written to the memory instead of the imagined ones (the oracle memory).
        """
        frames, past, future = check_rollout_args(context_frames, context_actions, actions)
        b, n, t = len(frames), frames.shape[1], future.shape[1]
        if poses is not None and np.shape(poses) != (b, n + t, 2):
            raise ValueError(f"poses must be (B, n+T, 2) = {(b, n + t, 2)}; got {np.shape(poses)}")
        if truth is not None and np.shape(truth)[:2] != (b, t):
            raise ValueError(f"truth must be (B, T, 64, 64, 3) with B, T = {(b, t)}")
        saved = self._tokens, self._actions
        real = self.encode(frames)
        self._tokens, self._actions = self.window(real, past)
        self._begin(real, past, None if poses is None else np.asarray(poses)[:, :n])
        truth_tokens = None if truth is None else self.encode(np.asarray(truth))
        gen, out = self._generator(), []
        acts = self.model_actions(future)
        for s in range(t):
            true = None if poses is None else np.asarray(poses)[:, n + s]
            written = None if truth is None else truth_tokens[:, s]
            out.append(self._next(future[:, s], acts[:, s], gen, true, written))
        self._tokens, self._actions = saved
        if not out:
            return np.zeros((b, 0, 64, 64, 3), dtype=np.uint8)
        return self.decode(torch.stack(out, 1))
