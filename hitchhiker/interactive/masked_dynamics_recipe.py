"""Masked dynamics (Genie, MineWorld): the next frame's tokens from the last frames and an action.

Bruce et al., "Genie: Generative Interactive Environments" (ICML 2024); Guo et al., "MineWorld"
(2025). The Stage I tokenizer turns each 64x64 frame into an h x w grid of codes; this model reads
the tokens of the last W frames plus the (hidden) tokens of the next one and fills the hidden ones
in, MaskGIT style, conditioned on the action that leads to that frame:

    p(z[t+1] | z[t-W+1..t], a[t-W+1..t])        z: a frame's N = h * w tokens,  a: an action

The model (:mod:`.masked_dynamics_model`) reads one sequence of F = W + 1 frames, each token embedded
with its cell, its frame slot and the action that led to its frame, under *block-causal* attention
(bidirectional within a frame, causal across frames). This module is its data, objective and
recipe.

Training is MaskGIT's objective, with every frame of the window a target (Genie trains all frames
at once too) but, unlike Genie, always predicted from *clean* frames, as in play. One pass holds two
streams: the clean frames in slots 0..F-2, and a copy of slots 1..F-1 in which each frame hides
gamma(u) N of its tokens (cosine schedule, u ~ U(0, 1)); a hidden frame attends to the clean frames
before it and to itself. For slot F-1 this is exactly the engine's computation, and the window gives
F-1 targets for the price of 2F-2 frames instead of one target for F frames:

    loss = - mean over hidden i of log p(z[j]_i | visible z[j], z[<j], a[<=j]),  j = 1..F-1

Two augmentations make training look like play. *Context noise*, the token analogue of GameNGen's
noise augmentation: each context token is replaced by a random code with probability
p ~ U(0, context_noise), drawn per window, so the model learns to repair the slightly wrong frames
it will feed itself during a rollout instead of copying their mistakes forward (drift). *Short
contexts*: a reset starts from ONE real frame, so some windows repeat their first kept frame with
the padding action in the leading slots, exactly as the engine pads.

Shapes: B batch, F = W + 1 frames per window, h x w token grid, N = h * w tokens per frame,
V codebook size, A actions (+ 1 "none"), D model width, E episodes, T steps per episode.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from hitchhiker.devices import device_of
from hitchhiker.interactive.latent_action_model import infer_tokens
from hitchhiker.interactive.latent_action_recipe import code_for_action
from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.interactive.masked_dynamics_model import DynamicsModel
from hitchhiker.interactive.rollout import evaluate_engine, teacher_forced_frames
from hitchhiker.interactive.truth import truth_set
from hitchhiker.masks.core import CoreConfig
from hitchhiker.masks.maskgit import random_mask
from hitchhiker.masks.maskgit_recipe import core_config as token_core_config
from hitchhiker.recipe import Deps, Need
from hitchhiker.tokens import (
    TokenGrid,
    check_tokenizer,
    encode_frames,
    same_tokens_need,
    tokenizer_needs,
)
from hitchhiker.train import TrainConfig, train
from hitchhiker.world import ACTION_NAMES, Action, read_tiles
from hitchhiker.world.dataset import LEARNING_WORLD, DataConfig, record

ACTION_SOURCES = ("true", "latent")


# ----------------------------------------------------------------------------- data


class WindowDataset(Dataset):
    """Windows of F = W + 1 consecutive frames of recorded episodes, in tokens.

    Item: {"tokens": (F, h, w), "actions": (F,)}: the target frame j = 1..T and the W frames
    before it; before the start of an episode the first frame repeats with ``pad_action``.
    """

    def __init__(self, tokens: torch.Tensor, actions: torch.Tensor, context: int, pad_action: int):
        e, t1 = tokens.shape[:2]
        if actions.shape != (e, t1 - 1):
            raise ValueError(f"actions must be (E, T) = {(e, t1 - 1)}; got {tuple(actions.shape)}")
        self.tokens, self.actions, self.context = tokens, actions.long(), context
        self.pad_action, self.steps = pad_action, t1 - 1

    def __len__(self) -> int:
        return len(self.tokens) * self.steps

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        e, j = divmod(i, self.steps)
        raw = torch.arange(j + 1 - self.context, j + 2)  # frame indices of the slots
        frames = raw.clamp_min(0)
        acts = self.actions[e, (raw - 1).clamp_min(0)]
        acts = torch.where(raw >= 1, acts, torch.full_like(acts, self.pad_action))
        acts[0] = -1  # "none": replaced by the model's none index in the loss
        return {"tokens": self.tokens[e, frames], "actions": acts}


def pad_windows(tokens, actions, pad_action: int, prob: float, generator=None):
    """Shorten a share ``prob`` of contexts: the first k slots repeat slot k (k in 1..W-1) with
    ``pad_action``, as after a reset. tokens (B, F, N), actions (B, F)."""
    b, f = actions.shape
    if prob <= 0 or f < 3:
        return tokens, actions
    dev = tokens.device
    k = torch.randint(1, f - 1, (b,), device=dev, generator=generator)
    k = torch.where(torch.rand(b, device=dev, generator=generator) < prob, k, 0)
    slots = torch.arange(f, device=dev)
    src = torch.maximum(slots[None], k[:, None])  # (B, F)
    tokens = tokens.gather(1, src[..., None].expand_as(tokens))
    padded = (slots[None] <= k[:, None]) & (slots[None] > 0)
    return tokens, torch.where(padded, torch.full_like(actions, pad_action), actions)


def corrupt_context(tokens, level: float, vocab: int, generator=None):
    """Replace each context token (all but the last frame) by a random code with probability
    p ~ U(0, level), one p per window: the token analogue of GameNGen's noise augmentation."""
    if level <= 0:
        return tokens
    b, f, n = tokens.shape
    dev = tokens.device
    p = torch.rand(b, 1, 1, device=dev, generator=generator) * level
    hit = torch.rand(b, f - 1, n, device=dev, generator=generator) < p
    noise = torch.randint(0, vocab, (b, f - 1, n), device=dev, generator=generator)
    ctx = torch.where(hit, noise, tokens[:, :-1])
    return torch.cat([ctx, tokens[:, -1:]], 1)


