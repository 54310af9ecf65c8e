"""Latent actions (Genie): discover a small set of discrete actions from unlabelled play.

Bruce et al., "Genie: Generative Interactive Environments" (ICML 2024), section 2.1; the idea goes
back to ILPO (Edwards et al. 2019) and LAPO (Schmidt & Jiang 2024). Video from the internet has
frames but no action labels. A *latent action model* (LAM) infers them: an encoder looks at frame
t and frame t+1 and names the transition with one code from a codebook of K codes (K about the
number of real actions); a decoder must then predict frame t+1 from frame t and that code alone.
Both work on Stage I token grids z (h x w codes of the image tokenizer):

    a~_t = VQ(u),  u = W Enc([q | E z_t + E' z_t+1])_q       one of K codes per transition
    loss = - 1/N sum_i log p(z_t+1,i | Dec(E'' z_t + P e_a~))_i  +  beta ||u - sg(e_a~)||^2

(the encoder reads one token per cell, both frames' codes of that cell embedded and added, and a
learned query q whose output is projected onto the unit sphere, u; e_a~ is the chosen code; the
decoder adds the code to every token of frame t, as Genie does. The EMA vector quantiser and its
straight-through gradient are Stage I's, :mod:`hitchhiker.masks.quantizers`; for the first
``bypass_steps`` the decoder reads u unquantised, a warm-up that keeps the codebook from collapsing
onto one code.) Why do the codes come to mean actions? The decoder already
sees frame t, so what it cannot guess is *what changed*: the view scrolled one tile up, down, left
or right, a tree was cut, nothing happened. log2 K bits say exactly which, and are far too few for
the row of land a scroll reveals: that row is unpredictable from frame t, and no code helps with it.
Widen the bottleneck (4 codes of 64 per transition: :data:`VARIANTS` ``"leaky"``) and the
encoder passes more than the action through it: the reconstruction loss drops (a little, and mostly
on the training maps), and the codes stop meaning actions: one action is spread over hundreds of
codes, each meaning "this action *and* this detail of frame t+1". That is Genie's warning, shown on
purpose in notebook 04.

The action labels are never used in training; they only score the codes (X code, Y true action;
the figures live in :mod:`.action_agreement`):

    NMI(X; Y) = I(X; Y) / sqrt(H(X) H(Y))        geometric normalisation (1: a relabelling)
    purity    = 1/n sum_x max_y n(x, y)          each code read as its most frequent action

Some actions look alike on screen: a noop, a move into a wall that does not turn the explorer, an
interaction that changes nothing. No model can tell them apart, so we report the figures twice: on
all transitions (``nmi``), and on the *effective* ones (``nmi_effective``: the explorer moved,
turned, or changed a tile, read from the simulator's ground truth).

Shapes: B batch, h x w token grid, N = h * w tokens per frame, D model width, d code width,
K codes, k codes per transition (``action_tokens``), E episodes, T steps, A = 6 true actions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from hitchhiker.config import device_of
from hitchhiker.interactive.action_agreement import (  # noqa: F401  (lam.nmi etc. stay here too)
    consistency,
    contingency,
    nmi,
    plot_confusion,
    purity,
)
from hitchhiker.masks.core import TransformerCore, init_weights
from hitchhiker.masks.quantizers import EMAVectorQuantizer
from hitchhiker.tokens import (
    bind_tokenizer,
    check_tokenizer,
    encode_frames,
    tokenizer_for,
)
from hitchhiker.world import ACTION_NAMES
from hitchhiker.world.dataset import LEARNING_WORLD, Recording, record

# ----------------------------------------------------------------------------- the config


@dataclass
class Config:
    """The latent action model (recipe "lam" of :mod:`hitchhiker.zoo`)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "tokenizer": "oracle",
            "dim": 32,
            "decoder_depth": 1,
            "episodes": 8,
            "episode_steps": 16,
            "eval_episodes": 4,
            "steps": 40,
            "batch_size": 32,
            "warmup_steps": 4,
            "bypass_steps": 10,
        },
        "cpu": {},
        "gpu": {
            "dim": 256,
            "depth": 4,
            "decoder_depth": 4,
            "heads": 8,
            "episodes": 1024,
            "steps": 6000,
            "batch_size": 128,
            "lr": 1e-3,
        },
        "large": {
            "dim": 384,
            "depth": 6,
            "decoder_depth": 6,
            "heads": 8,
            "episodes": 2048,
            "steps": 10000,
            "batch_size": 256,
            "lr": 1e-3,
        },
    }

    name: str = "lam"
    """Model name in the figures: "stage3.<name>.<figure>" (the leaky variant says "lam_leaky")."""
    tokenizer: str = "shipped"
    """Which tokenizer: "shipped", "oracle" (ground-truth stand-in) or a preset to train one at."""
    vocab_size: int = 0
    """Codebook size V of the tokenizer; 0 until fit() reads it from the tokenizer."""
    grid_h: int = 0
    """Token rows h; 0 until fit() reads it from the tokenizer."""
    grid_w: int = 0
    """Token columns w; 0 until fit() reads it from the tokenizer."""
    tokenizer_sha256: str = ""
    """Fingerprint of the shipped tokenizer this model was trained on (warns when it changes)."""
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
    episodes: int = 256
    """Training episodes recorded (train split); their action labels are never read in training."""
    episode_steps: int = 32
    """Steps per recorded episode (each gives that many transitions)."""
    policy: str = "random"
    """Behaviour policy that plays the recordings."""
    steps: int = 1200
    """Optimizer steps."""
    batch_size: int = 32
    """Transitions per step."""
    lr: float = 3e-3
    """Peak learning rate."""
    weight_decay: float = 0.05
    """AdamW weight decay."""
    warmup_steps: int = 100
    """Linear warmup steps."""
    checkpoint_every: int = 500
    """Trainer checkpoint cadence (with a run_dir, an interrupted training resumes exactly)."""
    seed: int = 0
    """Seed of initialisation and data order."""
    eval_episodes: int = 32
    """Held-out episodes of the val split (code_for_action) and of the test split (figures)."""


