"""Procedural map generation: an island of coherent regions, with villages linked by paths.

Fractal value noise (Perlin's idea without gradients) gives smooth random fields: random values on
a coarse lattice, smoothly interpolated, summed over octaves of halving cell size and amplitude,

    fbm(x) = sum_o 0.5^o * lerp_smooth(lattice_o, x / (cell / 2^o)).

Two such fields, *elevation* and *moisture*, carve the map into regions the way a climate map would
(as in classic roguelike and Minecraft-style terrain generators):

    elevation (minus a radial falloff, so the border is ocean)
        lowest 26%  -> water (the ocean)
        next 7%     -> sand (beaches)
        highest, roughened by a third field -> rock outcrops
    a "lowland" field -> the deepest inland hollows become lakes, ringed with sand
    moisture on the remaining land -> forest where wet; a fifth field -> flower meadows; else grass

Thresholds are quantiles, not fixed levels, so every seed gets the same proportions. Then a few
villages (clusters of houses on grass) are placed in the big walkable region and joined to each
other by footpaths found by breadth-first search over walkable tiles. Stumps never appear at
generation: they are made by the explorer cutting trees.

The explorer spawns on the walkable tile closest to the centre that belongs to the largest
4-connected walkable region, so it can walk far. Everything is deterministic given the seed.

Shapes: S map side in tiles; maps are (S, S) int8 arrays of :class:`~hitchhiker.world.tiles.Tile`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .tiles import BLOCKING, Tile

MIN_MAP_SIZE = 16
OCEAN_BORDER = 3
"""Outermost rings of tiles forced to water, whatever the noise says."""


@dataclass(frozen=True)
class WorldMap:
    """A generated map: pristine kinds, where the explorer starts, and what it can reach."""

    kinds: np.ndarray
    """(S, S) int8 tile kinds, read-only."""
    spawn: tuple[int, int]
    """(row, col) of the explorer's starting tile."""
    reachable: np.ndarray
    """(S, S) bool, read-only: walkable tiles 4-connected to the spawn. Interactions only swap
    walkable kinds for walkable kinds, so this stays true for the whole episode."""
    seed: int
    """The seed the map was generated from."""

    @property
    def size(self) -> int:
        return int(self.kinds.shape[0])


