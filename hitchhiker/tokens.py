"""Tokens of the world: the bridge between the image tokenizer and every token model.

MaskGIT and its autoregressive baseline here, the unified model of Stage II and the dynamics of
Stage III all learn on *token grids*, not pixels. This module turns recorded views into token grids
once (and keeps them in memory: re-encoding every step would cost more than training), decodes
sampled grids back into frames, and scores those frames with the world's ground-truth reader:
how many tiles are read confidently, and how far the tile-kind frequencies of samples lie from
those of real views (total variation, TV = 1/2 * sum_k |p_k - q_k|).

Shapes: F frames, B batch, h x w token grid, K tile kinds; frames are uint8 (F, 64, 64, 3).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from hitchhiker.devices import device_of
from hitchhiker.recipe import Deps, Need, tokenizer_need
from hitchhiker.world import NUM_KINDS, read_tiles, tile_textures
from hitchhiker.world.dataset import LEARNING_WORLD, frames_to_tensor, record
from hitchhiker.world.reader import CONFIDENT


class OracleTokenizer(nn.Module):
    """A stand-in tokenizer that cheats: token = the tile kind the ground-truth reader sees.

    encode (B, 3, 64, 64) -> (B, 8, 8) kinds; decode paints the first texture of each kind. It
    drops sheep, the explorer and texture variants, so it is no substitute for a learned tokenizer;
    the tests use it to exercise MaskGIT without training one.
    """

    codebook_size = NUM_KINDS
    grid = (8, 8)

    def __init__(self):
        super().__init__()
        tex = torch.from_numpy(np.ascontiguousarray(tile_textures(8)[:, 0])).float() / 255
        self.register_buffer("textures", tex.permute(0, 3, 1, 2).contiguous())  # (K, 3, 8, 8)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(read_tiles(frames.detach().cpu()).kinds).to(frames.device)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        b, h, w = tokens.shape
        cells = self.textures[tokens]  # (B, h, w, 3, 8, 8)
        return cells.permute(0, 3, 1, 4, 2, 5).reshape(b, 3, h * 8, w * 8)


def token_grid(tokenizer) -> tuple[int, int]:
    """(h, w) of a tokenizer's grid, whether it says ``grid = 8`` or ``grid = (8, 8)``."""
    g = tokenizer.grid
    return (int(g), int(g)) if np.ndim(g) == 0 else (int(g[0]), int(g[1]))


@torch.inference_mode()
def encode_frames(tokenizer, frames: np.ndarray, batch: int = 256) -> torch.Tensor:
    """uint8 frames (F, 64, 64, 3) -> token grids (F, h, w) int64 on the CPU, in chunks."""
    device = device_of(tokenizer)
    out = [
        tokenizer.encode(frames_to_tensor(frames[i : i + batch]).to(device)).long().cpu()
        for i in range(0, len(frames), batch)
    ]
    return torch.cat(out)


