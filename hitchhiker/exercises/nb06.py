"""Notebook 06's implement-and-check exercise: warp a remembered frame into the view being drawn.

A frame stored at pose ``p_m`` and read for the view at pose ``p`` shows, at its cell (r, c), the
map cell that the new view shows at (r, c) + (p_m - p). In a tile world that relative pose is exact,
so a memory frame is *moved* into the new view before the model reads it (WorldMem and
Context-as-Memory give the model the relative pose instead and let it learn the move):

    warped[r, c] = stored[r - dr, c - dc]   where (dr, dc) = p_m - p,

if that source cell lies inside the stored view and is worth reading (``known``), else [MASK].

The reference is the package's :func:`~hitchhiker.memory.memory_dynamics_model.warp_memory` (the
function the memory engine calls every frame) on one frame. Cases: random 8 x 8 token grids,
offsets from "the same view" to "no overlap at all", random known cells.

Shapes: h x w token grid (8 x 8); offsets (2,) ints in tiles.
"""

from __future__ import annotations

import numpy as np
import torch

from hitchhiker.exercises import Exercise, register
from hitchhiker.memory.memory_dynamics_model import warp_memory


def package_warp(stored: np.ndarray, offset: tuple, known: np.ndarray, mask_id: int) -> np.ndarray:
    """``warp_memory`` on one frame: (h, w) ids in, (h, w) ids out (``mask_id`` where unknown)."""
    h, w = stored.shape
    got = warp_memory(
        torch.as_tensor(stored)[None, None],
        torch.as_tensor(np.asarray(offset))[None, None],
        torch.ones(1, 1, dtype=torch.long),
        torch.as_tensor(known)[None, None],
        (h, w),
        mask_id,
    )
    return got.tokens.view(h, w).numpy()


def _cases(g: torch.Generator) -> list[tuple]:
    """(stored, offset, known, mask_id) for offsets near and far, known cells mostly True."""
    out = []
    for dr, dc in [(0, 0), (0, 3), (-2, 1), (5, -4), (-7, -7), (8, 0)]:
        stored = torch.randint(0, 64, (8, 8), generator=g).numpy()
        known = (torch.rand(8, 8, generator=g) < 0.8).numpy()
        out.append((stored, (dr, dc), known, 64))
    return out


WARP = register(
    Exercise(
        name="06.warp",
        task=(
            "Return the stored (h, w) token frame moved into the new view: cell (r, c) gets "
            "stored[r - dr, c - dc] for offset (dr, dc) = stored pose minus new pose, when that "
            "cell lies inside the stored frame and is known; mask_id everywhere else."
        ),
        reference=package_warp,
        cases=_cases,
        hint=(
            "build the source row r - dr and column c - dc for every target cell; keep a cell "
            "only where 0 <= row < h, 0 <= col < w and known[row, col]. With offset (0, 0) the "
            "answer is the stored frame wherever it is known; with (8, 0) nothing overlaps."
        ),
        notes={"equation": "warped[r, c] = stored[r - dr, c - dc]"},
    )
)
