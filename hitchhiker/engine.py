"""The engine contract: what every world of the course offers, checked in one place.

An *engine* answers actions with frames. The simulator is one; every learned world model from
Stage III on, p(o[t+1] | o[<=t], a[t]) sampled one frame at a time, is another. They all speak

    reset(seed) -> frame            start world ``seed`` (the same seed gives the same world)
    step(action) -> frame           advance it by one action (a name or an index into ``actions``)
    rollout(context_frames, context_actions, actions) -> frames
                                    batched and stateless: imagine T frames after N real ones
    name, actions, context          a label, the action names, the window W of past frames it sees

so one live widget (:mod:`hitchhiker.play`, :mod:`.interactive.dream_play`) plays them and one
evaluation (:mod:`hitchhiker.interactive.rollout`) scores them. Engines that sample iteratively
also have ``decode_steps`` (MaskGIT or denoising steps; :func:`decode_steps_of`, None if not).
:class:`Playable` is what the widget needs (:class:`hitchhiker.world.SimulatorEngine` offers just
that; :class:`hitchhiker.interactive.truth.SimulatorRollout` is the simulator's whole engine);
:class:`Engine` is the whole contract. Both are structural: an engine subclasses nothing.

``rollout`` in detail: context_frames uint8 (B, N, H, W, 3) real frames, context_actions (B, N-1)
the actions between them, actions (B, T) the ones to imagine under; returns uint8 (B, T, H, W, 3).
A context shorter than the window is padded in front by repeating its first frame with noop
actions (:func:`pad_context`), one longer is cut to its last W frames. Its arguments go through
:func:`check_rollout_args`, the one argument check, and so do seeds (:func:`check_seed`) and
actions (:func:`action_index`): a bad input fails at the door with a message that names what was
expected, not three calls deep in a network.

Frames. ``reset`` and ``step`` may return any of

    uint8  numpy (H, W, 3)  in [0, 255]     the simulator, the learned engines
    float  numpy (H, W, 3)  in [0, 1]       a decoder output
    torch  (C, H, W) or (H, W, C), any dtype/device, float in [0, 1]

and :func:`as_frame` turns each into uint8 numpy (H, W, 3) (one channel repeated to three), the one
form the widget shows and the tile reader reads; ``rollout`` returns uint8 (B, T, H, W, 3), checked
by :func:`as_rollout_frames`.

**Room for Stage V** (reward and many dreams at once), built only as far as it is cheap:

- :class:`StepResult`: a frame with the reward and the end flag of the step that made it. Today's
  engines return bare frames, read as reward 0 and not terminated (:func:`as_step_result`); an
  engine that learns rewards may return a StepResult from ``step`` and the widget still plays it
  (:func:`as_frame` takes a StepResult's frame).
- :class:`BatchPlayable`: ``reset_batch(seeds)`` / ``step_batch(actions)`` over B worlds, which an
  agent training in imagination needs. :class:`LoopBatch` implements it for any engines by looping
  over B of them; a learned engine can implement it natively (one network call for B worlds).

Shapes: B batch (worlds), N context frames, T imagined steps, W window, H x W pixels, C = 3, A actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hitchhiker.world.env import ACTION_NAMES, Action

_FLOAT_SLACK = 0.5  # floats may overshoot [0, 1] this much (a decoder); beyond: 0..255 by mistake


# ----------------------------------------------------------------------------- the contract
@runtime_checkable
class Playable(Protocol):
    """What the live widget needs: ``reset(seed)`` and ``step(action)``, each returning a frame
    (any form :func:`as_frame` accepts, or a :class:`StepResult`). ``actions`` is optional here."""

    def reset(self, seed: int) -> Any: ...

    def step(self, action: int | str) -> Any: ...


@runtime_checkable
class Engine(Playable, Protocol):
    """The whole contract (module docstring); ``decode_steps`` is optional: :func:`decode_steps_of`."""

    name: str
    actions: Sequence[str]
    context: int
    """W: past frames the engine conditions on (1 for one that only sees the last frame)."""

    def rollout(self, context_frames: Any, context_actions: Any, actions: Any) -> np.ndarray: ...


@runtime_checkable
class BatchPlayable(Protocol):
    """B worlds stepped together (Stage V): (B, H, W, 3) frames, a :class:`StepResult` of B."""

    def reset_batch(self, seeds: Any) -> np.ndarray: ...

    def step_batch(self, actions: Any) -> StepResult: ...


@dataclass(frozen=True)
class StepResult:
    """One step's output: the frame, and the reward and end of episode that came with it. One world:
    frame uint8 (H, W, 3), reward a float, terminated a bool; B worlds (:class:`BatchPlayable`):
    (B, H, W, 3), float32 (B,), bool (B,). Engines that model neither leave them at 0 and False."""

    frame: Any
    reward: Any = 0.0
    terminated: Any = False


# ----------------------------------------------------------------------------- the one check
def check_engine(engine: Any, what: str = "engine") -> None:
    """TypeError unless ``engine`` has callable ``reset`` and ``step`` (:class:`Playable`)."""
    for method in ("reset", "step"):
        if not callable(getattr(engine, method, None)):
            raise TypeError(
                f"{what} must have reset(seed) and step(action) methods; "
                f"{type(engine).__name__} has no callable {method!r}"
            )


def action_names(engine: Any) -> list[str]:
    """The engine's ``actions`` as strings, or :data:`ACTION_NAMES` when it names none."""
    names = getattr(engine, "actions", None)
    return [str(a) for a in names] if names else list(ACTION_NAMES)