def corrupted_windows(net, batch, context_noise=0.0, pad_prob=0.0, pad_action=0):
    """(tokens (B, F, N), corrupted context (B, F, N), actions (B, F)) of a batch of windows:
    padded at random (``pad_prob``), the context frames noised (``context_noise``)."""
    tokens = batch["tokens"].flatten(2)  # (B, F, N)
    actions = batch["actions"].clone()
    actions[:, 0] = net.none_action
    tokens, actions = pad_windows(tokens, actions, pad_action, pad_prob)
    return tokens, corrupt_context(tokens, context_noise, net.cfg.vocab_size), actions


def masked_frames_loss(
    model,
    net,
    tokens,
    context,
    actions,
    schedule="cosine",
    explorer_weight=1.0,
    last_weight=1.0,
    **model_kwargs,
):
    """MaskGIT cross-entropy on the hidden tokens of the F-1 target frames: (loss, right, hide),
    ``right`` (B, F-1, N) where the argmax is the target, ``hide`` the hidden positions.

    The explorer's cell weighs ``explorer_weight``, the last target slot ``last_weight``;
    ``model_kwargs`` go to the model (Stage IV's memory)."""
    b, f, n = tokens.shape
    target = tokens[:, 1:]
    hide = random_mask(b * (f - 1), n, schedule, device=tokens.device).view(b, f - 1, n)
    logits = model(context, actions, hide=hide, targets=target, **model_kwargs)
    centre = (net.grid[0] // 2) * net.grid[1] + net.grid[1] // 2
    weight = torch.ones(f - 1, n, device=tokens.device)
    weight[:, centre] = explorer_weight
    weight[-1] *= last_weight
    w = weight.expand_as(hide)[hide]
    nll = F.cross_entropy(logits[hide].float(), target[hide], reduction="none")
    return (nll * w).sum() / w.sum(), logits.argmax(-1) == target, hide


def dynamics_loss(
    model,
    batch,
    context_noise=0.0,
    pad_prob=0.0,
    pad_action=0,
    schedule="cosine",
    explorer_weight=1.0,
):
    """MaskGIT cross-entropy on the hidden tokens of every frame after the first: (loss, metrics).

    Each of the F-1 target frames hides its own gamma(u) share (cosine schedule) and is predicted
    from the (corrupted) clean frames before it, all in one teacher-forced pass. The explorer's
    cell (the view's centre) weighs ``explorer_weight`` times a land cell: it is where the action
    shows (the explorer turns to face it), and at weight 1 it is one cell in N, learned last.
    """
    net = getattr(model, "module", model)  # the DDP wrapper hides the attributes
    tokens, context, actions = corrupted_windows(net, batch, context_noise, pad_prob, pad_action)
    loss, right, hide = masked_frames_loss(
        model, net, tokens, context, actions, schedule, explorer_weight
    )
    centre = (net.grid[0] // 2) * net.grid[1] + net.grid[1] // 2
    return loss, {
        "masked_acc": right[hide].float().mean().detach(),
        "explorer_acc": right[..., centre][hide[..., centre]].float().mean().detach(),
    }


def loss_settings(cfg) -> dict[str, Any]:
    """The keyword settings of :func:`dynamics_loss` a config trains with."""
    return {
        "context_noise": cfg.context_noise,
        "pad_prob": cfg.pad_prob,
        "pad_action": cfg.pad_action,
        "schedule": cfg.mask_schedule,
        "explorer_weight": cfg.explorer_weight,
    }


def train_windows(model, data, loss_fn, cfg, run_dir=None, progress: bool = True):
    """Train ``model`` on ``data`` with ``loss_fn`` under ``cfg.train``; the model keeps its loss
    history, training time and log."""
    result = train(model, data, loss_fn, cfg.train, run_dir, progress=progress)
    model.losses = result.losses
    model.train_seconds, model.log = result.seconds, result.log
    return result.model


# ----------------------------------------------------------------------------- the recipe


@dataclass
class Config:
    """Masked dynamics on world tokens (recipes "dynamics", "dynamics_noaug", "dynamics_latent",
    "dynamics_walls")."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "tokenizer": "oracle",
            "dim": 32,
            "depth": 1,
            "heads": 2,
            "eval_horizon": 16,
            "val_episodes": 2,
            "data": {"episodes": 6, "episode_steps": 16, "eval_episodes": 2},
            "train": {"steps": 30, "batch_size": 16, "warmup_steps": 3, "checkpoint_every": 0},
        },
        "cpu": {},
        "gpu": {
            "dim": 256,
            "depth": 8,
            "heads": 8,
            "data": {"episodes": 1024},
            "train": {"steps": 20000, "lr": 1e-3},
        },
        "large": {
            "dim": 384,
            "depth": 12,
            "heads": 8,
            "data": {"episodes": 2048},
            "train": {"steps": 40000, "lr": 6e-4},
        },
    }
    RENAMED: ClassVar[dict[str, str | None]] = {"tokenizer_sha256": "tokens.sha256"}
    """Where the fields of files stored before the configs were nested went (``migrate_flat``)."""

    name: str = "dynamics"
    """Model name: figures read "stage3.<name>.<figure>" (each variant sets its own)."""
    tokenizer: str = "shipped"
    """Which tokenizer: "shipped", "oracle" (ground-truth stand-in) or a preset to train one at."""
    tokens: TokenGrid = field(default_factory=TokenGrid)
    """The tokenizer's vocabulary and grid, bound by the zoo from the tokenizer it hands in."""
    action_source: str = "true"
    """"true": condition on the world's actions; "latent": on the shipped LAM's latent codes."""
    actions: int = 0
    """Action vocabulary A (6 true actions, or the LAM's codes), bound by the zoo (:func:`bind`)."""
    action_codes: tuple[int, ...] = ()
    """Model action index of each true action (identity, or the LAM code mapped to it)."""
    pad_action: int = 0
    """Model action that pads a short context (true: noop; latent: the LAM's code for no change)."""
    context: int = 3
    """Context window W: frames the model sees before the one it predicts."""
    dim: int = 96
    """Transformer width D."""
    depth: int = 3
    """Transformer blocks."""
    heads: int = 4
    """Attention heads."""
    dropout: float = 0.0
    """Dropout in attention and MLP while training."""
    context_noise: float = 0.1
    """Largest share of context tokens replaced by random codes (per window, p ~ U(0, this))."""
    pad_prob: float = 0.1
    """Share of training windows whose context is shortened by repeating its first frame."""
    explorer_weight: float = 8.0
    """Loss weight of the explorer's cell (the view's centre, where the action shows) vs land."""
    mask_schedule: str = "cosine"
    """Training mask schedule gamma (see hitchhiker.masks.maskgit.SCHEDULES)."""
    data: DataConfig = field(
        default_factory=lambda: DataConfig(episodes=256, episode_steps=32, eval_episodes=64)
    )
    """Recorded play: training episodes, and the held-out (test) episodes of the figures (64, each
    figure with its 95% interval: about 1 to 3 points for the headline accuracies, wider for the
    tile error of long rollouts, whose worlds diverge each their own way)."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=800, batch_size=32, lr=2e-3, warmup_steps=50)
    )
    """Optimisation: windows per step, learning rate, seed of initialisation, data order, masks."""
    decode_steps: int = 2
    """Default MaskGIT decoding steps per frame of the engine."""
    temperature: float = 0.0
    """Default sampling temperature of the engine (0: argmax)."""
    choice_temperature: float = 4.5
    """Scale of MaskGIT's annealed Gumbel noise on confidences."""
    eval_context: int = 4
    """Real frames the engine gets before each evaluated rollout."""
    eval_horizon: int = 64
    """Longest evaluated rollout."""
    val_episodes: int = 8
    """Validation episodes for the decoding-steps sweep (teacher-forced, steps 1, 2, 4, 8)."""

    def __post_init__(self):
        if self.action_source not in ACTION_SOURCES:
            raise ValueError(
                f"action_source must be one of {ACTION_SOURCES}; got {self.action_source!r}"
            )
        if self.context < 1:
            raise ValueError(f"context must be >= 1 frame; got {self.context}")
        if not 0 <= self.context_noise <= 1 or not 0 <= self.pad_prob <= 1:
            raise ValueError(
                f"context_noise and pad_prob must lie in [0, 1]; got {self.context_noise}, "
                f"{self.pad_prob}"
            )
        self.tokens.require("the dynamics config")
        if self.actions < 1 or len(self.action_codes) != len(ACTION_NAMES):
            raise ValueError(
                f"the dynamics config has no actions bound (actions={self.actions}, action_codes="
                f"{self.action_codes}): build it with hitchhiker.zoo.config_for(name, preset)"
            )


VARIANTS: dict[str, dict[str, Any]] = {
    "latent": {"action_source": "latent", "name": "dynamics_latent"},
    "no_context_noise": {"context_noise": 0.0, "name": "dynamics_noaug"},
    "walls": {
        "data": {"policy": "bumper"},
        "name": "dynamics_walls",
        "PRESETS": {"cpu": {"train": {"steps": 2400}}},
    },
}
"""Config overrides of the zoo's variants "dynamics_latent", "dynamics_noaug" and
"dynamics_walls": trained on play that now and then walks into what blocks it
(:class:`~hitchhiker.world.policies.WallBumper`), and at the cpu preset three times as long,
because the shipped 800 steps end before the wall rule appears (its probes:
:mod:`hitchhiker.interactive.walls`)."""


def needs(values: dict[str, Any]) -> dict[str, Need]:
    """The tokenizer the config names and, for latent actions, the LAM trained on its tokens."""
    out = tokenizer_needs(values)
    if values["action_source"] == "latent":
        out["lam"] = same_tokens_need("lam", values)
    return out


def bind(values: dict[str, Any], deps: Deps) -> dict[str, Any]:
    """The tokenizer's grid, and the action fields: the world's own actions, or the LAM's codes —
    its map from true actions to codes for play, and its code for "nothing changed" (the most
    frequent code of a first frame paired with itself) for padding."""
    tokenizer = deps["tokenizer"]
    bound: dict[str, Any] = {"tokens": TokenGrid.of(tokenizer)}
    if values["action_source"] == "true":
        bound.update(
            actions=len(ACTION_NAMES),
            pad_action=int(Action.NOOP),
            action_codes=tuple(range(len(ACTION_NAMES))),
        )
        return bound
    lam = deps["lam"]
    lam_cfg = lam.cfg  # shipped or fitted on the fly, the LAM keeps the config it was built from
    if lam_cfg.tokens.vocab_size != bound["tokens"].vocab_size:
        raise ValueError(
            f"the LAM reads {lam_cfg.tokens.vocab_size}-code tokens but this model's tokenizer "
            f"has {bound['tokens'].vocab_size} codes: retrain the LAM on the current tokenizer"
        )
    data = DataConfig(**values["data"])
    rec = record("train", data.episodes, data.episode_steps, data.policy, world=LEARNING_WORLD)
    first = encode_frames(tokenizer, rec.frames[:, 0])
    with torch.inference_mode():
        first = first.to(device_of(lam))
        still = lam.infer(first, first).cpu()  # the code of "nothing changed"
    mapping = code_for_action(lam, lam_cfg, tokenizer)
    bound.update(
        actions=int(lam.num_codes),
        pad_action=int(torch.mode(still).values),
        action_codes=tuple(int(mapping[a]) for a in range(len(ACTION_NAMES))),
    )
    return bound


def build(cfg: Config) -> DynamicsModel:
    """The untrained dynamics model of a (tokenizer- and action-bound) config."""
    torch.manual_seed(cfg.train.seed)
    return DynamicsModel(core_config(cfg), cfg.actions, cfg.context, grid_of(cfg))


def core_config(cfg) -> CoreConfig:
    """The transformer of a dynamics config: a token model's (:func:`~hitchhiker.masks.
    maskgit_recipe.core_config`) with one frame-time embedding per window slot."""
    return replace(token_core_config(cfg), modalities=cfg.context + 1)


def grid_of(cfg) -> tuple[int, int]:
    """(h, w) token grid of a bound config."""
    return (cfg.tokens.grid_h, cfg.tokens.grid_w)


def episode_tokens(cfg: Config, split: str, episodes: int, tokenizer):
    """(tokens (E, T+1, h, w), Recording) of a recorded split, encoded once."""
    rec = record(split, episodes, cfg.data.episode_steps, cfg.data.policy, world=LEARNING_WORLD)
    flat = rec.frames.reshape(-1, *rec.frames.shape[2:])
    tokens = encode_frames(tokenizer, flat)
    return tokens.view(*rec.frames.shape[:2], *tokens.shape[1:]), rec


def model_actions(cfg: Config, tokens: torch.Tensor, actions: np.ndarray, deps: Deps):
    """The model's action per recorded transition (E, T): the world's own, or the LAM's codes
    inferred from the tokens."""
    if cfg.action_source == "true":
        return torch.as_tensor(actions, dtype=torch.long)
    return torch.as_tensor(infer_tokens(deps["lam"], tokens), dtype=torch.long)


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> DynamicsModel:
    """Record and tokenize training episodes once, then train the dynamics model on windows."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the dynamics model")
    tokens, rec = episode_tokens(cfg, "train", cfg.data.episodes, tokenizer)
    if cfg.tokenizer not in ("smoke", "oracle"):
        check_tokenizer(tokenizer, tokens[:8].flatten(0, 1), rec.tiles[:8].reshape(-1, 8, 8))
    actions = model_actions(cfg, tokens, rec.actions, deps)
    model = build(cfg)
    data = WindowDataset(tokens, actions, cfg.context, cfg.pad_action)
    kw = loss_settings(cfg)
    return train_windows(
        model, data, lambda m, b: dynamics_loss(m, b, **kw), cfg, run_dir, progress
    )


def engine_of(model: DynamicsModel, cfg: Config, deps: Deps) -> DynamicsEngine:
    """The engine that plays ``model`` at its recipe's decoding settings."""
    return DynamicsEngine(
        model, deps["tokenizer"], cfg.decode_steps, cfg.temperature, cfg.train.seed, cfg=cfg
    )


def evaluate(model: DynamicsModel, cfg: Config, deps: Deps) -> dict[str, float]:
    """Every Stage III figure of the engine on held-out episodes, plus the decoding-steps sweep."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the dynamics model")
    model.eval()
    prefix = f"stage3.{cfg.name}"
    engine = engine_of(model, cfg, deps)
    truth = truth_set("test", cfg.data.eval_episodes, cfg.eval_context, cfg.eval_horizon)
    horizons = tuple(h for h in (16, 32, 64) if h <= cfg.eval_horizon)
    out = evaluate_engine(engine, truth, prefix, horizons=horizons, seed=cfg.train.seed)
    val = truth_set("val", cfg.val_episodes, cfg.eval_context, min(16, cfg.eval_horizon))
    for steps in (1, 2, 4, 8):
        engine.decode_steps = steps
        kinds = read_tiles(teacher_forced_frames(engine, val)).kinds
        out[f"{prefix}.val_tile_accuracy_s{steps}"] = float((kinds == val.tiles[:, 1:]).mean())
    return out
