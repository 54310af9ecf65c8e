"""The Hitchhiker world as a Gymnasium environment: an explorer on a procedural island.

The explorer sees an egocentric RGB view of (R, C) tiles and always sits at view cell
(R // 2, C // 2). Each step it may stay, move one tile north/south/west/east (turning to face
that way; blocked by water, rock and houses), or *interact* with the tile it faces:

    forest -> stump (cut)    stump -> forest (plant)    grass -> flowers (plant)
    flowers -> grass (pick)  anything else: nothing.

Changes persist for the episode, so the world has consequences a model must remember. Sheep wander
(each moves to a random free walkable neighbour with probability `animal_move_prob`), get pushed
aside when the explorer walks into them, and a day-night cycle tints the frame:

    frame = round(view * tint(step)),  tint in (0, 1]^3,  tint = (1, 1, 1) at noon.

Speed: the whole padded map is rendered once into one RGB image (a border of ocean as wide as the
view radius around it), so a view is one array slice; sprites are pasted from precomputed
sprite-over-texture tiles, and an interaction re-renders a single tile. That keeps a step well
under a millisecond on one CPU core.

Shapes: S map side, P tile side in pixels, R = C = view_px // P view side in tiles,
H = W = view_px frame side in pixels; frames are (H, W, 3) uint8.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

import gymnasium as gym
import numpy as np

from .mapgen import MIN_MAP_SIZE, WorldMap, generate_map
from .tiles import (
    BLOCKING,
    HEADING_DELTAS,
    NUM_KINDS,
    Heading,
    Tile,
    explorer_tiles,
    sheep_tiles,
    tile_colors,
    tile_textures,
    variant_of,
)


class Action(IntEnum):
    """What the explorer can do in one step; moves are numbered in Heading order, plus one."""

    NOOP = 0
    UP = 1
    DOWN = 2
    LEFT = 3
    RIGHT = 4
    INTERACT = 5


ACTION_NAMES: list[str] = [a.name.lower() for a in Action]

# What interacting with a tile of each kind turns it into (identity = nothing happens).
INTERACT_RESULT = np.arange(NUM_KINDS, dtype=np.int8)
INTERACT_RESULT[[Tile.FOREST, Tile.STUMP, Tile.GRASS, Tile.FLOWERS]] = [
    Tile.STUMP,
    Tile.FOREST,
    Tile.FLOWERS,
    Tile.GRASS,
]
INTERACT_RESULT.flags.writeable = False

NIGHT_TINT = np.array([0.45, 0.5, 0.7])
"""Light at midnight: dim and bluish."""
TWILIGHT_WARMTH = np.array([0.1, 0.0, -0.14])
"""Added at dawn and dusk (scaled by sin^2 of the day phase): warmer, redder light."""


def parse_action(action) -> Action:
    """An `Action` from an int (or numpy integer), an `Action`, or an action name."""
    valid = f"expected one of {', '.join(ACTION_NAMES)} or 0-{len(Action) - 1}"
    if isinstance(action, np.ndarray) and action.ndim == 0:
        action = action.item()
    if isinstance(action, str):
        name = action.strip().lower()
        if name in ACTION_NAMES:
            return Action(ACTION_NAMES.index(name))
    elif isinstance(action, (int, np.integer)) and not isinstance(action, (bool, np.bool_)):
        if 0 <= action < len(Action):
            return Action(int(action))
    raise ValueError(f"unknown action {action!r}; {valid}")


def daylight(step, day_length: int) -> np.ndarray:
    """Per-channel light tint (..., 3) float32 for step(s) of a `day_length`-step day.

    The day phase is step % day_length / day_length; phase 0 is noon, 0.5 midnight:

        dark = (1 - cos(2 pi phase)) / 2
        tint = (1 - dark) * 1 + dark * NIGHT_TINT + sin^2(2 pi phase) * TWILIGHT_WARMTH
    """
    step = np.asarray(step)
    if day_length == 0:
        return np.ones(step.shape + (3,), dtype=np.float32)
    angle = 2 * np.pi * (step % day_length) / day_length
    dark = ((1 - np.cos(angle)) / 2)[..., None]
    tint = 1 - dark + dark * NIGHT_TINT + (np.sin(angle) ** 2)[..., None] * TWILIGHT_WARMTH
    return np.clip(tint, 0.05, 1.0).astype(np.float32)


@dataclass
class WorldConfig:
    """Everything that defines a Hitchhiker world (the seed comes with `reset`)."""

    map_size: int = 96
    """Side of the square map, in tiles; 96 is the course default (>= 64 recommended; tests use
    maps down to 16 for speed)."""
    view_px: int = 64
    """Side of the square egocentric view, in pixels; a multiple of `tile_px`."""
    tile_px: int = 8
    """Side of one tile, in pixels (>= 4)."""
    animals: int = 8
    """Number of wandering sheep (0 = none)."""
    animal_move_prob: float = 0.3
    """Probability that a sheep tries to move to a random neighbouring tile each step."""
    day_length: int = 240
    """Steps in one full day-night cycle (0 = always noon)."""
    max_steps: int = 1000
    """Steps after which an episode is truncated (0 = never)."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = (int, float, np.integer, np.floating) if f.type == "float" else (int, np.integer)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
                raise TypeError(f"WorldConfig.{f.name} must be {f.type}, got {value!r}")
        if self.map_size < MIN_MAP_SIZE:
            raise ValueError(f"map_size must be >= {MIN_MAP_SIZE}, got {self.map_size}")
        if self.tile_px < 4:
            raise ValueError(f"tile_px must be >= 4, got {self.tile_px}")
        if self.view_px % self.tile_px or self.view_px < 3 * self.tile_px:
            raise ValueError(
                f"view_px must be a multiple of tile_px={self.tile_px} and at least 3 tiles, "
                f"got {self.view_px}"
            )
        if self.animals < 0:
            raise ValueError(f"animals must be >= 0, got {self.animals}")
        if not 0.0 <= self.animal_move_prob <= 1.0:
            raise ValueError(f"animal_move_prob must be in [0, 1], got {self.animal_move_prob}")
        if self.day_length < 0 or self.max_steps < 0:
            raise ValueError(
                f"day_length and max_steps must be >= 0, got {self.day_length}, {self.max_steps}"
            )

    @property
    def view_tiles(self) -> int:
        """R = C: side of the view in tiles."""
        return self.view_px // self.tile_px