VARIANTS: dict[str, dict[str, Any]] = {
    "leaky": {"name": "lam_leaky", "codes": 64, "action_tokens": 4, "dead_after": 50},
}
"""Config overrides of named variants: ``"leaky"`` widens the bottleneck until it leaks the frame."""


def leaky_config(cfg: Config) -> Config:
    """A copy of ``cfg`` with the bottleneck widened (:data:`VARIANTS` ``"leaky"``)."""
    return dataclasses.replace(cfg, **VARIANTS["leaky"])


# ----------------------------------------------------------------------------- the model


class GridPosition(nn.Module):
    """Position embeddings of F frames of h x w tokens: frame[f] + row[r] + col[c] -> (F*h*w, D).

    Factorised on purpose: a scroll by one tile is one step along one axis, the same step at every
    cell, which a row/column embedding states outright and a table of F*h*w free vectors must learn
    cell by cell from far more data.
    """

    def __init__(self, frames: int, h: int, w: int, dim: int):
        super().__init__()
        self.frame = nn.Parameter(torch.randn(frames, 1, 1, dim) * 0.02)
        self.row = nn.Parameter(torch.randn(1, h, 1, dim) * 0.02)
        self.col = nn.Parameter(torch.randn(1, 1, w, dim) * 0.02)

    def forward(self) -> torch.Tensor:
        return (self.frame + self.row + self.col).flatten(0, 2)


