"""Save a dreamed world, come back tomorrow: one safetensors file, and play continues exactly.

A dreamed world is more than its weights: the engine's window (the last W frames as tokens and
the actions between them), its memory (the frame bank), where it thinks it stands (the pose and
the tracker that estimates it), the frames waiting to enter the bank, its random generator, and
the real world it walks beside (for ``pose="true"`` and the side-by-side view). All of it goes into
one safetensors file (tensors, plus JSON in its header; no pickle), and :func:`load_world` puts it
back so that the next action draws the very frame it would have drawn: the tree you cut is still
cut, and the lake you walked away from is still there.

The real world is not stored as a map: the simulator is deterministic, so its seed and the actions
played are enough to replay it.

Shapes: W window, N tokens per frame, R x C view cells, P frames waiting (at most W), S bank frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from hitchhiker.checkpoint import CheckpointError, _read_tensors, save_weights

FORMAT = "hitchhiker-dreamed-world"
VERSION = 1


def _identity(engine) -> dict:
    """What a saved world must agree with to be loaded into ``engine``."""
    return {
        "engine": engine.name,
        "context": int(engine.context),
        "grid": list(engine.grid),
        "vocab": int(engine.model.cfg.vocab_size),
        "pose": engine.pose_source,
        "use_memory": engine.use_memory,
    }


def save_world(engine, path) -> Path:
    """Write the world ``engine`` (a :class:`~.memory_engine.MemoryEngine`, or any engine built on
    it such as the latent grid's, played with ``reset``/``step``) is in to ``path``: one
    safetensors file; the memory itself comes from ``engine.memory_tensors()``."""
    if engine._tokens is None or engine._seed is None:
        raise RuntimeError("nothing to save: call reset(seed) (and play) first")
    pending = engine._pending
    tensors = {
        "window.tokens": engine._tokens.detach().cpu(),
        "window.actions": engine._actions.detach().cpu(),
        "rng": engine._gen.get_state(),
        "pose": torch.as_tensor(engine._poses),
        "tracker.pose": torch.as_tensor(np.stack([t._pose for t in engine._trackers])),
        "last": torch.as_tensor(engine._last),
        "pending.grids": torch.as_tensor(
            np.stack([p[0] for p in pending])
            if pending
            else np.zeros((0, 1, *engine.grid), np.int64)
        ),
        "pending.poses": torch.as_tensor(
            np.stack([p[1] for p in pending]) if pending else np.zeros((0, 1, 2), np.int64)
        ),
        "pending.steps": torch.as_tensor(np.array([p[2] for p in pending], dtype=np.int64)),
        "pending.ignore": torch.as_tensor(
            np.stack([p[3] for p in pending]) if pending else np.zeros((0, 1, *engine.grid), bool)
        ),
        "world.actions": torch.as_tensor(np.asarray(engine._played, dtype=np.int64)),
    }
    tensors.update(engine.memory_tensors())
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "identity": _identity(engine),
        "seed": int(engine._seed),
        "steps": int(engine._steps),
    }
    return save_weights(
        path, {k: v.contiguous() for k, v in tensors.items()}, metadata={"world": meta}
    )


def load_world(engine, path) -> np.ndarray:
    """Put the world saved in ``path`` back into ``engine`` (same model and settings); returns the
    frame it stood at. CheckpointError for a file that is not a saved world or is corrupt;
    ValueError for a world saved from another engine."""
    tensors, raw = _read_tensors(Path(path))
    try:
        meta = json.loads(raw.get("world", "null"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: its header is not a saved world ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a saved dreamed world (expected format {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: saved world version {meta.get('version')}, expected {VERSION}"
        )
    mine = _identity(engine)
    if meta["identity"] != mine:
        diff = {
            k: (meta["identity"].get(k), v) for k, v in mine.items() if meta["identity"].get(k) != v
        }
        raise ValueError(f"this world was saved from another engine: (saved, this engine) {diff}")
    engine.reset(int(meta["seed"]))  # the real world, replayed to where it was
    for a in tensors["world.actions"].tolist():
        engine.world.step(int(a))
    dev = engine.device
    engine._played = tensors["world.actions"].tolist()
    engine._tokens = tensors["window.tokens"].to(dev)
    engine._actions = tensors["window.actions"].to(dev)
    engine._gen.set_state(tensors["rng"])
    engine._poses = tensors["pose"].numpy().copy()
    for tracker, pose in zip(engine._trackers, tensors["tracker.pose"].numpy()):
        tracker._pose = pose.copy()
    engine._last = tensors["last"].numpy().copy()
    engine._steps = int(meta["steps"])
    engine._pending = [
        (g, p, int(s), i)
        for g, p, s, i in zip(
            tensors["pending.grids"].numpy(),
            tensors["pending.poses"].numpy(),
            tensors["pending.steps"].tolist(),
            tensors["pending.ignore"].numpy(),
        )
    ]
    engine.load_memory_tensors(tensors)
    return engine.decode(engine._tokens[0, -1])
