"""The image tokenizer: a 64x64 view <-> an 8x8 grid of discrete tokens (VQ-VAE or FSQ).

MaskGIT (this stage), the unified model (Stage II) and the dynamics models (Stage III) never see
pixels: they read and write the tokens this module makes. A VQ-VAE (van den Oord et al., 2017) is
an autoencoder with a discrete bottleneck,

    frame x --encoder--> latents z (B, D, h, w) --quantise--> tokens (B, h, w) --decoder--> x^
    loss = ||x - x^||^2 + beta ||z - sg(e)||^2        (the codebook follows an EMA, quantizers.py)

Our world is built from 8x8-pixel tiles, each one of a few hundred fixed pictures (9 kinds x 4
texture variants, sheep over walkable ground, the explorer in 4 headings). So the encoder and the
decoder work *per tile*: a stride-8 convolution reads one tile into one latent vector, 1x1
convolutions refine it, and a transposed stride-8 convolution paints it back. One token is one
tile, and a code means the same picture wherever it sits on the grid -- which is what makes
"what a code means on the map" (:func:`code_meaning`) a crisp question, and what lets a generator
place tokens without worrying about its neighbours' receptive fields. The codebook is sized to the
world: ~150 tile pictures occur, many near-duplicates (the explorer's four headings differ by a few
pixels), so 128 codes suffice -- with the explorer's tile weighted up in the loss, or its headings
merge; thousands would sit unused.

``Config.quantizer`` switches to FSQ (Mentzer et al., 2023): same API, an implicit codebook of
prod(levels) grid points, no codebook to collapse.

API used by the later stages::

    tok = zoo.load("tokenizer")
    tokens = tok.encode(frames)          # (B, 3, 64, 64) float in [0, 1] -> (B, 8, 8) int64
    frames = tok.decode(tokens)          # -> (B, 3, 64, 64) float in [0, 1]
    tok.codebook_size, tok.grid          # 128, (8, 8)

Shapes: B batch, H = W = 64 pixels, P patch (tile) side, h = H / P, w = W / P token grid, D latent
channels, K codebook size, k tile kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset

from hitchhiker.masks.quantizers import EMAVectorQuantizer, FiniteScalarQuantizer
from hitchhiker.train import train, train_config_of
from hitchhiker.world.dataset import LEARNING_WORLD, FrameDataset, frames_to_tensor, record
from hitchhiker.world.reader import read_tiles
from hitchhiker.world.tiles import NUM_KINDS, TILE_NAMES


@dataclass
class Config:
    """The tokenizer recipe: architecture, quantizer, data and training, per preset."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"hidden": 64, "episodes": 2, "episode_steps": 24, "test_episodes": 1,
                  "test_steps": 24, "steps": 40, "batch_size": 16, "warmup_steps": 4,
                  "dead_after": 10, "vq_warmup": 10},
        "cpu": {"episodes": 48, "episode_steps": 128, "test_episodes": 16, "test_steps": 128,
                "steps": 3000, "batch_size": 32},
        "gpu": {"hidden": 256, "episodes": 96, "episode_steps": 128, "test_episodes": 32,
                "test_steps": 128, "steps": 6000, "batch_size": 64},
        "large": {"hidden": 256, "episodes": 192, "episode_steps": 128, "test_episodes": 32,
                  "test_steps": 128, "steps": 10000, "batch_size": 128},
    }  # fmt: skip

    image_size: int = 64
    """Side of the square input frame, in pixels."""
    patch: int = 8
    """Side of the pixel patch one token stands for (8: one token per world tile, an 8x8 grid)."""
    hidden: int = 128
    """Channels of the per-patch encoder and decoder MLPs."""
    quantizer: str = "vq"
    """"vq" (EMA codebook with dead-code restarts) or "fsq" (finite scalar quantisation)."""
    codebook_size: int = 128
    """VQ: number of codes K (FSQ's size is prod(fsq_levels)). The world draws ~150 distinct tile
    pictures, many differing by a few pixels (the explorer's heading). Measured at the cpu preset on
    held-out views: 64 codes keep tile accuracy 1.0 but the heading read back from decoded views
    only 52% of the time (headings share codes); 128 codes with ``explorer_weight`` 16 keep the
    heading 99.0% with 84% of codes in use; 256 codes reach 100% but leave 46% of codes unused."""
    latent_dim: int = 16
    """VQ: dimension of a code vector (FSQ uses len(fsq_levels) channels)."""
    fsq_levels: tuple[int, ...] = (8, 5, 5)
    """FSQ: levels per latent channel; the implicit codebook has prod(levels) = 200 codes."""
    commitment: float = 0.25
    """VQ: weight beta of the commitment loss ||z - sg(e)||^2."""
    ema_decay: float = 0.99
    """VQ: decay gamma of the codebook's moving averages."""
    dead_after: int = 100
    """VQ: a code unused for this many training steps is restarted on a recent encoder output."""
    explorer_weight: float = 16.0
    """Weight of the explorer's tile (the centre cell of the view) in the reconstruction loss. Its
    four headings differ by a few pixels on 1/64 of the frame, so at weight 1 the encoder barely
    separates them and the codebook merges them -- yet the heading is what Stage II's captions
    ("facing north") and Stage III's actions turn on."""
    latent_noise: float = 0.1
    """VQ warm-up: std of Gaussian noise added to the (unit) latents, so the decoder must tolerate
    small moves and the encoder learns to place different tiles far apart (robust codes)."""
    vq_warmup: int = 200
    """VQ: train as a plain autoencoder for this many steps, then seed the codebook (k-means++)
    from encoder outputs that already tell the tiles apart."""
    policies: tuple[str, ...] = ("random", "explorer")
    """Behaviour policies that record the frames (random covers sheep and odd headings, explorer
    covers more ground)."""
    episodes: int = 48
    """Training episodes recorded per policy (train split)."""
    episode_steps: int = 128
    """Steps per recorded episode (each gives steps + 1 frames)."""
    test_episodes: int = 16
    """Held-out episodes per policy for :func:`evaluate` (test split)."""
    test_steps: int = 128
    """Steps per held-out episode."""
    steps: int = 3000
    """Optimizer steps."""
    batch_size: int = 32
    """Frames per step (each gives (image_size / patch)^2 latent vectors to the codebook)."""
    lr: float = 2e-3
    """Peak AdamW learning rate."""
    warmup_steps: int = 100
    """Linear warmup steps."""
    seed: int = 0
    """Seed of initialisation and data order."""
    device: str | None = None
    """Device to train on (None: the best available)."""

    def __post_init__(self):
        if self.quantizer not in ("vq", "fsq"):
            raise ValueError(f"Config.quantizer must be 'vq' or 'fsq', got {self.quantizer!r}")
        if self.patch < 1 or self.image_size % self.patch:
            raise ValueError(
                f"image_size ({self.image_size}) must be a positive multiple of patch "
                f"({self.patch})"
            )


