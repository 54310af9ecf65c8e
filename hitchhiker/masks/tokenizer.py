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

This module holds the model and the tools to look inside it (:func:`code_usage`,
:func:`code_meaning`; their pictures are in :mod:`.show_tokens`). The recipe that trains and scores
it (Config with presets, build, fit, evaluate) is :mod:`.tokenizer_recipe`.

Shapes: B batch, H = W = 64 pixels, P patch (tile) side, h = H / P, w = W / P token grid, D latent
channels, K codebook size, k tile kinds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from hitchhiker.masks.quantizers import EMAVectorQuantizer, FiniteScalarQuantizer
from hitchhiker.world.dataset import frames_to_tensor
from hitchhiker.world.tiles import NUM_KINDS


class Tokenizer(nn.Module):
    """Per-patch encoder -> quantizer (VQ or FSQ) -> per-patch decoder."""

    def __init__(self, cfg):
        """``cfg``: the recipe's :class:`~hitchhiker.masks.tokenizer_recipe.Config`."""
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


__all__ = ["Tokenizer", "code_meaning", "code_usage", "reconstruct"]
