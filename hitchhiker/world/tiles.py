"""What the world is made of, and what each piece looks like.

The world is a grid of tiles. Each tile has a *kind* (water, sand, grass, ...) and, to keep the
pictures from looking stamped, one of ``TEXTURE_VARIANTS`` procedurally painted textures. The
variant of a map cell is a fixed hash of its (row, col) and the map seed, so the picture of a map
is a pure function of its kinds.

Every texture and sprite is painted from one FIXED appearance seed: the same for every world and
every run. That is what makes the world *exactly readable*: :mod:`hitchhiker.world.reader` rebuilds
the very same templates and matches frames against them.

Painting is vectorised: each shape (disc, ellipse, line, rectangle) is evaluated on a 4x4
supersampled grid of the tile, and its coverage ``a`` in [0, 1] blends a colour in,

    rgb <- rgb * (1 - a) + colour * a,

which anti-aliases edges at any tile size ``P >= 4``. Sprites (sheep, explorer) are kept as
premultiplied RGBA, so compositing over a ground tile is one line:

    out = round(ground * (1 - alpha) + premultiplied_rgb).

Shapes: K tile kinds, V texture variants, P tile side in pixels, 4 headings.
"""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache

import numpy as np


class Tile(IntEnum):
    """The kinds of ground a map cell can hold (values are the integers stored in maps)."""

    WATER = 0
    SAND = 1
    GRASS = 2
    FLOWERS = 3
    FOREST = 4
    STUMP = 5
    ROCK = 6
    PATH = 7
    HOUSE = 8


TILE_NAMES: list[str] = [t.name.lower() for t in Tile]
NUM_KINDS = len(Tile)
BLOCKING = np.zeros(NUM_KINDS, dtype=bool)
BLOCKING[[Tile.WATER, Tile.ROCK, Tile.HOUSE]] = True
BLOCKING.flags.writeable = False
WALKABLE_KINDS: tuple[int, ...] = tuple(int(k) for k in Tile if not BLOCKING[k])


class Heading(IntEnum):
    """Which way the explorer faces; the order matches the move actions up/down/left/right."""

    NORTH = 0
    SOUTH = 1
    WEST = 2
    EAST = 3


HEADING_NAMES: list[str] = [h.name.lower() for h in Heading]
# (d_row, d_col) of one step in each heading: north is row - 1, east is col + 1.
HEADING_DELTAS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)], dtype=np.int64)
HEADING_DELTAS.flags.writeable = False

TEXTURE_VARIANTS = 4
APPEARANCE_SEED = 20250101
"""Seed of every texture and sprite: fixed, so that the reader's templates are universal."""
_SUPERSAMPLE = 4


def variant_of(rows, cols, seed: int = 0) -> np.ndarray:
    """Texture variant (0..V-1) of map cells: a fixed integer hash of (row, col, seed).

    Works on any broadcastable integer arrays (negative coordinates too, used by the ocean border).
    """
    r = np.asarray(rows, dtype=np.int64).astype(np.uint64)
    c = np.asarray(cols, dtype=np.int64).astype(np.uint64)
    s = np.asarray(seed, dtype=np.int64).astype(np.uint64)
    # Multiply-xorshift mixing (a splitmix64 finaliser); uint64 arithmetic wraps on purpose.
    with np.errstate(over="ignore"):
        h = r * np.uint64(0x9E3779B97F4A7C15) ^ c * np.uint64(0xC2B2AE3D27D4EB4F)
        h = h ^ s * np.uint64(0x165667B19E3779F9)
        h = (h ^ (h >> np.uint64(31))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(29))) * np.uint64(0x94D049BB133111EB)
        h = h ^ (h >> np.uint64(32))
    return (h % np.uint64(TEXTURE_VARIANTS)).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# A tiny vectorised painter. Coordinates are in tile units: y, x in [0, 1), y down, x right.