@torch.inference_mode()
def decode_tokens(tokenizer, tokens: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Token grids (B, h, w) -> uint8 frames (B, 64, 64, 3), ready for the reader and plots."""
    device = device_of(tokenizer)
    parts = []
    for i in range(0, len(tokens), batch):
        x = tokenizer.decode(tokens[i : i + batch].to(device)).float().clamp(0, 1)
        parts.append((x * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(parts)


class TokenDataset(Dataset):
    """Token grids encoded once and kept in memory. Item: {"tokens": (h, w) int64}."""

    def __init__(self, tokens: torch.Tensor):
        self.tokens = tokens

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"tokens": self.tokens[i]}


@dataclass
class TokenGrid:
    """What a token model knows of the tokenizer it reads (nested as ``cfg.tokens``).

    The zoo fills it from the tokenizer it hands the recipe (:meth:`of`), so a token model's config
    is complete when it is built, and the model's file records which tokenizer it learned on.
    """

    vocab_size: int = 0
    """Codebook size V of the tokenizer (0: not bound to a tokenizer yet)."""
    grid_h: int = 0
    """Token rows h of one frame."""
    grid_w: int = 0
    """Token columns w of one frame."""
    sha256: str = ""
    """Fingerprint (file sha256) of the shipped tokenizer the model learned on; "" for a stand-in
    or a tokenizer trained on the fly."""

    @classmethod
    def of(cls, tokenizer) -> TokenGrid:
        """The binding of ``tokenizer`` (its sha256 when the zoo loaded it from a shipped file)."""
        h, w = token_grid(tokenizer)
        sha = getattr(tokenizer, "shipped_sha256", "")
        return cls(int(tokenizer.codebook_size), h, w, sha)

    def require(self, who: str) -> None:
        """Raise unless bound: a model cannot be built before its vocabulary and grid are known."""
        if self.vocab_size < 1 or self.grid_h < 1 or self.grid_w < 1:
            raise ValueError(
                f"{who} has no tokenizer bound (tokens={self}): build the config with "
                "hitchhiker.zoo.config_for(name, preset), which binds the tokenizer it hands the "
                "recipe, or pass tokens=TokenGrid.of(tokenizer)"
            )

    def check(self, tokenizer, who: str) -> None:
        """Raise when ``tokenizer`` is not the one this model reads; warn when the shipped one was
        retrained since (same shape, other weights)."""
        given = TokenGrid.of(tokenizer)
        if (given.vocab_size, given.grid_h, given.grid_w) != (
            self.vocab_size,
            self.grid_h,
            self.grid_w,
        ):
            raise ValueError(
                f"{who} reads {self.vocab_size}-code {self.grid_h}x{self.grid_w} token grids; the "
                f"tokenizer given makes {given.vocab_size}-code {given.grid_h}x{given.grid_w} grids"
            )
        if self.sha256 and given.sha256 and self.sha256 != given.sha256:
            warnings.warn(
                f"the shipped tokenizer changed since {who} was trained (sha256 "
                f"{self.sha256[:12]} then, {given.sha256[:12]} now): retrain it",
                stacklevel=2,
            )


def tokenizer_needs(values: dict[str, Any]) -> dict[str, Need]:
    """A token model's ``needs`` (:mod:`hitchhiker.recipe`): the tokenizer its ``tokenizer``
    setting names ("shipped", "oracle", or a preset to train one at)."""
    return {"tokenizer": tokenizer_need(values["tokenizer"])}


def same_tokens_need(model: str, values: dict[str, Any]) -> Need:
    """A model this token model builds on, read off the same tokens: the shipped one with the
    shipped tokenizer; else (tests and smoke runs) one fitted at smoke size on the same stand-in."""
    if values["tokenizer"] == "shipped":
        return Need(model)
    return Need(model, "smoke", (("tokenizer", values["tokenizer"]),))


def bind_tokens(values: dict[str, Any], deps: Deps) -> dict[str, Any]:
    """A token model's ``bind``: the vocabulary, grid and fingerprint of the tokenizer handed in."""
    return {"tokens": TokenGrid.of(deps["tokenizer"])}


def world_tokens(data, split: str, tokenizer) -> tuple[torch.Tensor, np.ndarray]:
    """(token grids (F, h, w), true tile grids (F, R, C)) of a recorded split, encoded once.

    ``data`` is a recipe's :class:`~hitchhiker.world.dataset.DataConfig`: ``episodes`` of the
    train split, ``eval_episodes`` of any other, each ``episode_steps`` long."""
    episodes = data.episodes if split == "train" else data.eval_episodes
    rec = record(split, episodes, data.episode_steps, data.policy, world=LEARNING_WORLD)
    frames = rec.frames.reshape(-1, *rec.frames.shape[2:])
    return encode_frames(tokenizer, frames), rec.tiles.reshape(-1, *rec.tiles.shape[2:])


def round_trip_accuracy(tokenizer, tokens: torch.Tensor, tiles: np.ndarray) -> float:
    """Tile accuracy of views decoded from their own tokens: the ceiling for any token model."""
    return float((read_tiles(decode_tokens(tokenizer, tokens)).kinds == tiles).mean())


def check_tokenizer(tokenizer, tokens: torch.Tensor, tiles: np.ndarray, floor: float = 0.9):
    """Warn when the tokenizer's own reconstructions lose tiles: a token model trained on such
    tokens learns the tokenizer's mistakes."""
    acc = round_trip_accuracy(tokenizer, tokens, tiles)
    if acc < floor:
        warnings.warn(
            f"the tokenizer round-trips only {acc:.1%} of tiles (expected >= {floor:.0%}): "
            "fix or retrain it before training a token model on it",
            stacklevel=2,
        )
    return acc


def kind_frequencies(tiles: np.ndarray) -> np.ndarray:
    """Share of each tile kind among all cells of tile grids (..., R, C): (NUM_KINDS,)."""
    counts = np.bincount(np.asarray(tiles).reshape(-1), minlength=NUM_KINDS)
    return counts / max(1, counts.sum())


def sample_quality(frames: np.ndarray, real_tiles: np.ndarray) -> dict[str, float]:
    """Read generated frames: confident share, and total variation of tile-kind frequencies.

    TV(p, q) = 1/2 sum_k |p_k - q_k|: 0 when samples show each kind as often as real views do.
    """
    reading = read_tiles(frames)
    p, q = kind_frequencies(reading.kinds), kind_frequencies(real_tiles)
    return {
        "confident_share": float((reading.confidence >= CONFIDENT).mean()),
        "kind_tv": float(0.5 * np.abs(p - q).sum()),
    }


def seconds_per_image(
    sample: Callable[[int], Any], batch: int, repeats: int = 3, threads: int = 0
) -> float:
    """Median wall time of ``sample(batch)`` divided by ``batch``, after one warm-up call.

    ``threads`` > 0 runs the CPU side on that many threads (restored afterwards): on a shared
    machine one thread gives steadier numbers than threads that wait for each other.
    """
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            sample(batch)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = sample(batch)
                if torch.is_tensor(out) and out.device.type == "cuda":
                    torch.cuda.synchronize(out.device)
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return float(np.median(times)) / batch