def action_index(action: Any, names: Sequence[str] = ACTION_NAMES) -> int:
    """Index of ``action`` (a name in ``names``, exactly, or an index) ; ValueError if unknown."""
    if isinstance(action, (int, np.integer)) and not isinstance(action, (bool, np.bool_)):
        if 0 <= action < len(names):
            return int(action)
    elif isinstance(action, str) and action in names:
        return list(names).index(action)
    raise ValueError(
        f"unknown action {action!r}; valid: {list(names)} or an index 0..{len(names) - 1}"
    )


def check_seed(seed: Any) -> int:
    """A world seed as an int; ValueError unless it is a non-negative integer."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)) and seed >= 0:
        return int(seed)
    raise ValueError(f"seed must be a non-negative integer (a world's seed); got {seed!r}")


def check_seeds(seeds: Any, batch: int) -> np.ndarray:
    """World seeds of a batch as int64 (B,); ValueError unless B non-negative integers."""
    s = np.asarray(seeds)
    if s.shape != (batch,) or not np.issubdtype(s.dtype, np.integer) or (s.size and s.min() < 0):
        raise ValueError(
            f"seeds must be {batch} non-negative integers, shape (B={batch},); got {seeds!r}"
        )
    return s.astype(np.int64)


def check_rollout_args(context_frames, context_actions, actions):
    """The arguments of ``engine.rollout`` checked and as numpy: context_frames uint8
    (B, N, H, W, 3), context_actions int64 (B, N-1), actions int64 (B, T), actions in 0..A-1."""
    frames = np.asarray(context_frames)
    if frames.dtype != np.uint8 or frames.ndim != 5 or frames.shape[-1] != 3 or frames.shape[1] < 1:
        raise ValueError(
            f"context_frames must be uint8 (B, N>=1, H, W, 3); got {frames.dtype} {frames.shape}"
        )
    b, n = frames.shape[:2]
    past, future = np.asarray(context_actions), np.asarray(actions)
    for name, a, shape in (("context_actions", past, (b, n - 1)), ("actions", future, None)):
        if not np.issubdtype(a.dtype, np.integer) or a.ndim != 2 or a.shape[0] != b:
            raise ValueError(f"{name} must be integer (B={b}, ...); got {a.dtype} {a.shape}")
        if shape is not None and a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}; got {a.shape}")
        if a.size and (a.min() < 0 or a.max() >= len(Action)):
            raise ValueError(f"{name} must lie in [0, {len(Action) - 1}]; got {a.min()}..{a.max()}")
    return frames, past.astype(np.int64), future.astype(np.int64)


def context_window(engine: Any) -> int:
    """W: how many past frames ``engine`` conditions on (``engine.context``; 1 if it says not)."""
    w = getattr(engine, "context", None)
    return int(w) if isinstance(w, (int, np.integer)) and w >= 1 else 1


def decode_steps_of(engine: Any) -> int | None:
    """The engine's ``decode_steps`` (an int), or None for an engine without decoding steps."""
    steps = getattr(engine, "decode_steps", None)
    has_steps = isinstance(steps, (int, np.integer)) and not isinstance(steps, bool)
    return int(steps) if has_steps else None


def pad_context(context_frames, context_actions, window: int):
    """The last ``window`` frames (and actions between them) of a context; a shorter context is
    padded in front by repeating its first frame with noop actions, as every engine must."""
    no_future = np.zeros((len(context_frames), 0), dtype=np.int64)
    frames, past, _ = check_rollout_args(context_frames, context_actions, no_future)
    frames, past = frames[:, -window:], past[:, max(0, past.shape[1] - window + 1) :]
    missing = window - frames.shape[1]
    if missing > 0:
        frames = np.concatenate([np.repeat(frames[:, :1], missing, axis=1), frames], axis=1)
        past = np.concatenate([np.full((len(past), missing), int(Action.NOOP)), past], axis=1)
    return frames, past


