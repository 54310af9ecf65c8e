"""One small training loop for every stage of the course (MAE, VQ, MaskGIT, dynamics, agents...).

The recipe is the standard one for transformers and friends:

* AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019): weight decay is applied
  to the weights directly, ``w <- w - lr * wd * w``, not through the gradient. Only matrices and
  kernels (tensors with >= 2 dims, including embedding tables) are decayed; biases and norm gains
  (1-D) are not, since shrinking them toward zero fights normalisation instead of regularising.
* Linear warmup, then cosine decay to ``lr * min_lr_ratio`` (Goyal et al. 2017; Loshchilov & Hutter,
  SGDR, 2017), with ``s`` the 0-based step and ``lr_min = lr * min_lr_ratio``::

      lr(s) = lr * (s + 1) / warmup                                   if s < warmup
      lr(s) = lr_min + (lr - lr_min) * (1 + cos(pi * p)) / 2          p = (s - warmup) / (steps - 1 - warmup)

* Gradient clipping by global norm; mixed precision through ``torch.autocast`` (bf16, or fp16 with a
  ``GradScaler``), chosen per device by :func:`hitchhiker.devices.pick_precision`.
* Exact resume: checkpoints hold weights, optimizer, scaler, RNG states and the loss history, and the
  data order is a pure function of the step (:class:`StepBatchSampler`), so an interrupted run that
  resumes ends bit-identical (on CPU, ``num_workers=0``) to one that never stopped.
* DDP: the same function runs under ``torchrun``; each rank takes its slice of the same global batch,
  so N ranks compute the gradient of the same ``batch_size`` samples as one process would.

Data: map-style datasets only (``len`` and ``__getitem__``); a batch is whatever the default collate
makes of B items (a tensor [B, ...], or dicts/tuples of them), moved to the device recursively.
``loss_fn(model, batch)`` must call ``model(...)`` (its forward) so DDP can sync gradients, and returns
a scalar ``loss`` or ``(loss, metrics)`` with a dict of scalar metrics (logged every ``log_every``).
"""

from __future__ import annotations

import math
import os
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler
from tqdm.auto import tqdm

from hitchhiker.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    remove_partial_checkpoints,
    save_checkpoint,
)
from hitchhiker.config import config_to_dict
from hitchhiker.devices import PRECISIONS, pick_device, pick_precision
from hitchhiker.plots import LivePlot, in_notebook


@dataclass
class TrainConfig:
    """Optimisation settings, defined once: every recipe nests one as ``cfg.train`` (its own defaults
    in the field's default factory, its preset rows under ``"train"``); on its own, build one with
    ``make_config(TrainConfig, preset, **overrides)``."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"steps": 12, "batch_size": 8, "warmup_steps": 2, "log_every": 4},
        "cpu": {"steps": 2000, "batch_size": 32, "warmup_steps": 100, "checkpoint_every": 500},
        "gpu": {"steps": 10000, "batch_size": 128, "warmup_steps": 500, "num_workers": 2},
        "large": {"steps": 30000, "batch_size": 256, "warmup_steps": 1000, "num_workers": 4},
    }

    steps: int = 1000
    """Total optimizer steps of the run (a resumed run continues up to this count)."""
    batch_size: int = 64
    """Global batch size per step; under DDP each of the N ranks takes batch_size / N items."""
    lr: float = 3e-4
    """Peak learning rate, reached at the end of warmup."""
    weight_decay: float = 0.05
    """AdamW decoupled weight decay, applied to >= 2-D weights only."""
    warmup_steps: int = 100
    """Steps of linear warmup from lr / warmup_steps to lr (0: start at lr)."""
    min_lr_ratio: float = 0.1
    """Cosine decay ends at lr * min_lr_ratio on the last step."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0: no clipping)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW momentum coefficients (beta1, beta2)."""
    checkpoint_every: int = 500
    """Save a checkpoint every this many steps, plus one at the end (0: only at the end), so a cut
    run (a Colab disconnect) resumes from the last one."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep in run_dir (0: keep all)."""
    log_every: int = 0
    """Update the progress bar, log and live plot every this many steps (0: every quarter of the
    run, at most every 50 steps)."""
    seed: int = 0
    """Seeds torch/numpy/random and the data order (epoch e is shuffled by seed + e)."""
    num_workers: int = 0
    """DataLoader worker processes (0: load in the main process; needed for exact resume)."""
    device: str | None = None
    """Device name ("cpu", "cuda", "cuda:N", "mps"), or None for the best available."""
    precision: str | None = None
    """Precision name ("fp32", "bf16", "fp16"), or None to pick it from the device."""

    def __post_init__(self):
        checks = {
            "steps": self.steps >= 0,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "warmup_steps": self.warmup_steps >= 0,
            "min_lr_ratio": 0 <= self.min_lr_ratio <= 1,
            "grad_clip": self.grad_clip >= 0,
            "betas": len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "checkpoint_every": self.checkpoint_every >= 0,
            "keep_checkpoints": self.keep_checkpoints >= 0,
            "log_every": self.log_every >= 0,
            "num_workers": self.num_workers >= 0,
            "precision": self.precision is None or self.precision in PRECISIONS,
        }
        bad = [f"{k}={getattr(self, k)!r}" for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"invalid TrainConfig values: {', '.join(bad)} (see the field docstrings; "
                f"precision must be one of {PRECISIONS} or None)"
            )