class Tokenizer(nn.Module):
    """Per-patch encoder -> quantizer (VQ or FSQ) -> per-patch decoder."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        p, c = cfg.patch, cfg.hidden
        if cfg.quantizer == "vq":
            self.quantizer = EMAVectorQuantizer(
                cfg.codebook_size, cfg.latent_dim, cfg.ema_decay, cfg.commitment, cfg.dead_after
            )
        else:
            self.quantizer = FiniteScalarQuantizer(cfg.fsq_levels)
        d = self.quantizer.dim
        # A patch-sized, patch-strided conv is a linear map of each tile; 1x1 convs are an MLP on it.
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c, p, stride=p),
            nn.GELU(),
            nn.Conv2d(c, c, 1),
            nn.GELU(),
            nn.Conv2d(c, d, 1),
        )
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.int64))
        self.decoder = nn.Sequential(
            nn.Conv2d(d, c, 1),
            nn.GELU(),
            nn.Conv2d(c, c, 1),
            nn.GELU(),
            nn.ConvTranspose2d(c, 3, p, stride=p),
        )

    # ----------------------------------------------------------------------------- the public API

    @property
    def codebook_size(self) -> int:
        """Number of distinct token ids, K."""
        return self.quantizer.codebook_size

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the token grid."""
        side = self.cfg.image_size // self.cfg.patch
        return (side, side)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check_frames(self, frames: Any) -> torch.Tensor:
        if not torch.is_tensor(frames):
            raise TypeError(
                f"frames must be a torch tensor (B, 3, H, W), got {type(frames).__name__}"
            )
        s = self.cfg.image_size
        if frames.ndim != 4 or tuple(frames.shape[1:]) != (3, s, s):
            raise ValueError(f"frames must have shape (B, 3, {s}, {s}), got {tuple(frames.shape)}")
        if not frames.is_floating_point():
            raise TypeError(
                f"frames must be float in [0, 1], got dtype {frames.dtype} (divide uint8 by 255)"
            )
        return frames.to(self.device, torch.float32)

    def _check_tokens(self, tokens: Any) -> torch.Tensor:
        if not torch.is_tensor(tokens):
            raise TypeError(f"tokens must be a torch tensor (B, h, w), got {type(tokens).__name__}")
        if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
            raise TypeError(f"tokens must be an integer tensor, got dtype {tokens.dtype}")
        if tokens.ndim != 3 or tuple(tokens.shape[1:]) != self.grid:
            raise ValueError(f"tokens must have shape (B, {self.grid[0]}, {self.grid[1]}), "
                             f"got {tuple(tokens.shape)}")  # fmt: skip
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.codebook_size):
            raise ValueError(
                f"token ids must lie in [0, {self.codebook_size}), got values in "
                f"[{int(tokens.min())}, {int(tokens.max())}]"
            )
        return tokens.to(self.device, torch.int64)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, 3, H, W) float in [0, 1] -> tokens (B, h, w) int64, on the model's device."""
        return self.quantizer.indices(self.encode_latents(self._check_frames(frames)))

    def encode_latents(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (B, 3, H, W) in [0, 1] -> continuous latents (B, D, h, w), before quantising."""
        # A centred input gives signed features from the first step: learning is several times faster.
        return self.encoder(2 * x - 1)

    def decode_latents(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantised latents (B, D, h, w) -> frames (B, 3, h P, w P) in [0, 1]."""
        return torch.sigmoid(self.decoder(z_q))

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, h, w) -> frames (B, 3, H, W) float in [0, 1]."""
        return self.decode_latents(self.quantizer.embed(self._check_tokens(tokens)))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(reconstruction (B, 3, H, W), loss terms): "loss" = "recon" + "commit", plus statistics
        ("perplexity" of the codes used, "usage" = share of codes used in this batch)."""
        x = self._check_frames(frames)
        z = self.encode_latents(x)
        warming = (
            self.training and self.cfg.quantizer == "vq" and self.steps_done < self.cfg.vq_warmup
        )
        if warming:
            # Quantising random features from step 0 collapses the codebook onto a few codes; an
            # autoencoder first learns features that separate the tiles, then codes are seeded.
            z_q, zero = self.quantizer.bypass(z), z.new_zeros((), dtype=torch.float32)
            z_q = z_q + self.cfg.latent_noise * torch.randn_like(z_q)
            terms = {"commit": zero, "perplexity": zero, "usage": zero}
        else:
            z_q, _, terms = self.quantizer(z)
        if self.training:
            self.steps_done += 1
        recon = self.decode_latents(z_q)
        terms["recon"] = (self.pixel_weights(x) * (recon.float() - x) ** 2).mean()
        terms["loss"] = terms["recon"] + terms["commit"]
        return recon, terms

    def pixel_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(1, 1, H, W) loss weights: ``explorer_weight`` on the centre tile, 1 elsewhere, with
        mean 1 (so the loss keeps the scale of a plain MSE)."""
        p, (h, w) = self.cfg.patch, self.grid
        weights = torch.ones(1, 1, h * p, w * p, device=x.device)
        centre = (slice(None), slice(None), slice(h // 2 * p, (h // 2 + 1) * p))
        weights[centre + (slice(w // 2 * p, (w // 2 + 1) * p),)] = self.cfg.explorer_weight
        return weights / weights.mean()

    def code_pictures(self) -> torch.Tensor:
        """(K, 3, P, P): what each code paints, decoded alone."""
        ids = torch.arange(self.codebook_size, device=self.device)
        with torch.no_grad():
            return self.decode_latents(self.quantizer.embed(ids[:, None, None]))


# --------------------------------------------------------------------------------- the recipe


def build(cfg: Config) -> Tokenizer:
    """The untrained tokenizer."""
    return Tokenizer(cfg)


def frames_of(cfg: Config, split: str, progress: bool = False) -> FrameDataset | ConcatDataset:
    """The recorded views of ``split`` (train: cfg.episodes, else cfg.test_episodes per policy)."""
    episodes, steps = (
        (cfg.episodes, cfg.episode_steps)
        if split == "train"
        else (cfg.test_episodes, cfg.test_steps)
    )
    sets = [
        FrameDataset(record(split, episodes, steps, pol, world=LEARNING_WORLD, progress=progress))
        for pol in cfg.policies
    ]
    return sets[0] if len(sets) == 1 else ConcatDataset(sets)


def _arrays(data) -> tuple[np.ndarray, np.ndarray]:
    """(frames (N, H, W, 3) uint8, tiles (N, R, C)) of a FrameDataset or a ConcatDataset of them."""
    parts = data.datasets if isinstance(data, ConcatDataset) else [data]
    return np.concatenate([d.frames for d in parts]), np.concatenate([d.tiles for d in parts])


def loss_fn(model: Tokenizer, batch: dict[str, torch.Tensor]):
    _, terms = model(batch["frame"])
    return terms["loss"], {k: v.detach() for k, v in terms.items() if k != "loss"}


def fit(cfg: Config, run_dir: str | Path | None = None, progress: bool = True) -> Tokenizer:
    """Record the train split and train a tokenizer on its views."""
    data = frames_of(cfg, "train", progress)
    model = build(cfg)
    # a per-tile autoencoder that must memorise exact pictures: no weight decay
    tcfg = train_config_of(cfg, weight_decay=0.0, log_every=50, checkpoint_every=0)
    return train(model, data, loss_fn, tcfg, run_dir, progress=progress).model


@torch.no_grad()
def reconstruct(
    model: Tokenizer, frames: np.ndarray, batch: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames (N, H, W, 3) -> (tokens (N, h, w), reconstructions (N, 3, H, W)) on the CPU."""
    model.eval()
    tokens, recons = [], []
    for i in range(0, len(frames), batch):
        t = model.encode(frames_to_tensor(frames[i : i + batch]).to(model.device))
        tokens.append(t.cpu())
        recons.append(model.decode(t).cpu())
    return torch.cat(tokens), torch.cat(recons)


