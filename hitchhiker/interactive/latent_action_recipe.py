"""Recipe "lam" (and "lam_leaky"): train the latent action model of :mod:`.latent_action_model`
on unlabelled play, score its codes against the true actions.

Bruce et al., "Genie: Generative Interactive Environments" (ICML 2024), section 2.1. This module is
what :mod:`hitchhiker.zoo` runs: the Config with its presets, :data:`VARIANTS` (``"leaky"`` widens
the bottleneck until it leaks the frame), build, fit (record episodes, encode them once with the
tokenizer, train on their transitions) and evaluate. The action labels are never used in training;
they only score the codes (X code, Y true action; the figures live in :mod:`.action_agreement`):

    NMI(X; Y) = I(X; Y) / sqrt(H(X) H(Y))        geometric normalisation (1: a relabelling)
    purity    = 1/n sum_x max_y n(x, y)          each code read as its most frequent action

Some actions look alike on screen: a noop, a move into a wall that does not turn the explorer, an
interaction that changes nothing. No model can tell them apart, so we report the figures twice: on
all transitions (``nmi``), and on the *effective* ones (``nmi_effective``: the explorer moved,
turned, or changed a tile, read from the simulator's ground truth).

Shapes: B batch, h x w token grid, N = h * w tokens per frame, K codes, k codes per transition
(``action_tokens``), E episodes, T steps, A = 6 true actions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from hitchhiker.devices import device_of
from hitchhiker.interactive.action_agreement import (
    consistency,
    effective_transitions,
    nmi,
    purity,
    revealed_cells,
)
from hitchhiker.interactive.latent_action_model import LatentActionModel, infer_tokens, lam_loss
from hitchhiker.recipe import Deps
from hitchhiker.tokens import (
    TokenGrid,
    bind_tokens,
    check_tokenizer,
    encode_frames,
    tokenizer_needs,
)
from hitchhiker.train import TrainConfig, train
from hitchhiker.world import ACTION_NAMES
from hitchhiker.world.dataset import LEARNING_WORLD, DataConfig, Recording, record

# ----------------------------------------------------------------------------- the config


@dataclass
class Config:
    """The latent action model (recipe "lam" of :mod:`hitchhiker.zoo`)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "tokenizer": "oracle",
            "dim": 32,
            "decoder_depth": 1,
            "bypass_steps": 10,
            "data": {"episodes": 8, "episode_steps": 16, "eval_episodes": 4},
            "train": {"steps": 40, "batch_size": 32, "warmup_steps": 4},
        },
        "cpu": {},
        "gpu": {
            "dim": 256,
            "depth": 4,
            "decoder_depth": 4,
            "heads": 8,
            "data": {"episodes": 1024},
            "train": {"steps": 6000, "batch_size": 128, "lr": 1e-3},
        },
        "large": {
            "dim": 384,
            "depth": 6,
            "decoder_depth": 6,
            "heads": 8,
            "data": {"episodes": 2048},
            "train": {"steps": 10000, "batch_size": 256, "lr": 1e-3},
        },
    }
    RENAMED: ClassVar[dict[str, str | None]] = {"tokenizer_sha256": "tokens.sha256"}
    """Where the fields of files stored before the configs were nested went (``migrate_flat``)."""

    name: str = "lam"
    """Model name in the figures: "stage3.<name>.<figure>" (the leaky variant says "lam_leaky")."""
    tokenizer: str = "shipped"
    """Which tokenizer: "shipped", "oracle" (ground-truth stand-in) or a preset to train one at."""
    tokens: TokenGrid = field(default_factory=TokenGrid)
    """The tokenizer's vocabulary and grid, bound by the zoo from the tokenizer it hands in."""
    codes: int = 8
    """Latent action codebook size K: the bottleneck (the world has 6 actions)."""
    action_tokens: int = 1
    """Latent codes per transition k; the transition's id is their mixed-radix number (K^k ids)."""
    code_dim: int = 16
    """Width d of a latent action vector (on the unit sphere, as the Stage I VQ keeps it)."""
    commitment: float = 0.25
    """VQ commitment weight beta."""
    vq_decay: float = 0.99
    """EMA decay of the codebook."""
    dead_after: int = 100
    """Restart a code unused for this many training steps."""
    bypass_steps: int = 400
    """First training steps in which the decoder reads the unquantised latent (a warm-up)."""
    dim: int = 64
    """Transformer width D (encoder and decoder)."""
    depth: int = 2
    """Encoder transformer blocks (at least 2: compare each cell with its neighbours, then pool)."""
    decoder_depth: int = 2
    """Decoder transformer blocks."""
    heads: int = 4
    """Attention heads (at least 4: one per direction of scroll the model must look for)."""
    dropout: float = 0.0
    """Dropout in attention and MLP while training."""
    data: DataConfig = field(
        default_factory=lambda: DataConfig(episodes=256, episode_steps=32, eval_episodes=32)
    )
    """Recorded play: training episodes (their action labels are never read in training), and
    the held-out episodes of the val split (code_for_action) and of the test split (figures)."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=1200, batch_size=32, lr=3e-3)
    )
    """Optimisation: transitions per step, learning rate, seed of initialisation and data order."""

    def __post_init__(self):
        if self.codes < 2 or self.action_tokens < 1 or self.code_dim < 1:
            raise ValueError(
                f"need codes >= 2, action_tokens >= 1, code_dim >= 1; got {self.codes}, "
                f"{self.action_tokens}, {self.code_dim}"
            )
        if self.codes**self.action_tokens >= 2**62:
            raise ValueError(
                f"codes ** action_tokens = {self.codes}^{self.action_tokens} transition ids do "
                "not fit in int64; use fewer codes or fewer action_tokens"
            )
        self.tokens.require("the latent action model config")


VARIANTS: dict[str, dict[str, Any]] = {
    "leaky": {"name": "lam_leaky", "codes": 64, "action_tokens": 4, "dead_after": 50},
}
"""Config overrides of named variants: ``"leaky"`` widens the bottleneck until it leaks the frame."""


def leaky_config(cfg: Config) -> Config:
    """A copy of ``cfg`` with the bottleneck widened (:data:`VARIANTS` ``"leaky"``)."""
    return dataclasses.replace(cfg, **VARIANTS["leaky"])


needs = tokenizer_needs
"""What the recipe needs: the tokenizer its config names."""
bind = bind_tokens
"""What it reads off it: the tokenizer's vocabulary, grid and fingerprint."""