class LatentActionModel(nn.Module):
    """Encoder (z_t, z_t+1) -> k latent codes of K; decoder (z_t + codes) -> logits of z_t+1."""

    def __init__(self, cfg: Config):
        super().__init__()
        if cfg.vocab_size < 1 or cfg.grid_h < 1 or cfg.grid_w < 1:
            raise ValueError(
                "the config does not know its tokenizer yet (vocab_size/grid_h/grid_w are 0): "
                "call fit(), or bind_tokenizer(cfg, tokenizer) first"
            )
        if cfg.codes < 2 or cfg.action_tokens < 1 or cfg.code_dim < 1:
            raise ValueError(
                f"need codes >= 2, action_tokens >= 1, code_dim >= 1; got {cfg.codes}, "
                f"{cfg.action_tokens}, {cfg.code_dim}"
            )
        if cfg.codes**cfg.action_tokens >= 2**62:
            raise ValueError(
                f"codes ** action_tokens = {cfg.codes}^{cfg.action_tokens} transition ids do not "
                "fit in int64; use fewer codes or fewer action_tokens"
            )
        self.cfg = cfg
        self.grid = (cfg.grid_h, cfg.grid_w)
        k, d = cfg.action_tokens, cfg.dim
        self.frame_tokens, self.num_codes = cfg.grid_h * cfg.grid_w, cfg.codes**k
        # Encoder: [k queries | one token per cell: z_t and z_t+1 of that cell, embedded and added].
        self.enc_tok = nn.Embedding(cfg.vocab_size, d)
        self.enc_next = nn.Embedding(cfg.vocab_size, d)
        self.enc_pos = GridPosition(1, cfg.grid_h, cfg.grid_w, d)
        self.queries = nn.Parameter(torch.randn(1, k, d) * 0.02)
        self.encoder = TransformerCore(d, cfg.depth, cfg.heads, dropout=cfg.dropout)
        self.to_latent = nn.Linear(d, cfg.code_dim)
        self.quantizer = EMAVectorQuantizer(
            cfg.codes, cfg.code_dim, cfg.vq_decay, cfg.commitment, cfg.dead_after
        )
        # Training forwards so far (a buffer: saved with the weights and in trainer checkpoints).
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.int64))
        # Decoder: z_t with the k latent actions added at every position -> logits of z_t+1.
        self.dec_tok = nn.Embedding(cfg.vocab_size, d)
        self.dec_pos = GridPosition(1, cfg.grid_h, cfg.grid_w, d)
        self.from_latent = nn.Linear(k * cfg.code_dim, d)
        self.decoder = TransformerCore(d, cfg.decoder_depth, cfg.heads, dropout=cfg.dropout)
        self.head = nn.Linear(d, cfg.vocab_size)
        for m in (
            self.enc_tok,
            self.enc_next,
            self.to_latent,
            self.dec_tok,
            self.from_latent,
            self.head,
        ):
            init_weights(m)

    def _flat(self, tokens: torch.Tensor, what: str) -> torch.Tensor:
        """Token grids (B, h, w) or flat (B, N) -> (B, N) int64, checked."""
        n, v = self.frame_tokens, self.cfg.vocab_size
        if tokens.dtype not in (torch.int64, torch.int32) or tokens.ndim not in (2, 3):
            raise ValueError(
                f"{what} must be integer token ids shaped (B, {self.grid[0]}, {self.grid[1]}) or "
                f"(B, {n}); got {tokens.dtype} {tuple(tokens.shape)}"
            )
        flat = tokens.reshape(tokens.shape[0], -1).long()
        if flat.shape[1] != n:
            raise ValueError(f"{what} must hold {n} tokens per frame; got {tuple(tokens.shape)}")
        if flat.numel() and (flat.min() < 0 or flat.max() >= v):
            raise ValueError(f"{what} ids must lie in [0, {v}); got [{flat.min()}, {flat.max()}]")
        return flat

    def encode(self, tokens_t: torch.Tensor, tokens_t1: torch.Tensor) -> torch.Tensor:
        """Continuous latent actions (B, d, 1, k) before quantisation."""
        a, b = self._flat(tokens_t, "tokens_t"), self._flat(tokens_t1, "tokens_t1")
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"batch sizes differ: tokens_t {a.shape[0]}, tokens_t1 {b.shape[0]}")
        q = self.queries.expand(a.shape[0], -1, -1)
        # One token per cell (not 2N tokens, one per frame) halves the sequence; whether a cell
        # changed, and into what its neighbour was, is then one attention hop away.
        cells = self.enc_tok(a) + self.enc_next(b) + self.enc_pos()
        x = torch.cat([q, cells], 1)
        k = self.cfg.action_tokens
        u = self.to_latent(self.encoder(x)[:, :k])  # (B, k, d): read out at the queries only
        return u.transpose(1, 2)[:, :, None]  # the quantiser's (B, d, h=1, w=k) layout

    def decode(self, tokens_t: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """Logits (B, N, V) of frame t+1 from frame t and quantised latent actions (B, d, 1, k)."""
        a = self._flat(tokens_t, "tokens_t")
        # Genie's conditioning: the action is added to every token of frame t, so each position
        # knows at once where its next token comes from (a prepended action token would first have
        # to be found by attention: slower to learn, and easier to ignore).
        act = self.from_latent(latent.flatten(1))[:, None]  # (B, 1, D)
        return self.head(self.decoder(self.dec_tok(a) + self.dec_pos() + act))

    def forward(self, tokens_t: torch.Tensor, tokens_t1: torch.Tensor):
        """(logits (B, N, V) of frame t+1, codes (B, k), VQ terms): one training pass.

        For the first ``bypass_steps`` training passes the decoder reads the latent unquantised.
        Quantised from the start, the codes are seeded on latents of an untrained encoder, which
        barely differ, and the decoder learns to ignore a code that never varies: one code wins
        and nothing moves it. After the warm-up the latents already vary with what changed between
        the frames, and the codebook is seeded (k-means++) on them.
        """
        u = self.encode(tokens_t, tokens_t1)
        if self.training:
            self.trained_steps += 1
            if int(self.trained_steps) <= self.cfg.bypass_steps:
                codes = self.quantizer.indices(u)
                terms = {"commit": u.new_zeros(()), "perplexity": u.new_zeros(())}
                return self.decode(tokens_t, self.quantizer.bypass(u)), codes[:, 0], terms
        latent, codes, terms = self.quantizer(u)
        return self.decode(tokens_t, latent), codes[:, 0], terms

    def code_id(self, codes: torch.Tensor) -> torch.Tensor:
        """k codes (B, k) -> one transition id (B,) in [0, K^k): mixed radix, first code lowest."""
        radix = self.cfg.codes ** torch.arange(codes.shape[1], device=codes.device)
        return (codes * radix).sum(1)

    def codes_of(self, ids: torch.Tensor) -> torch.Tensor:
        """Transition ids (B,) -> their k codes (B, k); the inverse of :meth:`code_id`."""
        ids = torch.as_tensor(ids, dtype=torch.int64, device=self.queries.device).reshape(-1)
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.num_codes):
            raise ValueError(f"latent action ids must lie in [0, {self.num_codes}); got {ids}")
        radix = self.cfg.codes ** torch.arange(self.cfg.action_tokens, device=ids.device)
        return (ids[:, None] // radix) % self.cfg.codes

    @torch.no_grad()
    def infer(self, tokens_t: torch.Tensor, tokens_t1: torch.Tensor) -> torch.Tensor:
        """The latent action of each transition: ids (B,) in [0, num_codes)."""
        codes = self.quantizer.indices(self.encode(tokens_t, tokens_t1))[:, 0]
        return self.code_id(codes)

    @torch.no_grad()
    def predict(self, tokens_t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, N, V) of the next frame under chosen latent actions ``ids`` (B,) or one int."""
        a = self._flat(tokens_t, "tokens_t")
        codes = self.codes_of(ids)
        if len(codes) == 1:
            codes = codes.expand(a.shape[0], -1)
        if len(codes) != a.shape[0]:
            raise ValueError(f"got {len(codes)} latent actions for {a.shape[0]} frames")
        latent = self.quantizer.embed(codes[:, None])  # (B, d, 1, k)
        return self.decode(a, latent)


def lam_loss(model: LatentActionModel, tokens_t: torch.Tensor, tokens_t1: torch.Tensor):
    """Cross-entropy of every token of frame t+1, plus the commitment term: (loss, metrics)."""
    logits, _, terms = model(tokens_t, tokens_t1)
    target = tokens_t1.reshape(tokens_t1.shape[0], -1)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))
    acc = (logits.argmax(-1) == target).float().mean()
    metrics = {"ce": ce.detach(), "token_acc": acc.detach(), "perplexity": terms["perplexity"]}
    return ce + terms["commit"], metrics


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


def split_tokens(cfg: Config, split: str, tokenizer=None) -> tuple[torch.Tensor, Recording]:
    """(token grids (E, T+1, h, w), the recording with its labels) of a split, encoded once."""
    tokenizer = tokenizer if tokenizer is not None else tokenizer_for(cfg)
    episodes = cfg.episodes if split == "train" else cfg.eval_episodes
    rec = record(split, episodes, cfg.episode_steps, cfg.policy, world=LEARNING_WORLD)
    e, t1 = rec.frames.shape[:2]
    tokens = encode_frames(tokenizer, rec.frames.reshape(-1, *rec.frames.shape[2:]))
    return tokens.view(e, t1, *tokens.shape[1:]), rec


@torch.no_grad()
def infer_tokens(model: LatentActionModel, tokens: torch.Tensor, batch: int = 512) -> np.ndarray:
    """Latent action ids (E, T) of every transition of episodes of token grids (E, T+1, h, w)."""
    model.eval()
    device = device_of(model)
    a = tokens[:, :-1].reshape(-1, *tokens.shape[2:])
    b = tokens[:, 1:].reshape(-1, *tokens.shape[2:])
    ids = [
        model.infer(a[i : i + batch].to(device), b[i : i + batch].to(device)).cpu()
        for i in range(0, len(a), batch)
    ]
    return torch.cat(ids).view(tokens.shape[0], -1).numpy()


def latent_actions_of(model, cfg: Config, frames: np.ndarray, tokenizer=None) -> np.ndarray:
    """Latent action ids (E, T) of uint8 episodes (E, T+1, 64, 64, 3), tokenised as the LAM was."""
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[1] < 2 or frames.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 episodes (E, T+1, H, W, 3); got {frames.dtype} {frames.shape}"
        )
    tokenizer = tokenizer if tokenizer is not None else tokenizer_for(cfg)
    tokens = encode_frames(tokenizer, frames.reshape(-1, *frames.shape[2:]))
    return infer_tokens(model, tokens.view(*frames.shape[:2], *tokens.shape[1:]))


def revealed_cells(rec: Recording) -> np.ndarray:
    """(E, T, R, C) bool: the view cells of frame t+1 that were out of view at frame t.

    A move scrolls the view by one tile, so one edge row or column is new land that frame t cannot
    predict: only a bottleneck that leaks frame t+1 helps there.
    """
    d = rec.positions[:, 1:] - rec.positions[:, :-1]  # (E, T, 2) row, column step
    out = np.zeros(d.shape[:2] + rec.tiles.shape[-2:], dtype=bool)
    out[..., 0, :] |= (d[..., 0] < 0)[..., None]  # moved north: a new top row
    out[..., -1, :] |= (d[..., 0] > 0)[..., None]
    out[..., :, 0] |= (d[..., 1] < 0)[..., None]  # moved west: a new left column
    out[..., :, -1] |= (d[..., 1] > 0)[..., None]
    return out


def effective_transitions(rec: Recording) -> np.ndarray:
    """(E, T) bool: the action showed on screen (the explorer moved or turned, or a tile changed).

    Only interaction changes tile kinds, and sheep are not tiles, so a changed tile grid without a
    move is the explorer's own doing.
    """
    moved = (rec.positions[:, 1:] != rec.positions[:, :-1]).any(-1)
    turned = rec.headings[:, 1:] != rec.headings[:, :-1]
    changed = (rec.tiles[:, 1:] != rec.tiles[:, :-1]).any((-2, -1)) & ~moved
    return moved | turned | changed


# ----------------------------------------------------------------------------- agreement figures


def confusion(model, cfg: Config, split: str = "test", tokenizer=None) -> np.ndarray:
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


def code_for_action(model, cfg: Config, tokenizer=None) -> dict[int, int]:
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


def train_config(cfg: Config):
    """The trainer's settings from the LAM config."""
    from hitchhiker.train import train_config_of

    return train_config_of(cfg)


def build(cfg: Config) -> LatentActionModel:
    """The untrained LAM of a (tokenizer-bound) config."""
    torch.manual_seed(cfg.seed)
    return LatentActionModel(cfg)


def fit(cfg: Config, run_dir=None, progress: bool = True, tokenizer=None) -> LatentActionModel:
    """Encode the training episodes once, then train the LAM on their transitions (no labels)."""
    from hitchhiker.train import train

    tokenizer = tokenizer if tokenizer is not None else tokenizer_for(cfg)
    bind_tokenizer(cfg, tokenizer)
    tokens, rec = split_tokens(cfg, "train", tokenizer)
    if cfg.tokenizer not in ("oracle", "smoke"):  # a smoke tokenizer is expected to lose tiles
        frames = tokens.reshape(-1, *tokens.shape[2:])[:256]
        check_tokenizer(tokenizer, frames, rec.tiles.reshape(-1, *rec.tiles.shape[2:])[:256])
    model = build(cfg)
    result = train(
        model,
        TransitionDataset(tokens),
        lambda m, batch: lam_loss(m, batch["tokens_t"], batch["tokens_t1"]),
        train_config(cfg),
        run_dir,
        progress=progress,
    )
    result.model.losses = result.losses
    result.model.train_seconds = result.seconds
    return result.model


@torch.no_grad()
def evaluate(
    model: LatentActionModel, cfg: Config, tokenizer=None, split: str = "test"
) -> dict[str, float]:
    """Agreement of the codes with the true actions, and next-frame prediction, on held-out play
    (``split="train"`` shows what the model memorised: a leaking bottleneck predicts new land
    there)."""
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