def evaluate(model: Tokenizer, cfg: Config) -> dict[str, float]:
    """Held-out figures: reconstruction PSNR, tile accuracy of reconstructions, codebook usage."""
    from hitchhiker.metrics import psnr, tile_accuracy

    frames, tiles = _arrays(frames_of(cfg, "test"))
    tokens, recon = reconstruct(model, frames)
    counts = torch.bincount(tokens.flatten(), minlength=model.codebook_size)
    p = counts.double() / counts.sum()
    headings = np.concatenate(
        [
            record("test", cfg.test_episodes, cfg.test_steps, pol, world=LEARNING_WORLD).headings
            for pol in cfg.policies
        ],
        axis=None,
    )
    return {
        "stage1.tokenizer.psnr": psnr(recon, frames_to_tensor(frames)),
        "stage1.tokenizer.tile_accuracy": tile_accuracy(recon, tiles),
        "stage1.tokenizer.heading_accuracy": float((read_tiles(recon).heading == headings).mean()),
        "stage1.tokenizer.codebook_usage": float((counts > 0).double().mean()),
        "stage1.tokenizer.perplexity": float(torch.exp(-(p * torch.log(p + 1e-12)).sum())),
    }


# ------------------------------------------------------------------- looking inside (notebook 02)


def _frames_tensor(frames) -> torch.Tensor:
    """uint8 (N, H, W, 3) numpy or float (N, 3, H, W) torch -> float (N, 3, H, W)."""
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"numpy frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}"
            )
        return frames_to_tensor(frames)
    if torch.is_tensor(frames):
        return frames
    raise TypeError(f"frames must be a numpy array or torch tensor, got {type(frames).__name__}")


