"""Pictures for notebook 02: token grids decoded step by step, speed and tile-kind bar charts, and
the tokenizer's codebook (every code's picture, how often each is used, what each means on the map).

Everything here draws; nothing trains. A token grid still holding [MASK] tokens is decoded by
painting its known tokens and greying out the cells still masked, so MaskGIT's parallel steps and
an inpainting region can be watched as pictures.

Shapes: S steps, B batch, h x w token grid, P = 64 / h pixels per token cell, K codebook size.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from hitchhiker.tokens import decode_tokens, kind_frequencies
from hitchhiker.world import TILE_NAMES

MASK_GREY = 96
"""Grey level (0-255) of cells still holding [MASK]."""


def decode_partial(tokenizer, tokens: torch.Tensor, mask_id: int) -> np.ndarray:
    """Token grids (B, h, w) that may hold ``mask_id`` -> uint8 frames (B, 64, 64, 3), masked cells
    grey."""
    tokens = torch.as_tensor(tokens)
    masked = tokens == mask_id
    frames = decode_tokens(tokenizer, torch.where(masked, torch.zeros_like(tokens), tokens))
    b, h, w = tokens.shape
    p = frames.shape[1] // h
    cell = masked.cpu().numpy().repeat(p, 1).repeat(p, 2)  # (B, 64, 64)
    frames[cell] = MASK_GREY
    return frames


def decode_history(tokenizer, history: list[torch.Tensor], mask_id: int) -> np.ndarray:
    """MaskGIT's per-step grids (S tensors (B, h, w)) -> uint8 frames (S, B, 64, 64, 3)."""
    return np.stack([decode_partial(tokenizer, h, mask_id) for h in history])


def show_steps(frames: np.ndarray, upto: int | None = None, size: float = 1.6):
    """A row per sample, a column per decoding step (frames (S, B, H, W, 3)); steps after ``upto``
    stay blank, so a slider can play the decoding forward."""
    s, b = frames.shape[:2]
    upto = s if upto is None else max(1, min(upto, s))
    fig, axes = plt.subplots(b, s, figsize=(size * s, size * b), squeeze=False)
    for j in range(s):
        for i in range(b):
            ax = axes[i, j]
            ax.axis("off")
            if j < upto:
                ax.imshow(frames[j, i], interpolation="nearest")
        axes[0, j].set_title(f"step {j + 1}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_speed(race: dict[str, float], batches=(1, 16), ax=None):
    """Bars of milliseconds per image for MaskGIT and AR at each batch size (from
    :func:`hitchhiker.masks.autoregressive.speed_comparison`), with the speed-up written on top."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    x = np.arange(len(batches))
    m = [race[f"maskgit_ms_b{b}"] for b in batches]
    a = [race[f"ar_ms_b{b}"] for b in batches]
    ax.bar(x - 0.2, m, 0.4, label="MaskGIT (parallel steps)")
    ax.bar(x + 0.2, a, 0.4, label="autoregressive (KV cache)")
    for i, b in enumerate(batches):
        ax.text(x[i], max(m[i], a[i]) * 1.05, f"{race[f'speedup_b{b}']:.1f}x", ha="center")
    ax.set_xticks(x, [f"batch {b}" for b in batches])
    ax.set_ylabel("ms per image")
    ax.set_ylim(0, max(m + a) * 1.25)
    ax.legend(fontsize=8)
    ax.set_title("sampling time per image")
    return ax.figure


def plot_kind_frequencies(tiles: dict[str, np.ndarray], ax=None):
    """Grouped bars of tile-kind frequencies, one group per kind, one bar per source.

    ``tiles``: source name -> tile grids (..., R, C) (the truth, or what the reader saw).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    width = 0.8 / len(tiles)
    x = np.arange(len(TILE_NAMES))
    for i, (name, grid) in enumerate(tiles.items()):
        ax.bar(x + (i - (len(tiles) - 1) / 2) * width, kind_frequencies(grid), width, label=name)
    ax.set_xticks(x, TILE_NAMES, rotation=30)
    ax.set_ylabel("share of cells")
    ax.legend(fontsize=8)
    ax.set_title("how often each tile kind appears")
    return ax.figure


def show_inpainting(originals, masked, filled, size: float = 1.8):
    """Rows of (original | region masked | regenerated) uint8 frames (B, H, W, 3) each."""
    b = len(originals)
    fig, axes = plt.subplots(b, 3, figsize=(3 * size, b * size), squeeze=False)
    for i in range(b):
        for j, (img, title) in enumerate(
            ((originals, "real view"), (masked, "region masked"), (filled, "MaskGIT's infill"))
        ):
            axes[i, j].imshow(img[i], interpolation="nearest")
            axes[i, j].axis("off")
            if i == 0:
                axes[i, j].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def show_codebook(model, usage: np.ndarray | None = None, cols: int = 16):
    """Every code's picture in a grid (unused codes dimmed when ``usage`` is given)."""
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