def make_config(config: WorldConfig | None = None, **overrides) -> WorldConfig:
    """`config` (or the defaults) with some fields replaced; unknown fields raise a TypeError."""
    names = [f.name for f in dataclasses.fields(WorldConfig)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise TypeError(f"unknown WorldConfig field(s) {unknown}; valid fields: {', '.join(names)}")
    if config is not None and not isinstance(config, WorldConfig):
        raise TypeError(f"config must be a WorldConfig or None, got {type(config).__name__}")
    return dataclasses.replace(config or WorldConfig(), **overrides)


@lru_cache(maxsize=32)
def cached_map(size: int, seed: int) -> WorldMap:
    """Generated maps are pure functions of (size, seed); generating costs tens of ms, so keep
    the recent ones (arrays are read-only, so sharing is safe)."""
    return generate_map(size, seed)


class HitchhikerWorld(gym.Env):
    """The explorer's island; see the module docstring for the rules."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: WorldConfig | None = None, render_mode=None, **overrides):
        self.config = make_config(config, **overrides)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        cfg = self.config
        self.tile_px = p = cfg.tile_px
        self.view_rows = self.view_cols = r = cfg.view_tiles
        self.observation_space = gym.spaces.Box(0, 255, (cfg.view_px, cfg.view_px, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(len(Action))
        self._pad = r // 2  # ocean border, in tiles, so any view centred on the map is one slice
        self._textures = tile_textures(p)
        self._sheep_tiles = sheep_tiles(p)
        self._explorer_tiles = explorer_tiles(p)
        self._map: WorldMap | None = None
        self._pristine: tuple[int, np.ndarray] | None = None  # (map seed, rendered image)
        self._frame = np.zeros(self.observation_space.shape, dtype=np.uint8)
        self._info: dict = {}

    # ------------------------------------------------------------------ episode
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        unknown = sorted(set(options or {}) - {"start"})
        if unknown:
            raise ValueError(f"HitchhikerWorld.reset takes only the option 'start'; got {unknown}")
        cfg, pad = self.config, self._pad
        # An explicit seed names the map; without one, each episode draws a fresh map.
        self.map_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31 - 1))
        self._map = cached_map(cfg.map_size, self.map_seed)
        s = cfg.map_size
        self._kinds = np.full((s + 2 * pad, s + 2 * pad), Tile.WATER, dtype=np.int8)
        self._kinds[pad : pad + s, pad : pad + s] = self._map.kinds
        rows = np.arange(-pad, s + pad)
        self._variants = variant_of(rows[:, None], rows[None, :], self.map_seed)
        if self._pristine is None or self._pristine[0] != self.map_seed:
            tiles = self._textures[self._kinds, self._variants]  # (Sp, Sp, P, P, 3)
            n = tiles.shape[0] * self.tile_px
            self._pristine = (self.map_seed, tiles.transpose(0, 2, 1, 3, 4).reshape(n, n, 3))
        self._image = self._pristine[1].copy()

        self._pos = np.array(self._start((options or {}).get("start")), dtype=np.int64)
        self._heading = int(Heading.SOUTH)
        self._step = 0
        self._place_animals()
        self._render_frame()
        self._info = self._make_info(moved=False, changed=None)
        return self._frame.copy(), dict(self._info)

    def _start(self, start) -> tuple[int, int]:
        """Where the explorer starts: the map's spawn, or ``options["start"]``, a (row, col) of the
        spawn's walkable region (Stage V's tasks start it beside a house)."""
        if start is None:
            return self._map.spawn
        s = self.config.map_size
        try:
            r, c = (int(v) for v in start)
        except (TypeError, ValueError):
            raise ValueError(f"options['start'] must be a (row, col) pair; got {start!r}") from None
        if not (0 <= r < s and 0 <= c < s and self._map.reachable[r, c]):
            raise ValueError(
                f"options['start'] must be a walkable tile of the spawn's region; got ({r}, {c})"
            )
        return r, c

    def _place_animals(self) -> None:
        """Half the flock within 12 tiles of the spawn (so sheep show up in early views), the
        rest anywhere in the explorer's region; never on the spawn or on each other."""
        n = self.config.animals
        region = np.argwhere(self._map.reachable)
        region = region[(region != self._pos).any(axis=1)]
        near = np.abs(region - self._pos).max(axis=1) <= 12
        rng = self.np_random
        n_near = min(n - n // 2, int(near.sum()))
        first = rng.choice(np.flatnonzero(near), size=n_near, replace=False)
        rest_pool = np.setdiff1d(np.arange(len(region)), first)
        rest = rng.choice(rest_pool, size=min(n - n_near, len(rest_pool)), replace=False)
        self._animals = region[np.concatenate([first, rest]).astype(np.int64)]
        self._occupied = np.zeros_like(self._map.reachable)
        self._occupied[self._animals[:, 0], self._animals[:, 1]] = True

    def step(self, action):
        act = parse_action(action)
        moved, changed = False, None
        if Action.UP <= act <= Action.RIGHT:
            self._heading = int(act) - 1
            moved = self._try_move(HEADING_DELTAS[self._heading])
        elif act == Action.INTERACT:
            changed = self._interact()
        self._move_animals()
        self._step += 1
        self._render_frame()
        self._info = self._make_info(moved=moved, changed=changed)
        truncated = self.config.max_steps > 0 and self._step >= self.config.max_steps
        return self._frame.copy(), 0.0, False, truncated, dict(self._info)

    def _try_move(self, delta: np.ndarray) -> bool:
        target = self._pos + delta
        if not self.walkable(*target):
            return False
        tr, tc = target
        if self._occupied[tr, tc] and not self._push_animal(target, delta):
            return False
        self._pos = target
        return True

    def _push_animal(self, cell: np.ndarray, delta: np.ndarray) -> bool:
        """Shove the sheep on `cell` onto a free walkable neighbour, straight ahead if possible."""
        ahead = cell + delta
        options = [ahead] + [cell + d for d in HEADING_DELTAS if (d != delta).any()]
        free = [
            o
            for o in options
            if self.walkable(*o) and not self._occupied[o[0], o[1]] and (o != self._pos).any()
        ]
        if not free:
            return False  # wedged in: the explorer is blocked (rare)
        dest = free[0] if free[0] is options[0] else free[int(self.np_random.integers(len(free)))]
        self._relocate(cell, dest)
        return True

    def _relocate(self, src: np.ndarray, dest: np.ndarray) -> None:
        i = int(np.flatnonzero((self._animals == src).all(axis=1))[0])
        self._animals[i] = dest
        self._occupied[src[0], src[1]] = False
        self._occupied[dest[0], dest[1]] = True

    def _move_animals(self) -> None:
        n = len(self._animals)
        if n == 0:
            return
        # Draw all the randomness for this step at once, then apply moves in sheep order.
        tries = self.np_random.random(n) < self.config.animal_move_prob
        dirs = self.np_random.integers(0, 4, size=n)
        for i in np.flatnonzero(tries):
            src = self._animals[i]
            dest = src + HEADING_DELTAS[dirs[i]]
            r, c = dest
            if self.walkable(r, c) and not self._occupied[r, c] and (dest != self._pos).any():
                self._occupied[src[0], src[1]] = False
                self._occupied[r, c] = True
                self._animals[i] = dest

    def _interact(self):
        r, c = (int(v) for v in self._pos + HEADING_DELTAS[self._heading])
        pad = self._pad
        old = int(self._kinds[r + pad, c + pad])
        new = int(INTERACT_RESULT[old])
        if new == old:
            return None
        self._kinds[r + pad, c + pad] = new
        p = self.tile_px
        y, x = (r + pad) * p, (c + pad) * p
        self._image[y : y + p, x : x + p] = self._textures[new, self._variants[r + pad, c + pad]]
        return (r, c, old, new)

    # ------------------------------------------------------------------ rendering
    def _view_origin(self, row: int, col: int) -> tuple[int, int]:
        """Top-left of the view centred on map (row, col), in padded-map tiles."""
        return row + self._pad - self.view_rows // 2, col + self._pad - self.view_cols // 2

    def _render_frame(self) -> None:
        p, (r0, c0) = self.tile_px, self._view_origin(*self._pos)
        rows, cols = self.view_rows, self.view_cols
        view = self._image[r0 * p : (r0 + rows) * p, c0 * p : (c0 + cols) * p].copy()
        kinds = self._kinds[r0 : r0 + rows, c0 : c0 + cols]
        variants = self._variants[r0 : r0 + rows, c0 : c0 + cols]
        local = self._animals - (self._pos - [rows // 2, cols // 2])
        visible = local[((local >= 0) & (local < [rows, cols])).all(axis=1)]
        for vr, vc in visible:
            view[vr * p : (vr + 1) * p, vc * p : (vc + 1) * p] = self._sheep_tiles[
                kinds[vr, vc], variants[vr, vc]
            ]
        cr, cc = rows // 2, cols // 2
        view[cr * p : (cr + 1) * p, cc * p : (cc + 1) * p] = self._explorer_tiles[
            kinds[cr, cc], variants[cr, cc], self._heading
        ]
        self._light = daylight(self._step, self.config.day_length)
        if self.config.day_length:
            view = np.rint(view * self._light).astype(np.uint8)
        self._frame = view
        self._visible_animals = visible

    def _make_info(self, moved: bool, changed) -> dict:
        r0, c0 = self._view_origin(*self._pos)
        animals = np.zeros((self.view_rows, self.view_cols), dtype=bool)
        animals[self._visible_animals[:, 0], self._visible_animals[:, 1]] = True
        return {
            "position": self._pos.copy(),
            "heading": self._heading,
            "step": self._step,
            "tiles": self._kinds[r0 : r0 + self.view_rows, c0 : c0 + self.view_cols].copy(),
            "animals": animals,
            "light": self._light.copy(),
            "moved": moved,
            "changed": changed,
        }

    def render(self) -> np.ndarray:
        """The current frame, (H, W, 3) uint8."""
        return self._frame.copy()

    # ------------------------------------------------------------------ queries
    def _require_reset(self) -> None:
        if self._map is None:
            raise RuntimeError("call reset() before querying the world")

    @property
    def spawn(self) -> tuple[int, int]:
        """(row, col) where the explorer starts this map."""
        self._require_reset()
        return self._map.spawn

    @property
    def base_map(self) -> WorldMap:
        """The pristine generated map of this episode (kinds before any interaction)."""
        self._require_reset()
        return self._map

    @property
    def position(self) -> tuple[int, int]:
        self._require_reset()
        return int(self._pos[0]), int(self._pos[1])

    @property
    def heading(self) -> int:
        return self._heading

    @property
    def view_shape(self) -> tuple[int, int]:
        """(R, C): the view's size in tiles; the explorer sits at (R // 2, C // 2)."""
        return self.view_rows, self.view_cols

    def full_map(self) -> np.ndarray:
        """Current tile kinds of the whole map, (S, S) int8 (a copy)."""
        self._require_reset()
        s, pad = self.config.map_size, self._pad
        return self._kinds[pad : pad + s, pad : pad + s].copy()

    def walkable(self, row, col) -> bool:
        """Whether the tile at map (row, col) can be walked on (ignores sheep; off-map: False)."""
        s = self.config.map_size
        if not (0 <= row < s and 0 <= col < s):
            return False
        return not BLOCKING[self._kinds[row + self._pad, col + self._pad]]

    def animal_positions(self) -> np.ndarray:
        """(n, 2) int64 map (row, col) of every sheep (a copy)."""
        self._require_reset()
        return self._animals.copy()

    def view_tiles_at(self, row: int, col: int) -> np.ndarray:
        """(R, C) int8 kinds a view centred on map (row, col) would show (ocean off the map)."""
        self._require_reset()
        s = self.config.map_size
        if not (0 <= row < s and 0 <= col < s):
            raise ValueError(f"(row, col) must lie in the {s}x{s} map, got ({row}, {col})")
        r0, c0 = self._view_origin(row, col)
        return self._kinds[r0 : r0 + self.view_rows, c0 : c0 + self.view_cols].copy()

    def render_map(self, scale: int = 4, entities: bool = True) -> np.ndarray:
        """RGB picture of the whole current map, (S * scale, S * scale, 3) uint8.

        At scale == tile_px the real textures are used; otherwise each tile is filled with its
        texture's mean colour. With `entities`, sheep are drawn white and the explorer red.
        """
        self._require_reset()
        if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
            raise ValueError(f"scale must be a positive int (pixels per tile), got {scale!r}")
        s, pad, p = self.config.map_size, self._pad, self.tile_px
        if scale == p:
            img = self._image[pad * p : (pad + s) * p, pad * p : (pad + s) * p].copy()
        else:
            inner = (slice(pad, pad + s), slice(pad, pad + s))
            colors = tile_colors(p)[self._kinds[inner], self._variants[inner]]
            img = np.repeat(np.repeat(colors, scale, axis=0), scale, axis=1)
        if entities:
            cells = [(self._animals, (255, 255, 255)), (self._pos[None], (230, 30, 30))]
            for positions, color in cells:
                for r, c in positions:
                    img[r * scale : (r + 1) * scale, c * scale : (c + 1) * scale] = color
        return img


ENV_ID = "hitchhiker/World-v0"
if ENV_ID not in gym.registry:  # so that gymnasium.make(ENV_ID, **overrides) works too
    gym.register(id=ENV_ID, entry_point="hitchhiker.world.env:HitchhikerWorld")


class SimulatorEngine:
    """The simulator as a playable engine (:class:`hitchhiker.engine.Playable`): ``reset(seed)`` and
    ``step(action)`` return frames; ``info`` holds the last step's facts. Its batched ``rollout``
    (the whole :class:`hitchhiker.engine.Engine` contract) is
    :class:`hitchhiker.interactive.truth.SimulatorRollout`."""

    actions = ACTION_NAMES

    def __init__(self, config: WorldConfig | None = None, **overrides):
        self.env = HitchhikerWorld(config, **overrides)
        self.info: dict = {}

    def reset(self, seed: int) -> np.ndarray:
        frame, self.info = self.env.reset(seed=seed)
        return frame

    def step(self, action) -> np.ndarray:
        frame, _, _, _, self.info = self.env.step(action)
        return frame