@torch.no_grad()
def code_usage(model: Tokenizer, frames, batch: int = 256) -> np.ndarray:
    """(K,) int64: how many times each code is used on ``frames`` (uint8 NHWC or float NCHW)."""
    x = _frames_tensor(frames)
    counts = torch.zeros(model.codebook_size, dtype=torch.int64)
    for i in range(0, len(x), batch):
        t = model.encode(x[i : i + batch]).cpu()
        counts += torch.bincount(t.flatten(), minlength=model.codebook_size)
    return counts.numpy()


@torch.no_grad()
def code_meaning(model: Tokenizer, frames, tiles, batch: int = 256) -> np.ndarray:
    """(K, num_kinds) int64: how often each code sits on each tile kind (the true ``tiles``).

    With one token per tile this is a contingency table; a finer grid (patch < tile) repeats each
    tile's kind over the tokens inside it.
    """
    x = _frames_tensor(frames)
    tiles = torch.as_tensor(np.asarray(tiles), dtype=torch.int64)
    if tiles.ndim != 3 or len(tiles) != len(x):
        raise ValueError(f"tiles must be (N={len(x)}, R, C), got {tuple(tiles.shape)}")
    h, w = model.grid
    if h % tiles.shape[1] or w % tiles.shape[2]:
        raise ValueError(
            f"token grid {model.grid} is not a multiple of tile grid {tiles.shape[1:]}"
        )
    tiles = tiles.repeat_interleave(h // tiles.shape[1], 1).repeat_interleave(
        w // tiles.shape[2], 2
    )
    if tiles.min() < 0 or tiles.max() >= NUM_KINDS:
        raise ValueError(
            f"tile kinds must lie in [0, {NUM_KINDS}), got [{tiles.min()}, {tiles.max()}]"
        )
    counts = torch.zeros(model.codebook_size * NUM_KINDS, dtype=torch.int64)
    for i in range(0, len(x), batch):
        t = model.encode(x[i : i + batch]).cpu()
        pair = t.flatten() * NUM_KINDS + tiles[i : i + batch].flatten()
        counts += torch.bincount(pair, minlength=len(counts))
    return counts.view(model.codebook_size, NUM_KINDS).numpy()


