"""Pictures of the world for the notebooks: frames, the tile atlas, maps with trajectories, readings.

Notebooks carry the story and the package carries the logic, so the plotting lives here and a
notebook cell stays one line: ``show_map(env, path=positions)``. Every function draws with
matplotlib, returns the figure, and never changes the world.

Shapes: frames (N, H, W, 3) uint8; positions (T, 2) (row, col) map tiles; R x C view tiles.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .reader import TileReading
from .tiles import TILE_NAMES, tile_textures


def show_frames(frames, titles=None, cols: int = 8, size: float = 1.8, suptitle: str | None = None):
    """A grid of frames (pixels shown as squares, no smoothing)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    n = len(frames)
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(frames[i], interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_tiles(tile_px: int = 8, size: float = 0.9):
    """The tile atlas: every kind (rows) in each of its texture variants (columns)."""
    tex = tile_textures(tile_px)  # (K, V, P, P, 3)
    k, v = tex.shape[:2]
    fig, axes = plt.subplots(k, v, figsize=(size * v + 1.2, size * k), squeeze=False)
    for i in range(k):
        for j in range(v):
            ax = axes[i, j]
            ax.imshow(tex[i, j], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(
            f"{i} {TILE_NAMES[i]}", rotation=0, ha="right", va="center", fontsize=9
        )
    fig.suptitle("tile kinds × texture variants", fontsize=10)
    fig.tight_layout()
    return fig


def show_map(env, path=None, marks: dict | None = None, scale: int = 4, ax=None, title: str = ""):
    """The whole current map, optionally with a trajectory ``path`` (T, 2) and labelled ``marks``.

    ``marks`` maps a label to a (row, col) tile, e.g. ``{"start": (48, 50)}``.
    """
    img = env.render_map(scale=scale)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(img, interpolation="nearest")
    centre = lambda rc: (np.asarray(rc, dtype=float) + 0.5) * scale  # tile -> pixel centre
    if path is not None and len(path):
        p = centre(np.asarray(path))
        ax.plot(p[:, 1], p[:, 0], "-", color="crimson", lw=1.5, alpha=0.9)
        ax.plot(p[0, 1], p[0, 0], "o", color="white", mec="black", ms=6)
        ax.plot(p[-1, 1], p[-1, 0], "s", color="crimson", mec="black", ms=6)
    for label, rc in (marks or {}).items():
        y, x = centre(rc)
        ax.plot(x, y, "*", color="gold", mec="black", ms=12)
        ax.annotate(
            label,
            (x, y),
            xytext=(6, 6),
            textcoords="offset points",
            color="white",
            fontsize=9,
            bbox=dict(boxstyle="round", fc="black", alpha=0.6),
        )
    ax.set_title(title or f"map seed {env.map_seed}")
    ax.axis("off")
    return ax.figure


def show_reading(frame, reading: TileReading, truth=None):
    """A frame beside what the ground-truth reader read from it (kind initials, low confidence in red).

    With ``truth`` (R, C) given, wrongly read cells are outlined.
    """
    frame = np.asarray(frame)
    kinds = np.asarray(reading.kinds)
    conf = np.asarray(reading.confidence)
    rows, cols = kinds.shape
    p = frame.shape[0] // rows
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 4))
    a.imshow(frame, interpolation="nearest")
    a.set_title("frame")
    b.imshow(frame, interpolation="nearest", alpha=0.35)
    for r in range(rows):
        for c in range(cols):
            colour = "black" if conf[r, c] >= 0.9 else "red"
            label = TILE_NAMES[kinds[r, c]][:2]
            if np.asarray(reading.animals)[r, c]:
                label += "+s"
            b.text(
                c * p + p / 2 - 0.5,
                r * p + p / 2 - 0.5,
                label,
                ha="center",
                va="center",
                fontsize=7,
                color=colour,
            )
            if truth is not None and truth[r, c] != kinds[r, c]:
                b.add_patch(
                    plt.Rectangle((c * p - 0.5, r * p - 0.5), p, p, fill=False, ec="red", lw=2)
                )
    b.set_title("what the reader reads (red: confidence < 0.9)")
    for ax in (a, b):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
