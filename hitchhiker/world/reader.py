"""Ground truth from pixels: read the tile grid back out of any frame, real or generated.

Every picture the world can draw is built from a small, fixed set of tile appearances (all made
from one appearance seed, see :mod:`hitchhiker.world.tiles`):

- every cell but the centre: kind x variant, or a sheep over a walkable kind x variant;
- the centre cell: the explorer over a walkable kind x variant, in each of 4 headings.

So reading a frame is template matching, done for all cells and templates at once with matrix
products. A frame is a templated picture under a per-channel light tint L (the day-night cycle),
``x ~ L * t``. Writing a cell x and template t per channel c (D = P * P pixels each):

    distance(x, t) = ||x - L * t||^2 / (3 D)
                   = (||x||^2 - 2 sum_c L_c <x_c, t_c> + sum_c L_c^2 ||t_c||^2) / (3 D)

Only the dot products <x_c, t_c> depend on both, one batched matmul. When L is unknown it is
estimated: each cell's best per-channel least-squares fit ``s_c = <x_c, t_c> / ||t_c||^2`` gives
one guess of L per cell; the per-channel median over the frame is robust to the odd wrong cell;
then L is refined by one global least-squares fit over the matched templates of all cells.

Confidence is a softmax over kinds of the negative distances, measured in un-tinted units
(distance / mean(L^2)) so that night is not less certain than noon:

    confidence = softmax_k(-d_k / TEMPERATURE)[best kind],  d_k = min over templates of kind k.

Shapes: (...) any batch, H, W frame side in pixels, P tile side, R = H / P, C = W / P cells,
T templates.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .tiles import NUM_KINDS, WALKABLE_KINDS, explorer_tiles, sheep_tiles, tile_textures

TEMPERATURE = 2e-3
"""Softmax temperature of the confidence, in mean-squared [0, 1] colour units (RMS ~ 0.045)."""
CONFIDENT = 0.9
"""A cell is read *confidently* when its confidence is at least this."""
VALID_DISTANCE = 4e-4
"""A cell is *valid* when its best match is closer than this (mean-squared, [0, 1] units; RMS
0.02, about 5 grey levels). Real frames sit below 1e-5 even at night (rounding only); a 3x3 box
blur or noise pushes cells well above it."""
_CHUNK = 256  # frames per batch of matmuls: bounds memory at ~ chunk * R * C * T * 3 floats


@dataclass
class TileReading:
    """What :func:`read_tiles` recovered from a batch of frames."""

    kinds: np.ndarray
    """(..., R, C) int64 tile kind of every cell (the ground under sheep and explorer)."""
    confidence: np.ndarray
    """(..., R, C) float in [0, 1]: softmax probability of the chosen kind."""
    distance: np.ndarray
    """(..., R, C) float: mean squared pixel error ([0, 1] units) of the best template."""
    animals: np.ndarray
    """(..., R, C) bool: a sheep stands in the cell."""
    heading: np.ndarray
    """(...) int64: the explorer's heading read from the centre cell."""
    light: np.ndarray
    """(..., 3) float: the light tint used (estimated unless given)."""


@lru_cache(maxsize=8)
def _templates(tile_px: int):
    """Flattened templates in [0, 1] as (3, D, T) for matmuls, with their labels.

    Returns {"cell": ..., "centre": ...}, each a dict of: t (3, D, T) float32, norm (T, 3)
    squared norms per channel, kind (T,), animal (T,) bool, heading (T,) (-1: no explorer).
    """
    p = tile_px
    tex = tile_textures(p)
    walk = np.array(WALKABLE_KINDS)
    v = tex.shape[1]

    def pack(images, kinds, animal, heading):
        order = np.argsort(kinds, kind="stable")  # kinds in contiguous blocks, for reduceat
        kinds = np.asarray(kinds, dtype=np.int64)[order]
        t = images[order].reshape(len(images), p * p, 3).astype(np.float32) / 255.0
        present, starts = np.unique(kinds, return_index=True)
        return {
            "t": np.ascontiguousarray(t.transpose(2, 1, 0)),
            "norm": (t**2).sum(axis=1),
            "kind": kinds,
            "animal": np.asarray(animal, dtype=bool)[order],
            "heading": np.asarray(heading, dtype=np.int64)[order],
            "present": present,
            "starts": starts,
        }

    plain_kinds = np.repeat(np.arange(NUM_KINDS), v)
    sheep_kinds = np.repeat(walk, v)
    cell = pack(
        np.concatenate([tex.reshape(-1, p, p, 3), sheep_tiles(p)[walk].reshape(-1, p, p, 3)]),
        np.concatenate([plain_kinds, sheep_kinds]),
        np.r_[np.zeros(len(plain_kinds), bool), np.ones(len(sheep_kinds), bool)],
        np.full(len(plain_kinds) + len(sheep_kinds), -1),
    )
    ex = explorer_tiles(p)[walk]  # (Kw, V, 4, P, P, 3)
    centre = pack(
        ex.reshape(-1, p, p, 3),
        np.repeat(walk, v * 4),
        np.zeros(ex.shape[0] * v * 4, bool),
        np.tile(np.arange(4), len(walk) * v),
    )
    return {"cell": cell, "centre": centre}