@dataclass
class StepInfo:
    """What a callback sees after each optimizer step (on every rank)."""

    step: int
    """Optimizer steps completed so far (1 after the first step)."""
    loss: torch.Tensor
    """This step's loss on this rank, detached and still on the device (``.item()`` syncs)."""
    metrics: dict[str, Any]
    """The metrics dict that loss_fn returned this step, untouched."""
    lr: float
    """Learning rate used for this step."""
    model: nn.Module
    """The model being trained (unwrapped from DDP)."""
    optimizer: torch.optim.Optimizer
    """The AdamW optimizer."""
    is_main: bool
    """True on rank 0: guard printing, plotting and file writes with it."""


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: nn.Module
    """The trained model (unwrapped from DDP), in eval mode."""
    losses: list[float]
    """Loss of every step of the run, including steps done before a resume."""
    step: int
    """Optimizer steps completed."""
    run_dir: Path | None
    """Where the checkpoints are (None: none were written)."""
    seconds: float
    """Wall-clock time of this call."""
    start_step: int = 0
    """The step this call started from (> 0 after a resume)."""
    log: list[dict[str, float]] = field(default_factory=list)
    """One entry per log point: step, mean loss since the last entry, lr, grad_norm, metrics."""


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of 0-based ``step``: linear warmup, then cosine to ``lr * min_lr_ratio``.

    A warmup as long as the run (a smoke run of a recipe whose warmup suits its full length) is cut
    to ``steps - 1``, so the last step still decays to the minimum."""
    warmup = min(cfg.warmup_steps, max(0, cfg.steps - 1))  # the warmup ends inside the run
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    lr_min = cfg.lr * cfg.min_lr_ratio
    progress = min(1.0, (step - warmup) / max(1, cfg.steps - 1 - warmup))
    return lr_min + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - lr_min)


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups: >= 2-D tensors decay, 1-D ones (biases, norm gains) do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


class StepBatchSampler(Sampler[list[int]]):
    """Dataset indices for steps ``start..stop-1``, a pure function of (seed, step, rank).

    Epoch e is ``randperm(n)`` seeded by ``seed + e``, cut into ``n // batch_size`` global batches
    (the remainder is dropped so every step sees exactly ``batch_size`` items). Under DDP, rank r
    takes items r, r + N, r + 2N, ... of each global batch. Because nothing depends on what ran
    before, a resumed run starting at any step gets exactly the batches it would have got.
    """

    def __init__(self, dataset_size, batch_size, seed=0, start=0, stop=None, rank=0, world_size=1):
        if batch_size % world_size or dataset_size < batch_size or not 0 <= rank < world_size:
            raise ValueError(
                f"need world_size | batch_size <= dataset_size and 0 <= rank < world_size, got "
                f"{batch_size=}, {dataset_size=}, {rank=}, {world_size=}"
            )
        self.n, self.batch_size, self.seed = dataset_size, batch_size, seed
        self.start, self.stop, self.rank, self.world_size = start, stop, rank, world_size
        self.batches_per_epoch = dataset_size // batch_size

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The shuffled dataset indices of ``epoch`` (shape [n])."""
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))

    def __iter__(self):
        step, epoch = self.start, None
        while self.stop is None or step < self.stop:
            if step // self.batches_per_epoch != epoch:  # one shuffle per epoch, not per step
                epoch = step // self.batches_per_epoch
                order = self.epoch_order(epoch)
            pos = step % self.batches_per_epoch
            batch = order[pos * self.batch_size : (pos + 1) * self.batch_size]
            yield batch[self.rank :: self.world_size].tolist()
            step += 1

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("an endless StepBatchSampler (stop=None) has no length")
        return max(0, self.stop - self.start)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside nested dicts/lists/tuples (namedtuples too) to ``device``."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _split_loss(out: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    loss, metrics = out if isinstance(out, tuple) else (out, {})
    if not (torch.is_tensor(loss) and loss.ndim == 0):
        raise TypeError(f"loss_fn must return a scalar tensor or (loss, metrics), got {out!r:.200}")
    if not isinstance(metrics, dict):
        raise TypeError(f"loss_fn's metrics must be a dict, got {type(metrics).__name__}")
    return loss, metrics


