"""Pictures for notebook 02: token grids decoded step by step, speed and tile-kind bar charts.

Everything here draws; nothing trains. A token grid still holding [MASK] tokens is decoded by
painting its known tokens and greying out the cells still masked, so MaskGIT's parallel steps and
an inpainting region can be watched as pictures.

Shapes: S steps, B batch, h x w token grid, P = 64 / h pixels per token cell.
"""

from __future__ import annotations

import numpy as np
import torch

from hitchhiker.masks.maskgit import decode_tokens, kind_frequencies
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
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

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
