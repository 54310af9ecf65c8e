"""Recipe "window16": the longer plain window, the control a memory has to beat.

The obvious way to remember more is to look further back: give Stage III's masked dynamics model a
window of W' = 16 frames instead of W = 4, and attend to all of them. Nothing is retrieved and
nothing is kept beyond the window, so whatever left it is gone, and the price is paid every frame:
attention over (W' + 1) N tokens, where a memory adds M N (:mod:`.cost` times both).

The model is the Stage III dynamics model itself (:class:`~hitchhiker.interactive.
masked_dynamics_model.DynamicsModel`) with W' + 1 frame-time slots. It starts from the shipped
W-frame weights (:func:`widen`: the newest W + 1 slots keep their learned embeddings, the older
ones start as the oldest of them) and is fine-tuned with Stage III's loss on the memory's walks,
its loops coming back every ``loop_period`` <= W' steps so that every way back lies in its window.
Measured: it does not learn to read past its first W frames (at K = 16 it scores as the W-frame
engine). A frame k steps back shows the land shifted by k moves, and nothing tells the window by
how much; a memory is told (the pose offset) and shifts its frames into place before it reads.

It is scored on the revisit benchmark like the memories, on the same cells: "beyond the window"
means beyond Stage III's W-frame window, so that the rows read side by side. A way back longer
than W' steps cannot be carried by it: K = 128 and 256 are not measured.

Shapes: B batch, F = W' + 1 frames per training window, N tokens per frame, D width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from hitchhiker.interactive import masked_dynamics_recipe as dynamics
from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.interactive.masked_dynamics_model import DynamicsModel
from hitchhiker.interactive.masked_dynamics_recipe import (
    WindowDataset,
    dynamics_loss,
    loss_settings,
    model_actions,
    train_windows,
)
from hitchhiker.memory import memory_recipe
from hitchhiker.memory.memory_recipe import BASE_FIELDS, walk_tokens
from hitchhiker.recipe import Deps
from hitchhiker.train import TrainConfig

needs = memory_recipe.needs


@dataclass
class Config(memory_recipe.Config):
    """Stage III's dynamics model with a W' = ``context``-frame window, fine-tuned from the W-frame
    one on the memory's walks (recipe "window16"); evaluated as the memories are.

    Its width, actions and decoding are bound from the dynamics model it starts from; the window
    is its own. (The memory's bank settings it inherits are unused: it has no memory.)"""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "tokenizer": "oracle",
            "context": 6,
            "loop_period": 6,
            "eval_horizon": 16,
            "val_episodes": 2,
            "revisit_walks": 2,
            "data": {"episodes": 4, "episode_steps": 24, "eval_episodes": 2},
            "train": {"steps": 6, "batch_size": 4, "warmup_steps": 2, "checkpoint_every": 0},
        },
        "cpu": {},
        "gpu": {"data": {"episodes": 1024}, "train": {"steps": 2000, "batch_size": 32}},
        "large": {"data": {"episodes": 2048}, "train": {"steps": 4000, "batch_size": 64}},
    }

    name: str = "window16"
    """Model name: figures read "stage4.<name>.<figure>"."""
    context: int = 16
    """W': frames the model sees before the one it predicts (Stage III's engine sees 4)."""
    way_back_periods: tuple[int, ...] = ()
    """No longer K: a way back of more than W' steps shows nothing the window still holds."""
    loop_period: int = 16
    """The training ``loop`` walks come back every this many steps, so that every step of every
    way back reads a frame the W'-frame window still holds (the memory's walks come back every
    32: half of each way back lies beyond 16 frames, and there the window can learn nothing)."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=500, batch_size=16, lr=3e-4, warmup_steps=20, checkpoint_every=100
        )
    )
    """Fine-tuning from the W-frame weights: windows per step (each F frames), learning rate."""

    def __post_init__(self):
        super().__post_init__()
        if not 2 <= self.loop_period <= self.context:
            raise ValueError(
                f"loop_period must lie in [2, context = {self.context}] (a way back longer than "
                f"the window shows it nothing it still holds); got {self.loop_period}"
            )


def bind(values: dict[str, Any], deps: Deps) -> dict[str, Any]:
    """The dynamics model's width, actions and decoding; the window stays this recipe's own."""
    base = deps["dynamics"].shipped_config
    if values["context"] <= base.context:
        raise ValueError(
            f"a longer window must be longer than the dynamics model's {base.context} frames; "
            f"got context={values['context']}"
        )
    return {k: getattr(base, k) for k in BASE_FIELDS if k != "context"}


def build(cfg: Config) -> DynamicsModel:
    """The W'-frame dynamics model of a bound config (weights to be loaded or widened)."""
    return dynamics.build(cfg)


def widen(model: DynamicsModel, start: DynamicsModel) -> DynamicsModel:
    """Load the W-frame model ``start`` into the W'-frame ``model``: every weight but the frame-time
    table is the same shape; of that table, slot W' (the predicted frame) and the W before it take
    ``start``'s slots W..0, and the older slots start as ``start``'s oldest (slot 0)."""
    own = start.state_dict()
    table = own.pop("modality.weight")
    missing, unexpected = model.load_state_dict(own, strict=False)
    if unexpected or missing != ["modality.weight"]:
        raise ValueError(
            f"the dynamics model does not match the window model's shape: missing {missing}, "
            f"unexpected {unexpected}"
        )
    old, new = start.context, model.context
    with torch.no_grad():
        slots = (torch.arange(new + 1) - (new - old)).clamp_min(0)  # new slot -> start's slot
        model.modality.weight.copy_(table[slots])
    return model


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> DynamicsModel:
    """Start from the dynamics model, fine-tune the wide window on the memory's walks (its loops
    coming back every ``loop_period`` steps)."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the window model")
    tokens, world_actions, _ = walk_tokens(
        cfg, "train", cfg.data.episodes, tokenizer, period=cfg.loop_period
    )
    actions = model_actions(cfg, tokens, world_actions, deps)
    data = WindowDataset(tokens, actions, cfg.context, cfg.pad_action)
    model = widen(build(cfg), deps["dynamics"])
    kw = loss_settings(cfg)
    return train_windows(
        model, data, lambda m, b: dynamics_loss(m, b, **kw), cfg, run_dir, progress
    )


def evaluate(model: DynamicsModel, cfg: Config, deps: Deps) -> dict[str, float]:
    """The memories' revisit figures (:func:`~.memory_recipe.revisit_figures`) of the wide-window
    engine, ``stage4.<name>.plain_window.<set>.<figure>``, its cells "beyond the window" those that
    left Stage III's W-frame window (the memories' rows read the same cells)."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the window model")
    model.eval()

    def engine_for(**_):
        return DynamicsEngine(model, tokenizer, seed=cfg.train.seed, cfg=cfg)

    window = deps["dynamics"].shipped_config.context
    controls = (("plain_window", {}, False),)
    return memory_recipe.revisit_figures(cfg, engine_for, controls, window=window)