def value_noise(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:
    """Smooth noise in [0, 1]: random lattice values every `cell` tiles, smoothstep-interpolated."""
    n = int(np.ceil(size / cell)) + 2
    lattice = rng.random((n, n))
    pos = np.arange(size) / cell + rng.random()  # a random sub-cell shift hides the lattice
    i = np.floor(pos).astype(int)
    f = pos - i
    f = f * f * (3 - 2 * f)  # smoothstep: continuous slope across lattice lines
    top = lattice[i][:, i] * (1 - f)[None] + lattice[i][:, i + 1] * f[None]
    bottom = lattice[i + 1][:, i] * (1 - f)[None] + lattice[i + 1][:, i + 1] * f[None]
    return top * (1 - f)[:, None] + bottom * f[:, None]


def fractal_noise(rng: np.random.Generator, size: int, cell: float, octaves: int = 4) -> np.ndarray:
    """Fractal (fBm) value noise normalised to [0, 1]: coarse shapes with finer detail on top."""
    total = np.zeros((size, size))
    for o in range(octaves):
        total += 0.5**o * value_noise(rng, size, max(cell / 2**o, 1.0))
    lo, hi = total.min(), total.max()
    return (total - lo) / max(hi - lo, 1e-12)


def _quantile_above(field: np.ndarray, mask: np.ndarray, share: float) -> np.ndarray:
    """Cells of `mask` whose `field` is in the top `share` of the field's values over `mask`."""
    if not mask.any():
        return mask
    level = np.quantile(field[mask], 1 - share)
    return mask & (field > level)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Cells of `mask` or 8-adjacent to it."""
    pad = np.pad(mask, 1)
    out = np.zeros_like(mask)
    n = mask.shape[0]
    for dr in range(3):
        for dc in range(3):
            out |= pad[dr : dr + n, dc : dc + n]
    return out


def _neighbours(index: int, size: int):
    r, c = divmod(index, size)
    if r > 0:
        yield index - size
    if r < size - 1:
        yield index + size
    if c > 0:
        yield index - 1
    if c < size - 1:
        yield index + 1


def bfs(passable: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """Breadth-first search over 4-connected `passable` cells: parent index of each reached
    cell (flat), -1 for the start, -2 where unreached."""
    size = passable.shape[0]
    flat = passable.ravel()
    parent = np.full(size * size, -2, dtype=np.int64)
    s = start[0] * size + start[1]
    parent[s] = -1
    queue = deque([s])
    while queue:
        i = queue.popleft()
        for j in _neighbours(i, size):
            if parent[j] == -2 and flat[j]:
                parent[j] = i
                queue.append(j)
    return parent


def largest_region(walkable: np.ndarray) -> np.ndarray:
    """Boolean mask of the largest 4-connected region of `walkable` (empty if none)."""
    size = walkable.shape[0]
    label = np.where(walkable.ravel(), 0, -1)
    best, best_n, current = 0, 0, 0
    for s in np.flatnonzero(label == 0):
        if label[s] != 0:
            continue
        current += 1
        label[s], n, queue = current, 1, deque([s])
        while queue:
            i = queue.popleft()
            for j in _neighbours(i, size):
                if label[j] == 0:
                    label[j] = current
                    n += 1
                    queue.append(j)
        if n > best_n:
            best, best_n = current, n
    return (label == best).reshape(walkable.shape) if best_n else np.zeros_like(walkable)


def _terrain(rng: np.random.Generator, size: int) -> np.ndarray:
    """Water, sand, rock, forest, flowers and grass from four noise fields."""
    scale = max(size / 96, 0.34)  # feature sizes shrink a little on small test maps
    elevation = fractal_noise(rng, size, 24 * scale)
    moisture = fractal_noise(rng, size, 20 * scale)
    roughness = fractal_noise(rng, size, 8 * scale, octaves=3)
    meadow = fractal_noise(rng, size, 10 * scale, octaves=3)
    lowland = fractal_noise(rng, size, 12 * scale, octaves=3)

    # Radial falloff: 0 inside, rising to 1 at the edge, so the island sits in an ocean.
    u = (np.arange(size) + 0.5) / size * 2 - 1
    dist = (
        np.maximum(np.abs(u)[:, None], np.abs(u)[None, :]) * 0.6
        + np.hypot(u[:, None], u[None, :]) * 0.4
    )
    elevation = elevation - np.clip((dist - 0.55) / 0.4, 0, 1) ** 2

    kinds = np.full((size, size), Tile.GRASS, dtype=np.int8)
    sea = np.quantile(elevation, 0.26)
    shore = np.quantile(elevation, 0.33)
    kinds[elevation <= sea] = Tile.WATER
    kinds[(elevation > sea) & (elevation <= shore)] = Tile.SAND
    land = elevation > shore
    # Lakes: the lowest hollows of the inland terrain, each ringed by a one-tile beach.
    lakes = _quantile_above(-lowland, land, 0.06)
    kinds[lakes] = Tile.WATER
    ring = _dilate(lakes) & land & ~lakes
    kinds[ring] = Tile.SAND
    land &= ~(lakes | ring)
    rock = _quantile_above(0.6 * elevation + 0.4 * roughness, land, 0.08)
    kinds[rock] = Tile.ROCK
    green = land & ~rock
    forest = _quantile_above(moisture, green, 0.35)
    kinds[forest] = Tile.FOREST
    flowers = _quantile_above(meadow, green & ~forest, 0.18)
    kinds[flowers] = Tile.FLOWERS
    b = OCEAN_BORDER
    kinds[:b], kinds[-b:], kinds[:, :b], kinds[:, -b:] = (Tile.WATER,) * 4
    return kinds


def _carve_path(kinds: np.ndarray, parent: np.ndarray, goal: tuple[int, int]) -> None:
    """Follow BFS parents back from `goal`, laying path on every walkable tile on the way."""
    size = kinds.shape[0]
    i = goal[0] * size + goal[1]
    if parent[i] == -2:
        return
    flat = kinds.reshape(-1)
    while i >= 0:
        if not BLOCKING[flat[i]]:
            flat[i] = Tile.PATH
        i = parent[i]


def _place_villages(rng: np.random.Generator, kinds: np.ndarray) -> None:
    """A few clusters of houses on grass, each house's door (the tile south of it) joined by path
    to the village square, and the squares chained together by path."""
    size = kinds.shape[0]
    region = largest_region(~BLOCKING[kinds])
    # Squares: grass tiles in the big region whose 3x3 neighbourhood is all walkable.
    open3 = ~_dilate(BLOCKING[kinds])
    candidates = np.argwhere(region & open3 & (kinds == Tile.GRASS))
    n_villages = max(1, round(size * size / 3000))
    squares: list[tuple[int, int]] = []
    min_gap = size // 4
    for r, c in candidates[rng.permutation(len(candidates))]:
        if all(abs(r - a) + abs(c - b) >= min_gap for a, b in squares):
            squares.append((int(r), int(c)))
        if len(squares) == n_villages:
            break

    for sr, sc in squares:
        doors = []
        for _ in range(int(rng.integers(2, 5))):
            for _attempt in range(20):
                r, c = sr + int(rng.integers(-3, 4)), sc + int(rng.integers(-3, 4))
                if not (1 <= r < size - 2 and 1 <= c < size - 1) or (r, c) == (sr, sc):
                    continue
                around = kinds[r - 1 : r + 2, c - 1 : c + 2]
                if kinds[r, c] in (Tile.GRASS, Tile.FLOWERS) and not (around == Tile.HOUSE).any():
                    if not BLOCKING[kinds[r + 1, c]] and (r + 1, c) != (sr, sc):
                        kinds[r, c] = Tile.HOUSE
                        doors.append((r + 1, c))
                        break
        parent = bfs(~BLOCKING[kinds], (sr, sc))
        for door in doors:
            _carve_path(kinds, parent, door)
        kinds[sr, sc] = Tile.PATH
    for (ar, ac), (br, bc) in zip(squares, squares[1:]):
        _carve_path(kinds, bfs(~BLOCKING[kinds], (ar, ac)), (br, bc))


def generate_map(size: int = 96, seed: int = 0) -> WorldMap:
    """Generate the pristine map for `seed`: terrain, villages, paths and the spawn tile."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_MAP_SIZE:
        raise ValueError(f"map size must be an int >= {MIN_MAP_SIZE}, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"map seed must be a non-negative int, got {seed!r}")
    size, seed = int(size), int(seed)
    rng = np.random.default_rng([seed, size])
    kinds = _terrain(rng, size)
    _place_villages(rng, kinds)

    region = largest_region(~BLOCKING[kinds])
    if not region.any():
        raise ValueError(f"map seed {seed} at size {size} has no walkable land")
    cells = np.argwhere(region)
    centre = (size - 1) / 2
    r, c = cells[np.argmin(((cells - centre) ** 2).sum(axis=1))]
    kinds.flags.writeable = False
    region.flags.writeable = False
    return WorldMap(kinds=kinds, spawn=(int(r), int(c)), reachable=region, seed=seed)