class _Canvas:
    """An RGBA canvas of one tile; RGB is kept premultiplied by alpha (float, 0..255)."""

    def __init__(self, tile_px: int, base=None):
        self.p = tile_px
        n = tile_px * _SUPERSAMPLE
        u = (np.arange(n) + 0.5) / n
        self.y, self.x = np.meshgrid(u, u, indexing="ij")
        self.rgb = np.zeros((tile_px, tile_px, 3))
        self.alpha = np.zeros((tile_px, tile_px))
        if base is not None:
            self.rgb[:] = base
            self.alpha[:] = 1.0

    def coverage(self, mask: np.ndarray) -> np.ndarray:
        s = _SUPERSAMPLE
        return mask.reshape(self.p, s, self.p, s).mean(axis=(1, 3))

    def paint(self, mask: np.ndarray, color, opacity: float = 1.0) -> None:
        a = (self.coverage(mask) * opacity)[..., None]
        self.rgb = self.rgb * (1 - a) + np.asarray(color, dtype=float) * a
        self.alpha = self.alpha * (1 - a[..., 0]) + a[..., 0]

    def disc(self, cy, cx, r):
        return (self.y - cy) ** 2 + (self.x - cx) ** 2 < r * r

    def ellipse(self, cy, cx, ry, rx):
        return ((self.y - cy) / ry) ** 2 + ((self.x - cx) / rx) ** 2 < 1

    def rect(self, y0, y1, x0, x1):
        return (self.y >= y0) & (self.y < y1) & (self.x >= x0) & (self.x < x1)

    def segment(self, y0, x0, y1, x1, width):
        """Points within width/2 of the segment (y0, x0)-(y1, x1)."""
        dy, dx = y1 - y0, x1 - x0
        t = ((self.y - y0) * dy + (self.x - x0) * dx) / max(dy * dy + dx * dx, 1e-9)
        t = np.clip(t, 0, 1)
        return (self.y - y0 - t * dy) ** 2 + (self.x - x0 - t * dx) ** 2 < (width / 2) ** 2

    def grain(self, rng, sigma: float) -> None:
        """Per-pixel brightness noise: it makes every texture sharp, so blur is detectable."""
        self.rgb = self.rgb + rng.normal(0, sigma, (self.p, self.p, 1)) * self.alpha[..., None]

    def pixel_cells(self, rng, count: int, margin: int = 0) -> list[tuple[float, float]]:
        """Centres of `count` distinct random pixels, spread by sampling a shuffled pixel list."""
        p = self.p
        idx = np.arange(margin, p - margin)
        cells = np.stack(np.meshgrid(idx, idx, indexing="ij"), -1).reshape(-1, 2)
        pick = rng.permutation(len(cells))[: min(count, len(cells))]
        return [((r + 0.5) / p, (c + 0.5) / p) for r, c in cells[pick]]


def _grass_blades(cv: _Canvas, rng, count: int, dark, light) -> None:
    p = cv.p
    for _ in range(count):
        r, c = rng.integers(0, p, size=2)
        h = max(1, round(0.25 * p))
        color = dark if rng.random() < 0.6 else light
        cv.paint(cv.rect(r / p, (r + h) / p, c / p, (c + 1) / p), color)