def _as_frames(frames) -> tuple[np.ndarray, tuple[int, ...]]:
    """Any accepted input -> (N, H, W, 3) uint8 or float array, plus the batch shape (...)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(frames, torch.Tensor):
        if frames.ndim < 3 or frames.shape[-3] != 3:
            raise ValueError(
                f"torch frames must be (..., 3, H, W), got shape {tuple(frames.shape)}"
            )
        is_uint8 = frames.dtype == torch.uint8
        if not (is_uint8 or frames.is_floating_point()):
            raise TypeError(f"torch frames must be uint8 or float, got {frames.dtype}")
        frames = frames.detach().to("cpu")
        frames = (frames if is_uint8 else frames.float()).movedim(-3, -1).numpy()
    elif not isinstance(frames, np.ndarray):
        raise TypeError(
            f"frames must be a numpy array (..., H, W, 3) or a torch tensor (..., 3, H, W), "
            f"got {type(frames).__name__}"
        )
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(f"numpy frames must be (..., H, W, 3), got shape {frames.shape}")
    if np.issubdtype(frames.dtype, np.floating):
        if frames.size and (np.nanmax(frames) > 1.5 or np.nanmin(frames) < -0.5):
            raise ValueError(
                f"float frames must be in [0, 1], got values in "
                f"[{np.nanmin(frames):.3g}, {np.nanmax(frames):.3g}] (pass uint8 for 0-255 pixels)"
            )
    elif frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 or float, got dtype {frames.dtype}")
    batch = frames.shape[:-3]
    return frames.reshape((-1,) + frames.shape[-3:]), batch


def _to_unit_float(x: np.ndarray) -> np.ndarray:
    """uint8 or float frames -> float32 in [0, 1] (done per chunk, so it stays in cache)."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32(1 / 255)
    return np.clip(np.nan_to_num(x.astype(np.float32)), 0.0, 1.0)


def _cells(x: np.ndarray, tile_px: int) -> np.ndarray:
    """(N, H, W, 3) -> (N, R, C, P*P, 3) cells."""
    n, h, w, _ = x.shape
    p = tile_px
    if h % p or w % p or h < p or w < p:
        raise ValueError(f"frame side must be a positive multiple of tile_px={p}, got {h}x{w}")
    r, c = h // p, w // p
    return x.reshape(n, r, p, c, p, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, r, c, p * p, 3)


