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

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.interactive.masked_dynamics_model import (  # noqa: F401  (importable from here too)
    DynamicsModel,
    block_causal_mask,
    grid_sincos,
    teacher_forcing_mask,
)
from hitchhiker.interactive.rollout import evaluate_engine, teacher_forced_frames
from hitchhiker.interactive.truth import truth_set
from hitchhiker.masks.core import CoreConfig
from hitchhiker.masks.maskgit import random_mask
from hitchhiker.tokens import (
    bind_tokenizer,
    check_tokenizer,
    encode_frames,
    tokenizer_for,
)
from hitchhiker.world import ACTION_NAMES, Action, read_tiles
from hitchhiker.world.dataset import LEARNING_WORLD, record

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
    tokens = batch["tokens"].flatten(2)  # (B, F, N)
    actions = batch["actions"].clone()
    actions[:, 0] = net.none_action
    tokens, actions = pad_windows(tokens, actions, pad_action, pad_prob)
    b, f, n = tokens.shape
    context = corrupt_context(tokens, context_noise, net.cfg.vocab_size)
    target = tokens[:, 1:]
    hide = random_mask(b * (f - 1), n, schedule, device=tokens.device).view(b, f - 1, n)
    logits = model(context, actions, hide=hide, targets=target)
    centre = (net.grid[0] // 2) * net.grid[1] + net.grid[1] // 2
    weight = torch.ones(n, device=tokens.device)
    weight[centre] = explorer_weight
    w = weight.expand_as(hide)[hide]
    nll = F.cross_entropy(logits[hide].float(), target[hide], reduction="none")
    loss = (nll * w).sum() / w.sum()
    right = logits.argmax(-1) == target
    return loss, {
        "masked_acc": right[hide].float().mean().detach(),
        "explorer_acc": right[..., centre][hide[..., centre]].float().mean().detach(),
    }


# ----------------------------------------------------------------------------- the recipe


@dataclass
class Config:
    """Masked dynamics on world tokens (recipes "dynamics", "dynamics_noaug", "dynamics_latent")."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "tokenizer": "oracle",
            "dim": 32,
            "depth": 1,
            "heads": 2,
            "episodes": 6,
            "episode_steps": 16,
            "steps": 30,
            "batch_size": 16,
            "warmup_steps": 3,
            "eval_episodes": 2,
            "eval_horizon": 16,
            "val_episodes": 2,
            "checkpoint_every": 0,
        },
        "cpu": {},
        "gpu": {"dim": 256, "depth": 8, "heads": 8, "episodes": 1024, "steps": 20000, "lr": 1e-3},
        "large": {
            "dim": 384,
            "depth": 12,
            "heads": 8,
            "episodes": 2048,
            "steps": 40000,
            "lr": 6e-4,
        },
    }

    name: str = "dynamics"
    """Model name: figures read "stage3.<name>.<figure>" (each variant sets its own)."""
    tokenizer: str = "shipped"
    """Which tokenizer: "shipped", "oracle" (ground-truth stand-in) or a preset to train one at."""
    vocab_size: int = 0
    """Codebook size V; 0 until fit() reads it from the tokenizer."""
    grid_h: int = 0
    """Token rows h; 0 until fit() reads it from the tokenizer."""
    grid_w: int = 0
    """Token columns w; 0 until fit() reads it from the tokenizer."""
    tokenizer_sha256: str = ""
    """Fingerprint of the shipped tokenizer this model was trained on (warns when it changes)."""
    action_source: str = "true"
    """"true": condition on the world's actions; "latent": on the shipped LAM's latent codes."""
    actions: int = 0
    """Action vocabulary A (6 true actions, or the LAM's codes); 0 until fit() sets it."""
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
    episodes: int = 256
    """Training episodes recorded (train split)."""
    episode_steps: int = 32
    """Steps per recorded episode."""
    policy: str = "random"
    """Behaviour policy that records the training episodes."""
    steps: int = 800
    """Optimizer steps."""
    batch_size: int = 32
    """Windows per step."""
    lr: float = 2e-3
    """Peak learning rate."""
    weight_decay: float = 0.05
    """AdamW weight decay."""
    warmup_steps: int = 50
    """Linear warmup steps."""
    checkpoint_every: int = 500
    """Save a resumable trainer checkpoint every this many steps (0: only at the end)."""
    seed: int = 0
    """Seed of initialisation, data order, masks and corruption."""
    decode_steps: int = 2
    """Default MaskGIT decoding steps per frame of the engine."""
    temperature: float = 0.0
    """Default sampling temperature of the engine (0: argmax)."""
    choice_temperature: float = 4.5
    """Scale of MaskGIT's annealed Gumbel noise on confidences."""
    eval_episodes: int = 16
    """Held-out episodes (test split) for the figures."""
    eval_context: int = 4
    """Real frames the engine gets before each evaluated rollout."""
    eval_horizon: int = 64
    """Longest evaluated rollout."""
    val_episodes: int = 8
    """Validation episodes for the decoding-steps sweep (teacher-forced, steps 1, 2, 4, 8)."""


VARIANTS: dict[str, dict[str, Any]] = {
    "latent": {"action_source": "latent", "name": "dynamics_latent"},
    "no_context_noise": {"context_noise": 0.0, "name": "dynamics_noaug"},
}
"""Config overrides of the zoo's variants "dynamics_latent" and "dynamics_noaug"."""


def _check(cfg: Config) -> None:
    if cfg.action_source not in ACTION_SOURCES:
        raise ValueError(
            f"action_source must be one of {ACTION_SOURCES}; got {cfg.action_source!r}"
        )
    if cfg.context < 1:
        raise ValueError(f"context must be >= 1 frame; got {cfg.context}")
    if not 0 <= cfg.context_noise <= 1 or not 0 <= cfg.pad_prob <= 1:
        raise ValueError(f"context_noise and pad_prob must lie in [0, 1]; got {cfg}")
    if cfg.vocab_size < 1 or cfg.grid_h < 1 or cfg.actions < 1:
        raise ValueError(
            "the config does not know its tokenizer and actions yet (vocab_size/grid/actions are "
            "0): call fit(), or bind_tokenizer(cfg, tokenizer) and set cfg.actions first"
        )


def build(cfg: Config) -> DynamicsModel:
    """The untrained dynamics model of a (tokenizer- and action-bound) config."""
    _check(cfg)
    torch.manual_seed(cfg.seed)
    core = CoreConfig(
        vocab_size=cfg.vocab_size,
        seq_len=cfg.grid_h * cfg.grid_w,
        dim=cfg.dim,
        depth=cfg.depth,
        heads=cfg.heads,
        dropout=cfg.dropout,
        modalities=cfg.context + 1,
    )
    return DynamicsModel(core, cfg.actions, cfg.context, (cfg.grid_h, cfg.grid_w))


def episode_tokens(cfg: Config, split: str, episodes: int, tokenizer):
    """(tokens (E, T+1, h, w), Recording) of a recorded split, encoded once."""
    rec = record(split, episodes, cfg.episode_steps, cfg.policy, world=LEARNING_WORLD)
    flat = rec.frames.reshape(-1, *rec.frames.shape[2:])
    tokens = encode_frames(tokenizer, flat)
    return tokens.view(*rec.frames.shape[:2], *tokens.shape[1:]), rec


def bind_actions(cfg: Config, tokens: torch.Tensor, actions: np.ndarray) -> torch.Tensor:
    """Set the action fields of ``cfg`` and return the model's action per transition (E, T).

    True actions: the world's own. Latent: the shipped LAM's codes inferred from the tokens, its
    map from true actions to codes for play, and its code for "nothing changed" for padding.
    """
    if cfg.action_source == "true":
        cfg.actions, cfg.pad_action = len(ACTION_NAMES), int(Action.NOOP)
        cfg.action_codes = tuple(range(len(ACTION_NAMES)))
        return torch.as_tensor(actions, dtype=torch.long)
    from hitchhiker import zoo
    from hitchhiker.interactive.latent_actions import code_for_action, infer_tokens

    if cfg.tokenizer == "shipped":  # the shipped LAM, trained on the same shipped tokens
        lam = zoo.load("lam")
        lam_cfg = lam.shipped_config
    else:  # tests and smoke runs: a LAM fitted on the same stand-in tokens
        lam, lam_cfg = zoo.load_or_fit("lam", "smoke", tokenizer=cfg.tokenizer)
    if lam_cfg.vocab_size != cfg.vocab_size:
        raise ValueError(
            f"the LAM reads {lam_cfg.vocab_size}-code tokens but this model's tokenizer has "
            f"{cfg.vocab_size} codes: retrain the LAM on the current tokenizer"
        )
    codes = torch.as_tensor(infer_tokens(lam, tokens), dtype=torch.long)
    with torch.inference_mode():
        first = tokens[:, 0].to(next(lam.parameters()).device)
        still = lam.infer(first, first).cpu()  # the code of "nothing changed"
    mapping = code_for_action(lam, lam_cfg)
    cfg.actions, cfg.pad_action = int(lam.num_codes), int(torch.mode(still).values)
    cfg.action_codes = tuple(int(mapping[a]) for a in range(len(ACTION_NAMES)))
    return codes


def train_config(cfg: Config):
    """The trainer's settings from a dynamics config."""
    from hitchhiker.train import train_config_of

    return train_config_of(cfg)


def fit(cfg: Config, run_dir=None, progress: bool = True, tokenizer=None) -> DynamicsModel:
    """Record and tokenize training episodes once, then train the dynamics model on windows."""
    from hitchhiker.train import train

    tokenizer = tokenizer if tokenizer is not None else tokenizer_for(cfg)
    bind_tokenizer(cfg, tokenizer)
    tokens, rec = episode_tokens(cfg, "train", cfg.episodes, tokenizer)
    if cfg.tokenizer not in ("smoke", "oracle"):
        check_tokenizer(tokenizer, tokens[:8].flatten(0, 1), rec.tiles[:8].reshape(-1, 8, 8))
    actions = bind_actions(cfg, tokens, rec.actions)
    model = build(cfg)
    data = WindowDataset(tokens, actions, cfg.context, cfg.pad_action)
    kw = {
        "context_noise": cfg.context_noise,
        "pad_prob": cfg.pad_prob,
        "pad_action": cfg.pad_action,
        "schedule": cfg.mask_schedule,
        "explorer_weight": cfg.explorer_weight,
    }
    result = train(
        model,
        data,
        lambda m, b: dynamics_loss(m, b, **kw),
        train_config(cfg),
        run_dir,
        progress=progress,
    )
    model.losses = result.losses
    model.train_seconds, model.log = result.seconds, result.log
    return result.model


def evaluate(model: DynamicsModel, cfg: Config, tokenizer=None) -> dict[str, float]:
    """Every Stage III figure of the engine on held-out episodes, plus the decoding-steps sweep."""
    tokenizer = tokenizer if tokenizer is not None else tokenizer_for(cfg)
    model.eval()
    prefix = f"stage3.{cfg.name}"
    engine = DynamicsEngine(model, tokenizer, cfg.decode_steps, cfg.temperature, cfg.seed, cfg=cfg)
    truth = truth_set("test", cfg.eval_episodes, cfg.eval_context, cfg.eval_horizon)
    horizons = tuple(h for h in (16, 32, 64) if h <= cfg.eval_horizon)
    out = evaluate_engine(engine, truth, prefix, horizons=horizons, seed=cfg.seed)
    val = truth_set("val", cfg.val_episodes, cfg.eval_context, min(16, cfg.eval_horizon))
    for steps in (1, 2, 4, 8):
        engine.decode_steps = steps
        kinds = read_tiles(teacher_forced_frames(engine, val)).kinds
        out[f"{prefix}.val_tile_accuracy_s{steps}"] = float((kinds == val.tiles[:, 1:]).mean())
    return out