# ----------------------------------------------------------------------------- data


class TransitionDataset(Dataset):
    """Consecutive token grids of recorded episodes, WITHOUT their actions.

    Item: {"tokens_t": (h, w) int64, "tokens_t1": (h, w) int64}.
    """

    def __init__(self, tokens: torch.Tensor):
        if tokens.ndim != 4 or tokens.shape[1] < 2:
            raise ValueError(f"expected episodes of token grids (E, T+1, h, w); got {tokens.shape}")
        self.tokens = tokens
        self.steps = tokens.shape[1] - 1

    def __len__(self) -> int:
        return self.tokens.shape[0] * self.steps

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        e, t = divmod(i, self.steps)
        return {"tokens_t": self.tokens[e, t], "tokens_t1": self.tokens[e, t + 1]}


def split_tokens(cfg: Config, split: str, tokenizer) -> tuple[torch.Tensor, Recording]:
    """(token grids (E, T+1, h, w), the recording with its labels) of a split, encoded once:
    ``cfg.data.episodes`` of the train split, ``cfg.data.eval_episodes`` of val or test."""
    data = cfg.data
    if split == "train":
        episodes, steps = data.episodes, data.episode_steps
    else:
        episodes, steps = data.eval_episodes, data.held_out_steps
    rec = record(split, episodes, steps, data.policy, world=LEARNING_WORLD)
    e, t1 = rec.frames.shape[:2]
    tokens = encode_frames(tokenizer, rec.frames.reshape(-1, *rec.frames.shape[2:]))
    return tokens.view(e, t1, *tokens.shape[1:]), rec


# ----------------------------------------------------------------------------- agreement figures


def confusion(model, cfg: Config, split: str, tokenizer) -> np.ndarray:
    """Counts (codes, A): how often each latent action id was inferred for each true action.

    Rows are all ``model.num_codes`` ids when there are at most 65536 of them; a wider bottleneck
    (the leaky variant's 64^4 ids) gets one row per id that occurs, in increasing id order.
    """
    tokens, rec = split_tokens(cfg, split, tokenizer)
    ids, actions = infer_tokens(model, tokens).reshape(-1), rec.actions.reshape(-1)
    if model.num_codes > 2**16:
        _, ids = np.unique(ids, return_inverse=True)
    rows = ids.max() + 1 if model.num_codes > 2**16 else model.num_codes
    counts = np.zeros((rows, len(ACTION_NAMES)), dtype=np.int64)
    np.add.at(counts, (ids, actions), 1)
    return counts