def _dots(cells: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-channel dot products of cells (M, D, 3) with templates (3, D, T) -> (M, T, 3)."""
    return np.matmul(cells.transpose(2, 0, 1), t).transpose(1, 2, 0)


def _distance(dots, xnorm, norm, light):
    """Mean squared error of every cell to every tinted template: (M, T).

    dots (M, T, 3), xnorm (M,), norm (T, 3), light (M, 3) per cell."""
    cross = np.einsum("mtc,mc->mt", dots, light)
    energy = np.einsum("tc,mc->mt", norm, light**2)
    return xnorm[:, None] - 2 * cross + energy


def _read_chunk(x: np.ndarray, light, tile_px: int):
    n = x.shape[0]
    cells = _cells(_to_unit_float(x), tile_px)
    _, r, c, d, _ = cells.shape
    tpl = _templates(tile_px)
    cr, cc = r // 2, c // 2
    is_centre = np.zeros((r, c), dtype=bool)
    is_centre[cr, cc] = True
    # Two groups of cells, each matched against its own template set.
    groups = {
        "cell": cells[:, ~is_centre].reshape(-1, d, 3),  # (N * (R*C - 1), D, 3)
        "centre": cells[:, cr, cc],  # (N, D, 3)
    }
    per_frame = {"cell": r * c - 1, "centre": 1}
    dots = {g: _dots(v, tpl[g]["t"]) for g, v in groups.items()}
    xnorm = {g: (v**2).sum(axis=(1, 2)) for g, v in groups.items()}

    def expand(frame_light, g):  # (N, 3) -> one row per cell of group g
        return np.repeat(frame_light, per_frame[g], axis=0)

    if light is None:
        # 1) each cell's own best per-channel scale; the median over the frame is robust.
        scales = []
        for g in groups:
            norm = np.maximum(tpl[g]["norm"], np.float32(1e-8))
            residual = xnorm[g][:, None] - (dots[g] ** 2 / norm).sum(-1)  # (M, T)
            best = residual.argmin(axis=1)
            scale = dots[g][np.arange(len(best)), best] / norm[best]
            scales.append(scale.reshape(n, per_frame[g], 3))
        guess = np.clip(np.median(np.concatenate(scales, axis=1), axis=1), 0.02, 2.0)
        # 2) match under the guess, then one global least-squares fit over the matched cells.
        num, den = np.zeros((n, 3), np.float32), np.zeros((n, 3), np.float32)
        for g in groups:
            best = _distance(dots[g], xnorm[g], tpl[g]["norm"], expand(guess, g)).argmin(axis=1)
            rows = np.arange(len(best))
            num += dots[g][rows, best].reshape(n, per_frame[g], 3).sum(axis=1)
            den += tpl[g]["norm"][best].reshape(n, per_frame[g], 3).sum(axis=1)
        light = np.clip(num / np.maximum(den, 1e-8), 0.02, 2.0)
    light = np.asarray(light, dtype=np.float32)

    out = {}
    for g in groups:
        t = tpl[g]
        dist = np.maximum(_distance(dots[g], xnorm[g], t["norm"], expand(light, g)), 0) / (3 * d)
        best = dist.argmin(axis=1)
        rows = np.arange(len(best))
        # Per-kind best distance, in un-tinted units, for the confidence softmax.
        per_kind = np.full((len(best), NUM_KINDS), np.inf, dtype=np.float32)
        per_kind[:, t["present"]] = np.minimum.reduceat(dist, t["starts"], axis=1)
        z = -per_kind / (expand((light**2).mean(axis=1, keepdims=True), g) * TEMPERATURE)
        z -= z.max(axis=1, keepdims=True)
        prob = np.exp(z)
        prob /= prob.sum(axis=1, keepdims=True)
        kind = t["kind"][best]
        out[g] = {
            "kinds": kind,
            "confidence": prob[rows, kind],
            "distance": dist[rows, best],
            "animals": t["animal"][best],
            "heading": t["heading"][best],
        }

    def assemble(field, dtype):
        grid = np.empty((n, r, c), dtype=dtype)
        grid[:, ~is_centre] = out["cell"][field].reshape(n, -1)
        grid[:, cr, cc] = out["centre"][field]
        return grid

    return (
        assemble("kinds", np.int64),
        assemble("confidence", np.float64),
        assemble("distance", np.float64),
        assemble("animals", bool),
        out["centre"]["heading"],
        light,
    )


def read_tiles(frames, light=None, tile_px: int = 8) -> TileReading:
    """Read kinds, sheep, heading and light from frames.

    frames: numpy (..., H, W, 3) uint8 or float in [0, 1], or torch (..., 3, H, W) uint8 or float
    in [0, 1]. light: the known tint, (3,) or (..., 3); None estimates it per frame.
    """
    x, batch = _as_frames(frames)
    n = x.shape[0]
    if light is not None:
        light = np.asarray(light, dtype=np.float64)
        if light.shape[-1:] != (3,):
            raise ValueError(f"light must be (3,) or (..., 3), got shape {light.shape}")
        try:
            light = np.broadcast_to(light, batch + (3,)).reshape(n, 3)
        except ValueError:
            raise ValueError(
                f"light of shape {light.shape} does not fit frames of batch shape {batch}"
            ) from None
    parts = [
        _read_chunk(x[i : i + _CHUNK], None if light is None else light[i : i + _CHUNK], tile_px)
        for i in range(0, n, _CHUNK)
    ]
    kinds, conf, dist, animals, heading, tint = (np.concatenate(f) for f in zip(*parts))
    grid = batch + kinds.shape[1:]
    return TileReading(
        kinds=kinds.reshape(grid),
        confidence=conf.reshape(grid),
        distance=dist.reshape(grid),
        animals=animals.reshape(grid),
        heading=heading.reshape(batch),
        light=tint.reshape(batch + (3,)),
    )


def tile_accuracy(frames, true_tiles, tile_px: int = 8) -> float:
    """Share of cells whose read kind equals `true_tiles` (..., R, C)."""
    kinds = read_tiles(frames, tile_px=tile_px).kinds
    truth = np.asarray(true_tiles)
    if truth.shape != kinds.shape:
        raise ValueError(f"true_tiles must have shape {kinds.shape}, got {truth.shape}")
    return float((kinds == truth).mean())


def _per_frame_share(mask: np.ndarray):
    share = mask.mean(axis=(-2, -1))
    return float(share) if share.ndim == 0 else share


def frame_validity(frames, threshold: float = VALID_DISTANCE, tile_px: int = 8):
    """Share of each frame's cells that match some template within `threshold`.

    Real frames score 1.0; noise, blur or smeared sprites score low. Returns a float for one
    frame, an array of the batch shape otherwise.
    """
    return _per_frame_share(read_tiles(frames, tile_px=tile_px).distance < threshold)


def confident_share(frames, tile_px: int = 8):
    """Share of each frame's cells read with confidence >= CONFIDENT (float or batch array)."""
    return _per_frame_share(read_tiles(frames, tile_px=tile_px).confidence >= CONFIDENT)