def _setup_distributed(prefer: str | None) -> tuple[int, int, torch.device, bool]:
    """(rank, world_size, device, created_group) from torchrun's environment variables."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(prefer)
    if world <= 1:
        return 0, 1, device, False
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return rank, world, device, False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device, True


# Fields that may change between a run and its resume without changing the maths.
_HARMLESS = {"steps", "checkpoint_every", "keep_checkpoints", "log_every", "num_workers", "device"}


def _resume(run_dir, model, optimizer, scaler, cfg, rank, world) -> tuple[int, list, list]:
    """Load the newest checkpoint of ``run_dir`` if any; return (step, losses, log)."""
    if run_dir is None:
        return 0, [], []
    if rank == 0:
        remove_partial_checkpoints(run_dir)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        return 0, [], []
    state = load_checkpoint(ckpt, model, optimizer, scaler, restore_rng=rank == 0)
    step = state["step"]
    if rank > 0:  # only rank 0's RNG is in the checkpoint: give the others fresh streams
        seed_everything(cfg.seed + rank + world * step)
    saved, now = state["config"], config_to_dict(cfg)
    changed = {
        k: (v, saved.get(k)) for k, v in now.items() if k not in _HARMLESS and saved.get(k) != v
    }
    if changed and rank == 0:
        warnings.warn(
            f"resuming {ckpt} with changed settings (now, saved): {changed}", stacklevel=3
        )
    return step, state["extra"]["losses"], state["extra"]["log"]


def _gather(pending: list[torch.Tensor], world: int) -> list[float]:
    """Per-step losses as floats (one GPU sync), averaged over ranks: the global-batch loss."""
    values = torch.stack(pending)
    if world > 1:
        dist.all_reduce(values)
        values /= world
    pending.clear()
    return values.tolist()


def train(
    model: nn.Module,
    dataset: Dataset,
    loss_fn: Callable[[nn.Module, Any], Any],
    cfg: TrainConfig,
    run_dir: str | Path | None = None,
    *,
    callbacks: tuple[Callable[[StepInfo], None], ...] = (),
    progress: bool = True,
    live_plot: bool | LivePlot | None = None,
) -> TrainResult:
    """Train ``model`` (in place) to ``cfg.steps`` steps, resuming from ``run_dir``'s checkpoint.

    ``live_plot``: None shows a loss curve only inside Jupyter, True/False force it, or pass a
    :class:`LivePlot`. Only rank 0 shows progress, plots and writes checkpoints.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        raise TypeError(f"train() needs a map-style dataset (len, getitem), got {type(dataset)}")
    started = time.perf_counter()
    run_dir = Path(run_dir) if run_dir is not None else None
    rank, world, device, owns_group = _setup_distributed(cfg.device)
    main = rank == 0
    try:
        # --- the model, optimizer and (for fp16) loss scaler, restored from a checkpoint if any
        precision = pick_precision(device, cfg.precision)
        seed_everything(cfg.seed + rank)  # + rank: each rank draws its own dropout masks, noise
        model.to(device).train()
        groups = weight_decay_groups(model, cfg.weight_decay)
        optimizer = torch.optim.AdamW(groups, cfg.lr, cfg.betas, fused=device.type == "cuda")
        scaler = torch.amp.GradScaler(device.type, enabled=precision.grad_scaling)
        step, losses, log = _resume(run_dir, model, optimizer, scaler, cfg, rank, world)
        start_step = step
        net = model  # what loss_fn calls: under DDP, the wrapper that all-reduces gradients
        if world > 1:
            ids = [device.index] if device.type == "cuda" else None
            net = DistributedDataParallel(model, device_ids=ids)

        # --- data: batches for steps start_step..steps-1, whatever ran before
        sampler = StepBatchSampler(
            len(dataset),
            cfg.batch_size,
            cfg.seed,
            start=step,
            stop=cfg.steps,
            rank=rank,
            world_size=world,
        )
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=cfg.num_workers,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.seed),  # leaves the global RNG alone
        )
        if not isinstance(live_plot, LivePlot):
            live_plot = LivePlot(
                enabled=main and (in_notebook() if live_plot is None else live_plot)
            )

        log_every = cfg.log_every or max(1, min(50, cfg.steps // 4))
        pending: list[torch.Tensor] = []  # losses kept on the device: no GPU sync every step
        bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and main), desc="train")
        with bar:
            for batch in loader:
                # --- one optimizer step
                lr = lr_at(step, cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = to_device(batch, device)
                with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.autocast):
                    loss, metrics = _split_loss(loss_fn(net, batch))
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)  # clip (and report) the true gradient norm
                max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
                grad_norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                scaler.step(optimizer)  # the scaler skips the step if fp16 gradients overflowed
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                bar.update()
                pending.append(loss.detach().float())

                # --- bookkeeping: loss history, log, plot, checkpoint, callbacks
                at_end = step == cfg.steps
                log_due = step % log_every == 0 or at_end
                ckpt_due = at_end or (cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0)
                if log_due or ckpt_due:
                    new = _gather(pending, world)
                    if not precision.grad_scaling and not all(map(math.isfinite, new)):
                        raise FloatingPointError(f"loss became {new} by step {step}: lower lr?")
                    losses += new
                if log_due:
                    since = log[-1]["step"] if log else 0
                    entry = {"step": step, "loss": float(np.mean(losses[since:])), "lr": lr}
                    entry["grad_norm"] = float(grad_norm)
                    entry.update(
                        {k: float(torch.as_tensor(v).detach()) for k, v in metrics.items()}
                    )
                    log.append(entry)
                    bar.set_postfix(loss=f"{entry['loss']:.4f}", lr=f"{lr:.2e}", refresh=False)
                    live_plot.update(losses, force=at_end)
                if ckpt_due and run_dir is not None:
                    if main:
                        extra, keep = {"losses": losses, "log": log}, cfg.keep_checkpoints or None
                        config = config_to_dict(cfg)
                        save_checkpoint(
                            run_dir, step, model, optimizer, scaler, extra, config, keep
                        )
                    if world > 1:
                        dist.barrier()  # the other ranks wait until the checkpoint is on disk
                info = StepInfo(step, loss.detach(), metrics, lr, model, optimizer, main)
                for callback in callbacks:
                    callback(info)
        model.eval()
        seconds = time.perf_counter() - started
        return TrainResult(model, losses, step, run_dir, seconds, start_step, log)
    finally:
        if owns_group:
            dist.destroy_process_group()