# ----------------------------------------------------------------------------- frames
def as_frame(frame: Any) -> np.ndarray:
    """An engine's frame (any form of the module docstring, or a :class:`StepResult`'s) as a fresh
    uint8 numpy array (H, W, 3). Integers must lie in [0, 255], floats in [0, 1] (clipped, small
    overshoot allowed); torch is read channel-first when both ends could be channels (models emit
    CHW). Always a copy: an engine that reuses its output buffer cannot change a stored frame."""
    if isinstance(frame, StepResult):
        frame = frame.frame
    is_torch = type(frame).__module__.startswith("torch")  # no torch import for numpy engines
    if is_torch:
        frame = frame.detach().to("cpu").numpy()
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be a numpy array or torch tensor, got {type(frame).__name__}")
    if frame.ndim != 3:
        raise ValueError(
            f"frame must have 3 dims, (H, W, 3) or (3, H, W), got shape {tuple(frame.shape)}"
        )
    first, last = frame.shape[0] in (1, 3), frame.shape[-1] in (1, 3)
    if first and (is_torch or not last):
        frame = np.moveaxis(frame, 0, -1)
    elif not last:
        raise ValueError(
            f"frame must have 1 or 3 channels first or last, got shape {tuple(frame.shape)}"
        )
    if frame.dtype == np.uint8:
        out = np.array(frame, dtype=np.uint8, copy=True)
    elif np.issubdtype(frame.dtype, np.floating):
        if not np.all(np.isfinite(frame)):
            raise ValueError("float frame contains NaN or inf")
        lo, hi = float(frame.min()), float(frame.max())
        if lo < -_FLOAT_SLACK or hi > 1 + _FLOAT_SLACK:
            raise ValueError(f"float frame must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
        out = np.rint(np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif np.issubdtype(frame.dtype, np.integer) or frame.dtype == np.bool_:
        if frame.dtype == np.bool_:
            frame = frame.astype(np.uint8) * 255
        lo, hi = int(frame.min()), int(frame.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"integer frame must lie in [0, 255], got values in [{lo}, {hi}]")
        out = frame.astype(np.uint8)
    else:
        raise TypeError(f"frame dtype must be uint8, integer or float, got {frame.dtype}")
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return np.ascontiguousarray(out)


def as_rollout_frames(out: Any, want: tuple[int, ...], who: str = "engine") -> np.ndarray:
    """A rollout's output as numpy, checked to be uint8 of shape ``want`` (B, T, H, W, 3)."""
    if hasattr(out, "detach"):  # a torch tensor
        out = out.detach().cpu().numpy()
    out = np.asarray(out)
    if out.dtype == np.uint8 and out.shape == tuple(want):
        return out
    raise ValueError(
        f"{who}.rollout must return uint8 frames {tuple(want)}; got {out.dtype} {out.shape}"
    )


def as_step_result(out: Any) -> StepResult:
    """An engine's ``step`` or ``reset`` output as a :class:`StepResult` with a uint8 (H, W, 3)
    frame: a bare frame reads as reward 0.0, not terminated."""
    if isinstance(out, StepResult):
        return StepResult(as_frame(out.frame), float(out.reward), bool(out.terminated))
    return StepResult(as_frame(out))


# ----------------------------------------------------------------------------- many worlds
class LoopBatch:
    """B engines stepped as one batch (:class:`BatchPlayable`) by a plain loop: generic, slow (B
    engine calls a step) and exact (world b is ``engines[b]``, as if played alone). The engines must
    be B distinct objects (one holds one world's state); actions are named by the first one's."""

    def __init__(self, engines: Sequence[Any]):
        engines = list(engines)
        if not engines:
            raise ValueError("LoopBatch needs at least one engine")
        if len({id(e) for e in engines}) != len(engines):
            raise ValueError("LoopBatch needs distinct engine objects: each holds one world")
        for b, engine in enumerate(engines):
            check_engine(engine, f"engine {b}")
        self.engines = engines
        self.actions = action_names(engines[0])

    def __len__(self) -> int:
        return len(self.engines)

    def reset_batch(self, seeds: Any) -> np.ndarray:
        """Reset world b to ``seeds[b]``: uint8 (B, H, W, 3)."""
        s = check_seeds(seeds, len(self.engines))
        return np.stack([as_frame(e.reset(int(x))) for e, x in zip(self.engines, s, strict=True)])

    def step_batch(self, actions: Any) -> StepResult:
        """Step world b with ``actions[b]`` (names or indices, B of them): a batch StepResult.
        All actions are checked before any world moves."""
        b = len(self.engines)
        if isinstance(actions, str) or np.ndim(actions) != 1 or len(actions) != b:
            raise ValueError(f"actions must be one per world, (B={b},); got {actions!r}")
        index = [action_index(a, self.actions) for a in actions]
        steps = [as_step_result(e.step(i)) for e, i in zip(self.engines, index, strict=True)]
        return StepResult(
            np.stack([r.frame for r in steps]),
            np.array([r.reward for r in steps], dtype=np.float32),
            np.array([r.terminated for r in steps], dtype=bool),
        )