def code_for_action(model, cfg: Config, tokenizer) -> dict[int, int]:
    """{action index: latent action id}: each true action's most frequent code on the val split.

    How a model trained on latent actions ("dynamics_latent") is played with the real buttons. An
    action never seen on the val split gets the most frequent code overall.
    """
    tokens, rec = split_tokens(cfg, "val", tokenizer)
    ids, actions = infer_tokens(model, tokens).reshape(-1), rec.actions.reshape(-1)
    values, counts = np.unique(ids, return_counts=True)
    mapping = {}
    for a in range(len(ACTION_NAMES)):
        mine, n = np.unique(ids[actions == a], return_counts=True)
        mapping[a] = int(mine[n.argmax()]) if len(mine) else int(values[counts.argmax()])
    return mapping


# ----------------------------------------------------------------------------- the recipe


def build(cfg: Config) -> LatentActionModel:
    """The untrained LAM of a (tokenizer-bound) config."""
    torch.manual_seed(cfg.train.seed)
    return LatentActionModel(cfg)


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> LatentActionModel:
    """Encode the training episodes once, then train the LAM on their transitions (no labels)."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the latent action model")
    tokens, rec = split_tokens(cfg, "train", tokenizer)
    if cfg.tokenizer not in ("oracle", "smoke"):  # a smoke tokenizer is expected to lose tiles
        frames = tokens.reshape(-1, *tokens.shape[2:])[:256]
        check_tokenizer(tokenizer, frames, rec.tiles.reshape(-1, *rec.tiles.shape[2:])[:256])
    model = build(cfg)
    result = train(
        model,
        TransitionDataset(tokens),
        lambda m, batch: lam_loss(m, batch["tokens_t"], batch["tokens_t1"]),
        cfg.train,
        run_dir,
        progress=progress,
    )
    result.model.losses = result.losses
    result.model.train_seconds = result.seconds
    return result.model


@torch.no_grad()
def evaluate(
    model: LatentActionModel, cfg: Config, deps: Deps, split: str = "test"
) -> dict[str, float]:
    """Agreement of the codes with the true actions, and next-frame prediction, on held-out play
    (``split="train"`` shows what the model memorised: a leaking bottleneck predicts new land
    there)."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the latent action model")
    model.eval()
    tokens, rec = split_tokens(cfg, split, tokenizer)
    ids = infer_tokens(model, tokens)
    actions, effective = rec.actions, effective_transitions(rec)
    device = device_of(model)
    a = tokens[:, :-1].reshape(-1, *tokens.shape[2:])
    b = tokens[:, 1:].reshape(len(a), -1)
    hits, nll = [], 0.0
    for i in range(0, len(a), 512):
        logits = model.predict(
            a[i : i + 512].to(device), torch.from_numpy(ids.reshape(-1)[i : i + 512])
        )
        target = b[i : i + 512].to(device)
        hits.append((logits.argmax(-1) == target).cpu())
        nll += float(
            F.cross_entropy(logits.flatten(0, 1).float(), target.reshape(-1), reduction="sum")
        )
    hit = torch.cat(hits).numpy()  # (E*T, N)
    p = f"stage3.{cfg.name}."
    out = {}
    if tuple(tokens.shape[2:]) == rec.tiles.shape[-2:]:  # one token per tile: cells line up
        new = revealed_cells(rec).reshape(hit.shape)
        out[p + "new_land_token_accuracy"] = float(hit[new].mean())
        out[p + "seen_token_accuracy"] = float(hit[~new].mean())
    return out | {
        p + "nmi": nmi(ids, actions),
        p + "nmi_effective": nmi(ids[effective], actions[effective]),
        p + "purity": purity(ids, actions),
        p + "purity_effective": purity(ids[effective], actions[effective]),
        p + "consistency": consistency(ids, actions),
        p + "codes_used": float(len(np.unique(ids))),
        p + "effective_share": float(effective.mean()),
        p + "next_frame_token_accuracy": float(hit.mean()),
        p + "next_frame_loss": nll / b.numel(),
        p + "copy_token_accuracy": float((a.reshape(len(a), -1) == b).float().mean()),
    }