def show_codebook(model: Tokenizer, usage: np.ndarray | None = None, cols: int = 16):
    """Every code's picture in a grid (unused codes dimmed when ``usage`` is given)."""
    import matplotlib.pyplot as plt

    pics = model.code_pictures().cpu().movedim(1, -1).numpy()  # (K, P, P, 3)
    if usage is not None:
        pics = np.where((np.asarray(usage) > 0)[:, None, None, None], pics, 0.15 + 0.2 * pics)
    k, p = len(pics), pics.shape[1]
    rows = -(-k // cols)
    sheet = np.ones((rows * (p + 1) + 1, cols * (p + 1) + 1, 3))
    for i, pic in enumerate(pics):
        r, c = divmod(i, cols)
        sheet[1 + r * (p + 1) : 1 + r * (p + 1) + p, 1 + c * (p + 1) : 1 + c * (p + 1) + p] = pic
    fig, ax = plt.subplots(figsize=(cols * 0.4, rows * 0.4 + 0.4))
    ax.imshow(sheet, interpolation="nearest")
    ax.set_title(f"the {k} codes, decoded alone" + (" (dim: unused)" if usage is not None else ""))
    ax.axis("off")
    fig.tight_layout()
    return fig


def plot_code_usage(counts: np.ndarray, ax=None):
    """Bar chart of code counts, most used first, with the share of codes in use."""
    import matplotlib.pyplot as plt

    counts = np.asarray(counts)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.6))
    ax.bar(np.arange(len(counts)), np.sort(counts)[::-1], width=1.0)
    ax.set_yscale("log")
    ax.set_xlabel("codes, most used first")
    ax.set_ylabel("uses")
    ax.set_title(f"codebook usage: {(counts > 0).mean():.0%} of {len(counts)} codes in use")
    return ax.figure


def plot_code_meaning(meaning: np.ndarray, ax=None, top: int = 48):
    """Heat map of P(kind | code) for the ``top`` most used codes: one bright cell per row means
    the code stands for one kind of ground."""
    import matplotlib.pyplot as plt

    meaning = np.asarray(meaning)
    used = meaning.sum(1)
    order = np.argsort(-used)[: min(top, int((used > 0).sum()))]
    share = meaning[order] / used[order, None]
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 0.12 * len(order) + 1.2))
    ax.imshow(share, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(TILE_NAMES)), TILE_NAMES, rotation=60, fontsize=8)
    ax.set_yticks(range(len(order)), [str(i) for i in order], fontsize=6)
    ax.set_ylabel("code (most used first)")
    ax.set_title("P(tile kind | code)")
    return ax.figure


__all__ = [
    "Config",
    "Tokenizer",
    "build",
    "code_meaning",
    "code_usage",
    "evaluate",
    "fit",
    "plot_code_meaning",
    "plot_code_usage",
    "reconstruct",
    "show_codebook",
]