def _paint_kind(kind: int, rng, p: int) -> np.ndarray:
    """Paint one texture of one kind; returns float RGB (P, P, 3) in 0..255 before rounding."""
    px = 1.0 / p
    if kind == Tile.WATER:
        cv = _Canvas(p, (38, 92, 184))
        cv.paint(cv.y > 0.5, (30, 80, 170), 0.5)
        for _ in range(2 + p // 8):
            y0, x0 = (rng.integers(1, p - 1) + 0.5) * px, rng.random()
            wave = y0 + 0.07 * np.sin(2 * np.pi * 1.6 * (cv.x - x0))
            cv.paint((np.abs(cv.y - wave) < 0.55 * px) & ((cv.x - x0) % 1.0 < 0.5), (150, 200, 242))
        cv.grain(rng, 6)
    elif kind == Tile.SAND:
        cv = _Canvas(p, (226, 204, 142))
        cv.grain(rng, 7)
        for cy, cx in cv.pixel_cells(rng, max(3, p * p // 8)):
            cv.paint(cv.disc(cy, cx, 0.5 * px), (176, 150, 96))
        for cy, cx in cv.pixel_cells(rng, max(2, p * p // 16)):
            cv.paint(cv.disc(cy, cx, 0.5 * px), (246, 232, 186))
    elif kind == Tile.GRASS:
        cv = _Canvas(p, (70, 146, 56))
        _grass_blades(cv, rng, max(3, p // 2 + 1), (38, 104, 36), (118, 190, 82))
        cv.grain(rng, 7)
    elif kind == Tile.FLOWERS:
        cv = _Canvas(p, (104, 166, 70))
        _grass_blades(cv, rng, max(2, p // 4), (62, 126, 48), (138, 200, 96))
        palette = [(238, 96, 168), (250, 222, 54), (248, 248, 240), (160, 96, 230)]
        for i, (cy, cx) in enumerate(cv.pixel_cells(rng, max(4, p * p // 9))):
            cv.paint(cv.disc(cy, cx, max(0.5 * px, 0.06)), palette[(i + int(rng.integers(4))) % 4])
        cv.grain(rng, 6)
    elif kind == Tile.FOREST:
        cv = _Canvas(p, (26, 58, 30))
        cy, cx = 0.5 + rng.uniform(-0.05, 0.05, size=2)
        r = 0.43 + rng.uniform(-0.02, 0.03)
        cv.paint(cv.disc(cy, cx, r), (30, 116, 44))
        cv.paint(cv.disc(cy, cx, r) & cv.disc(cy + 0.2 * r, cx + 0.2 * r, 0.75 * r), (20, 90, 34))
        cv.paint(cv.disc(cy - 0.3 * r, cx - 0.3 * r, 0.4 * r), (70, 156, 66))
        cv.grain(rng, 6)
    elif kind == Tile.STUMP:
        cv = _Canvas(p, (96, 138, 52))
        _grass_blades(cv, rng, max(2, p // 4), (58, 104, 36), (130, 170, 74))
        cy, cx = 0.5 + rng.uniform(-0.03, 0.03, size=2)
        for ang in rng.uniform(0, 2 * np.pi, size=2):  # roots reaching to the tile's edge
            root = cv.segment(cy, cx, cy + 0.5 * np.sin(ang), cx + 0.5 * np.cos(ang), 1.2 * px)
            cv.paint(root, (92, 60, 32))
        cv.paint(cv.disc(cy, cx, 0.42), (92, 58, 30))  # bark
        cv.paint(cv.disc(cy, cx, 0.31), (200, 152, 96))  # cut wood
        cv.paint(cv.disc(cy, cx, 0.2) & ~cv.disc(cy, cx, 0.2 - 0.8 * px), (150, 104, 60))
        cv.grain(rng, 6)
    elif kind == Tile.ROCK:
        cv = _Canvas(p, (132, 132, 138))
        cv.paint(cv.x + cv.y < 0.7, (162, 162, 168), 0.7)  # light from the north-west
        cv.paint(cv.x + cv.y > 1.4, (104, 104, 112), 0.7)
        for _ in range(2):
            y0, x0 = rng.uniform(0.1, 0.9, size=2)
            ang = rng.uniform(0, 2 * np.pi)
            y1, x1 = y0 + 0.45 * np.sin(ang), x0 + 0.45 * np.cos(ang)
            cv.paint(cv.segment(y0, x0, y1, x1, 0.9 * px), (64, 64, 72))
        cv.grain(rng, 9)
    elif kind == Tile.PATH:
        cv = _Canvas(p, (170, 128, 84))
        cv.grain(rng, 8)
        for cy, cx in cv.pixel_cells(rng, max(2, p * p // 12)):
            cv.paint(cv.disc(cy, cx, 0.5 * px), (132, 96, 62))
        for cy, cx in cv.pixel_cells(rng, max(2, p * p // 16)):
            cv.paint(cv.disc(cy, cx, 0.5 * px), (204, 170, 124))
    elif kind == Tile.HOUSE:
        roof = [(172, 60, 44), (150, 74, 46)][int(rng.integers(2))]
        cv = _Canvas(p, roof)
        eave = 0.62
        for k in range(1, p):  # shingle rows
            if k * px < eave and k % 2 == 0:
                cv.paint(cv.rect(k * px, (k + 1) * px, 0, 1), np.array(roof) * 0.72)
        cv.paint(cv.rect(0, px, 0, 1), np.minimum(np.array(roof) * 1.3, 255))  # ridge
        cv.paint(cv.y >= eave, (216, 192, 150))  # wall
        door = 0.5 + rng.choice([-0.19, 0.19])
        cv.paint(cv.rect(eave + px, 1, door - 0.13, door + 0.13), (84, 50, 28))
        win = 1.0 - door
        cv.paint(cv.rect(eave + px, eave + 0.2, win - 0.1, win + 0.1), (250, 218, 100))
        cv.grain(rng, 5)
    else:  # pragma: no cover - Tile is closed
        raise KeyError(f"unknown tile kind {kind}")
    return cv.rgb


def _check_tile_px(tile_px) -> int:
    if isinstance(tile_px, bool) or not isinstance(tile_px, (int, np.integer)) or tile_px < 4:
        raise ValueError(f"tile_px must be an int >= 4, got {tile_px!r}")
    return int(tile_px)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@lru_cache(maxsize=8)
def tile_textures(tile_px: int = 8) -> np.ndarray:
    """All ground textures, (K, V, P, P, 3) uint8, read-only; identical in every world."""
    p = _check_tile_px(tile_px)
    out = np.empty((NUM_KINDS, TEXTURE_VARIANTS, p, p, 3), dtype=np.uint8)
    for k in range(NUM_KINDS):
        for v in range(TEXTURE_VARIANTS):
            rng = np.random.default_rng([APPEARANCE_SEED, p, k, v])
            out[k, v] = np.clip(np.rint(_paint_kind(k, rng, p)), 0, 255)
    return _readonly(out)


@lru_cache(maxsize=8)
def tile_colors(tile_px: int = 8) -> np.ndarray:
    """Mean colour of every texture, (K, V, 3) uint8: a cheap picture of a whole map."""
    return _readonly(np.rint(tile_textures(tile_px).mean(axis=(2, 3))).astype(np.uint8))


@lru_cache(maxsize=8)
def sheep_sprite(tile_px: int = 8) -> np.ndarray:
    """A small white sheep seen from the side, facing east: premultiplied RGBA (P, P, 4)."""
    p = _check_tile_px(tile_px)
    cv = _Canvas(p)
    px = 1.0 / p
    for lx in (0.32, 0.58):  # legs
        cv.paint(cv.rect(0.66, 0.84, lx, lx + max(px, 0.1)), (58, 50, 48))
    cv.paint(cv.ellipse(0.56, 0.46, 0.2, 0.28), (242, 242, 234))  # woolly body
    cv.paint(cv.ellipse(0.5, 0.4, 0.09, 0.12), (255, 255, 252))  # wool highlight
    cv.paint(cv.ellipse(0.46, 0.78, 0.12, 0.11), (52, 46, 46))  # dark head
    return _readonly(np.concatenate([cv.rgb, cv.alpha[..., None]], -1).astype(np.float32))


@lru_cache(maxsize=8)
def explorer_sprites(tile_px: int = 8) -> np.ndarray:
    """The explorer in each heading: premultiplied RGBA (4, P, P, 4).

    A red-orange body seen from above with the skin-coloured head pushed towards the heading and
    two dark eyes on its front edge: the head is the pointer.
    """
    p = _check_tile_px(tile_px)
    out = []
    for dy, dx in HEADING_DELTAS:
        cv = _Canvas(p)
        # Shoulders span across the heading: a wide ellipse whose long axis is perpendicular to it.
        ry, rx = (0.2, 0.28) if dy else (0.28, 0.2)
        cv.paint(cv.ellipse(0.5 - 0.04 * dy, 0.5 - 0.04 * dx, ry, rx), (224, 82, 38))
        cv.paint(cv.ellipse(0.5 - 0.04 * dy, 0.5 - 0.04 * dx, 0.6 * ry, 0.6 * rx), (246, 122, 52))
        hy, hx = 0.5 + 0.2 * dy, 0.5 + 0.2 * dx
        cv.paint(cv.disc(hy, hx, 0.17), (246, 204, 160))
        # Eyes: on the front edge of the head, one either side of the heading line.
        ey, ex = hy + 0.09 * dy, hx + 0.09 * dx
        for side in (-1, 1):
            cv.paint(cv.disc(ey + 0.08 * side * dx, ex + 0.08 * side * dy, 0.055), (34, 24, 24))
        out.append(np.concatenate([cv.rgb, cv.alpha[..., None]], -1))
    return _readonly(np.stack(out).astype(np.float32))


def composite(ground: np.ndarray, sprite: np.ndarray) -> np.ndarray:
    """Alpha-composite a premultiplied RGBA sprite (P, P, 4) over uint8 ground (..., P, P, 3)."""
    alpha = sprite[..., 3:]
    out = ground.astype(np.float32) * (1 - alpha) + sprite[..., :3]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@lru_cache(maxsize=8)
def sheep_tiles(tile_px: int = 8) -> np.ndarray:
    """A sheep over every texture, (K, V, P, P, 3) uint8: what a sheep cell looks like."""
    return _readonly(composite(tile_textures(tile_px), sheep_sprite(tile_px)))


@lru_cache(maxsize=8)
def explorer_tiles(tile_px: int = 8) -> np.ndarray:
    """The explorer over every texture in every heading, (K, V, 4, P, P, 3) uint8."""
    ground = tile_textures(tile_px)[:, :, None]  # (K, V, 1, P, P, 3)
    return _readonly(composite(ground, explorer_sprites(tile_px)))
