"""What a memory costs as the history grows: milliseconds per frame and bytes held.

A world model that plays must answer every action at the same speed after two thousand steps as
after ten. Four ways to remember, measured on the same walk at batch 1:

- **retrieval memory** (:class:`~.memory_engine.MemoryEngine`): the bank grows by one frame per
  step (its tokens, pose and step: ~N + 4 integers), the model reads a fixed M frames, so the
  model's cost is flat; what grows is the retrieval's greedy coverage, which scores every stored
  frame's overlap with the view about to be drawn (O(history) cheap integer work).
- **state-space memory** (:class:`~.state_memory_engine.StateMemoryEngine`): a fixed grid of
  latent cells, one write and one read of N cells per frame, one memory frame read by the model:
  flat in both time and bytes (a history longer than the grid's side aliases instead of growing).
- **the plain longer window** (Stage III's engine, its window widened to hold the history): every
  frame re-runs the whole window through the transformer (its keys move one slot each frame), so
  the cost grows with the window, and attention's with its square. The window's cost does not
  depend on what the weights are, so it is timed on an untrained model of the shipped one's shape:
  a longer window would need its own training to be *good*, not to be *timed*.
- **no memory**: the shipped engine, W frames (the reference).

Figures are medians over timed frames after a warm-up frame; bytes are what each holds for the
history (the bank's arrays; the window's token ids), not the transient keys and values.

Shapes: B = 1, H frames of history, W window, M memory frames, N = h * w tokens per frame.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from hitchhiker.devices import device_of
from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.interactive.masked_dynamics_model import DynamicsModel
from hitchhiker.world.dataset import LEARNING_WORLD, record

HISTORIES = (16, 128, 512, 2000)
"""Frames of history the cost is measured at."""


def history_walk(frames: int, split: str = "test", episode: int = 0):
    """One real random walk of ``frames`` frames: (frames (1, H, 64, 64, 3), actions (1, H-1))."""
    rec = record(split, episode + 1, frames - 1, "random", LEARNING_WORLD, progress=False)
    return rec.frames[episode : episode + 1], rec.actions[episode : episode + 1]


def _median_ms(step, frames: int) -> float:
    step()  # warm-up: first-call allocations, mask building
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def _memory_ms(engine, tokens: torch.Tensor, actions: np.ndarray, frames: int) -> float:
    """Median ms per imagined frame of a memory engine after the history ``tokens`` (1, H, N)."""
    engine._tokens, engine._actions = engine.window(tokens, torch.as_tensor(actions))
    engine._begin(tokens, np.asarray(actions), None)
    gen = engine._generator()
    rng = np.random.default_rng(0)

    def step():
        a = rng.integers(0, 5, size=1)
        engine._next(a, engine.model_actions(a), gen)

    return _median_ms(step, frames)


@torch.inference_mode()
def retrieval_cost(engine, tokens: torch.Tensor, actions: np.ndarray, frames: int = 8) -> dict:
    """ms per frame and bytes of a memory engine after the history ``tokens`` (1, H, N) and the
    actions between them (1, H-1): {"ms": ..., "bytes": ..., "stored": frames in the bank}."""
    ms = _memory_ms(engine, tokens, actions, frames)
    return {"ms": ms, "bytes": engine.memory_bytes, "stored": len(engine._banks[0])}


@torch.inference_mode()
def state_cost(engine, tokens: torch.Tensor, actions: np.ndarray, frames: int = 8) -> dict:
    """As :func:`retrieval_cost`, for a :class:`~.state_memory_engine.StateMemoryEngine`:
    {"ms": ..., "bytes": the grid's (the same at any H), "written": grid cells ever written}."""
    ms = _memory_ms(engine, tokens, actions, frames)
    written = int((engine._state.last[0] >= 0).sum())
    return {"ms": ms, "bytes": engine.memory_bytes, "written": written}


@torch.inference_mode()
def window_cost(model, tokenizer, cfg, window: int, frames: int = 4) -> dict:
    """ms per frame and bytes of Stage III's engine with its window widened to ``window`` frames,
    on an untrained dynamics model of ``model``'s shape (see the module): {"ms", "bytes"}."""
    wide = dataclasses.replace(cfg, context=window)
    torch.manual_seed(0)
    core = dataclasses.replace(model.cfg, modalities=window + 1)
    net = DynamicsModel(core, cfg.actions, window, model.grid).to(device_of(model)).eval()
    engine = DynamicsEngine(net, tokenizer, cfg=wide)
    n = model.cfg.seq_len
    dev = device_of(model)
    tokens = torch.randint(0, model.cfg.vocab_size, (1, window, n), device=dev)
    acts = torch.zeros(1, window, dtype=torch.long, device=dev)
    gen = engine._generator()
    nxt = torch.zeros(1, dtype=torch.long, device=dev)
    ms = _median_ms(lambda: engine.predict(tokens, acts, nxt, gen), frames)
    return {"ms": ms, "bytes": int(tokens.numel() * tokens.element_size())}
