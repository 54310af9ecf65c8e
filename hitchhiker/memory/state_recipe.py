"""Recipes "state_memory" and "state_memory_screen": teach the dynamics model to keep a latent grid.

The model (:mod:`.state_memory_model`) is the shipped masked dynamics model plus a latent grid
(:mod:`.latent_grid`): a fixed S x S state of D_s-vectors, aligned with the world (or, for the
ablation "state_memory_screen", with the screen), updated once per frame by a gated recurrence.
It starts from the dynamics weights and is fine-tuned on the retrieval memory's data (:func:`~.
memory_recipe.walk_tokens`: walks that come back, ``loop``, and walks that wander, ``random``).

Unlike a retrieval memory, the state is not a copy of what was seen: it is what the recurrence
made of it, so the recurrence must be learned, and the gradient must reach it through every update
between a write and the read that needs it (backpropagation through the scan). A training item is
therefore a whole walk (frames 0..T). For each batch of B walks, ``targets`` steps j are drawn
(W <= j < T); the grids are scanned from empty over the walk, teacher-forced on the real tokens
(lightly corrupted, ``memory_noise``): at step j the frame j - W leaves the window of target j + 1
and is written with its true pose (the explorer's cell left out), exactly as the engine writes,
so the window and the memory never hold the same frame. At each drawn j the grid is read for the
view the action leads to (the pose of frame j plus the action's move), and that read is the memory
of Stage III's masked loss on the window whose target is frame j + 1 (:func:`~.memory_recipe.
memory_loss`'s settings: window noise, last-slot weight). One step trains on B x ``targets``
windows and one scan of max(j) + 1 updates.

Shapes: B walks, T steps (T + 1 frames), W window, h x w token grid, N = h * w, S grid side,
D_s state channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

from hitchhiker.interactive.masked_dynamics_recipe import (
    WindowDataset,
    core_config,
    corrupt_context,
    corrupted_windows,
    grid_of,
    loss_settings,
    masked_frames_loss,
    model_actions,
    train_windows,
)
from hitchhiker.memory import memory_recipe
from hitchhiker.memory.latent_grid import ALIGNMENTS
from hitchhiker.memory.memory_engine import explorer_cell
from hitchhiker.memory.memory_recipe import bind, needs, walk_tokens
from hitchhiker.memory.pose import ACTION_DELTAS
from hitchhiker.memory.state_memory_engine import StateMemoryEngine
from hitchhiker.memory.state_memory_model import StateMemoryModel, StateRead
from hitchhiker.recipe import Deps
from hitchhiker.train import TrainConfig

__all__ = ["Config", "VARIANTS", "bind", "build", "evaluate", "fit", "needs", "state_loss"]


class WalkDataset(Dataset):
    """Whole recorded walks. Item: {"tokens": (T+1, h, w), "actions": (T,) the model's actions,
    "world_actions": (T,), "positions": (T+1, 2)}."""

    def __init__(self, tokens, actions, world_actions, positions):
        self.tokens = torch.as_tensor(tokens).long()
        self.actions = torch.as_tensor(actions).long()
        self.world_actions = torch.as_tensor(world_actions).long()
        self.positions = torch.as_tensor(positions).long()
        e, t1 = self.tokens.shape[:2]
        want = {"actions": (e, t1 - 1), "world_actions": (e, t1 - 1), "positions": (e, t1, 2)}
        for name, shape in want.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(
                    f"{name} must be {shape} for {e} walks of {t1} frames; "
                    f"got {tuple(getattr(self, name).shape)}"
                )

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        keys = ("tokens", "actions", "world_actions", "positions")
        return {k: getattr(self, k)[i] for k in keys}


def scan_reads(net: StateMemoryModel, tokens, positions, world_actions, steps) -> StateRead:
    """Scan B walks' grids from empty and read them at the drawn ``steps`` (sorted ints).

    ``tokens`` (B, T+1, N) as written, ``positions`` (B, T+1, 2), ``world_actions`` (B, T). At step
    j, frame j - W is written (it left the window of target j + 1); at a drawn j, the grid is read
    for the view the action leads to. Returns the reads, step after step along the batch
    (len(steps) B): differentiable through every write."""
    b, w = tokens.shape[0], net.context
    dev = tokens.device
    deltas = torch.tensor(ACTION_DELTAS, device=dev)
    keep = ~torch.as_tensor(explorer_cell(net.grid), device=dev).flatten().expand(b, -1)
    mem, reads, wanted = net.empty(b), [], set(steps)
    for j in range(max(steps) + 1):
        if j >= w:
            mem = net.mem_grid.write(mem, tokens[:, j - w], positions[:, j - w], j - w, keep)
        if j in wanted:
            target = positions[:, j] + deltas[world_actions[:, j]]
            reads.append(net.recall(mem, target, j + 1))
    return StateRead.cat(reads)


def state_loss(
    model,
    batch,
    targets=4,
    memory_noise=0.0,
    context_noise=0.0,
    pad_prob=0.0,
    pad_action=0,
    schedule="cosine",
    explorer_weight=1.0,
    last_weight=1.0,
):
    """Stage III's MaskGIT loss on ``targets`` windows per walk, each reading the grid scanned
    over the walk up to it: (loss, metrics). "memory_acc" is the accuracy on the hidden cells of
    the last slot that the grid has written."""
    net = getattr(model, "module", model)
    tokens = batch["tokens"].flatten(2)  # (B, T+1, N)
    b, t1, _ = tokens.shape
    t, w = t1 - 1, net.context
    if t <= w:
        raise ValueError(f"walks must be longer than the window ({w} frames); got {t} steps")
    steps = sorted((torch.randperm(t - w)[:targets] + w).tolist())
    seen = corrupt_context(  # corrupt_context spares the last frame: a copy of the first rides
        torch.cat([tokens, tokens[:, :1]], 1), memory_noise, net.cfg.vocab_size
    )[:, :-1]
    memory = scan_reads(net, seen, batch["positions"], batch["world_actions"], steps)
    windows = WindowDataset(batch["tokens"], batch["actions"], w, pad_action)
    items = [windows[e * t + j] for j in steps for e in range(b)]  # in the reads' order
    win = {k: torch.stack([it[k] for it in items]) for k in ("tokens", "actions")}
    toks, context, actions = corrupted_windows(net, win, context_noise, pad_prob, pad_action)
    loss, right, hide = masked_frames_loss(
        model, net, toks, context, actions, schedule, explorer_weight, last_weight, memory=memory
    )
    covered = memory.written & hide[:, -1]
    return loss, {
        "masked_acc": right[hide].float().mean().detach(),
        "memory_acc": right[:, -1][covered].float().mean().detach(),
    }


@dataclass
class Config(memory_recipe.Config):
    """The dynamics model of Stage III, fine-tuned to keep and read a latent grid (recipes
    "state_memory" and, screen-aligned, "state_memory_screen").

    Its shape and play are bound from the dynamics model it starts from, its data and evaluation
    are the retrieval memory's (:class:`~.memory_recipe.Config`); ``batch_size`` counts walks."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "tokenizer": "oracle",
            "eval_horizon": 16,
            "val_episodes": 2,
            "revisit_walks": 2,
            "grid_size": 32,
            "state_channels": 8,
            "targets": 2,
            "data": {"episodes": 4, "episode_steps": 24, "eval_episodes": 2},
            "train": {"steps": 6, "batch_size": 4, "warmup_steps": 2, "checkpoint_every": 0},
        },
        "cpu": {},
        "gpu": {"data": {"episodes": 1024}, "train": {"steps": 4000, "batch_size": 32}},
        "large": {"data": {"episodes": 2048}, "train": {"steps": 8000, "batch_size": 64}},
    }

    name: str = "state_memory"
    """Model name: figures read "stage4.<name>.<figure>"."""
    aligned: str = "world"
    """"world": the grid's cells follow the map (shifted by the explorer's moves); "screen": they
    follow the view, the pose unused (the ablation, Po et al.'s block-wise layout)."""
    grid_size: int = 64
    """S: the grid's side in cells; places S cells apart share a cell (the later one wins)."""
    state_channels: int = 32
    """D_s: channels of a latent cell."""
    targets: int = 4
    """Windows trained per walk and step, at distinct steps of the walk's scan."""
    memory_frames: int = 1
    """The grid is read as one memory frame (fixed: the engine's check against the model)."""
    way_back_periods: tuple[int, ...] = (128, 256)
    """Evaluation, condition (i) only: longer K, where a memory that does not grow must hold."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=600, batch_size=8, lr=5e-4, warmup_steps=30)
    )
    """Fine-tuning from the dynamics weights: walks per step (each ``targets`` windows), lr."""

    def __post_init__(self):
        super().__post_init__()
        if self.aligned not in ALIGNMENTS:
            raise ValueError(f"aligned must be one of {ALIGNMENTS}; got {self.aligned!r}")
        side = max(self.tokens.grid_h, self.tokens.grid_w)
        if self.grid_size < side:
            raise ValueError(
                f"grid_size must be >= the view's side {side} (else a view would overwrite "
                f"itself); got {self.grid_size}"
            )
        if self.state_channels < 1 or self.targets < 1:
            raise ValueError(
                f"state_channels and targets must be >= 1; got {self.state_channels}, "
                f"{self.targets}"
            )
        if self.memory_frames != 1:
            raise ValueError(f"the grid is read as one memory frame; got {self.memory_frames}")
        if self.data.episode_steps <= self.context:
            raise ValueError(
                f"walks must be longer than the window ({self.context} frames) for anything to "
                f"leave it; got episode_steps={self.data.episode_steps}"
            )


VARIANTS: dict[str, dict[str, Any]] = {
    "screen": {
        "aligned": "screen",
        "name": "state_memory_screen",
        "revisit_periods": (64,),
        "way_back_periods": (),
    },
}
"""Config overrides of the zoo's "state_memory_screen": the same grid, indexed by screen cell,
evaluated at K = 64 only (an ablation: what the pose buys, read beside the world-aligned grid)."""


def build(cfg: Config) -> StateMemoryModel:
    """The state memory model of a bound config (grid and reader fresh, the rest to be loaded)."""
    torch.manual_seed(cfg.train.seed)
    return StateMemoryModel(
        core_config(cfg),
        cfg.actions,
        cfg.context,
        grid_of(cfg),
        cfg.grid_size,
        cfg.state_channels,
        cfg.aligned,
        oldest_age=memory_recipe.oldest_age(cfg),
    )


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> StateMemoryModel:
    """Start from the dynamics model, record walks, fine-tune through the grid's scan."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the state memory model")
    tokens, world_actions, positions = walk_tokens(cfg, "train", cfg.data.episodes, tokenizer)
    actions = model_actions(cfg, tokens, world_actions, deps)
    data = WalkDataset(tokens, actions, world_actions, positions)
    model = build(cfg).start_from(deps["dynamics"])
    kw = {
        **loss_settings(cfg),
        "context_noise": cfg.window_noise,
        "memory_noise": cfg.memory_noise,
        "last_weight": cfg.last_weight,
        "targets": cfg.targets,
    }
    return train_windows(model, data, lambda m, b: state_loss(m, b, **kw), cfg, run_dir, progress)


def evaluate(model: StateMemoryModel, cfg: Config, deps: Deps) -> dict[str, float]:
    """The retrieval memory's revisit figures (:func:`~.memory_recipe.evaluate`) of the state
    memory engine, true and estimated pose (the memory-less engine is measured there), named
    ``stage4.<name>.<condition>.k<K>.<figure>``: condition (i) for K in ``revisit_periods`` and
    ``way_back_periods``, condition (ii) for K in ``revisit_periods``, and at the longest of those
    also on walks that change the world on the way out (``k<K>_edits``)."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the state memory model")
    model.eval()

    def engine_for(**kw):
        return StateMemoryEngine(model, tokenizer, seed=cfg.train.seed, cfg=cfg, **kw)

    return memory_recipe.revisit_figures(cfg, engine_for, memory_recipe.POSES)
