"""Tasks: the world with a reward, read from the simulator's exact truth (Stage V's starting point).

Until Stage V the world's reward is always 0: it was a place to be modelled, not a game. An agent
needs a goal. Each task here is a gymnasium wrapper of :class:`~hitchhiker.world.HitchhikerWorld`
whose reward and termination come from what the simulator *did* (``info["changed"]``, the true
position), never from pixels, so every return we report is exact.

**Flower picker.** ``steps`` moves (32) from the spawn; ``interact`` while facing flowers picks
them (they turn to grass):

    r_t = +1  if the step picked a flower the world grew     (change flowers -> grass at a cell)
           0  otherwise (a move, a cut tree, a planted flower, picking a flower you planted)

Picking a flower you planted yourself earns nothing, or "plant, pick, plant, pick" on one cell
would beat walking to real flowers (the world allows it: grass -> flowers is also ``interact``).
The episode is truncated after ``steps``; it never terminates.

**Go home.** The explorer starts on the door tile of the house nearest the spawn (home). A
scripted walk of ``out_steps`` moves takes it away (``info["walk_out"]``: its frames and actions,
the only record of where home is once the house leaves the view); then the agent has
``back_steps`` moves to stand on the door again:

    r_t = +1 and terminate  when position == home;  truncate after back_steps

Several houses look alike and home is often out of sight, so an agent that sees only the current
frame must guess; one that remembers the walk out can retrace it (memory, Stage IV).

Shapes: R x C view tiles (8 x 8), the explorer at (R // 2, C // 2); T steps.
"""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np

from hitchhiker.world import HEADING_DELTAS, Action, HitchhikerWorld, Tile
from hitchhiker.world.dataset import LEARNING_WORLD
from hitchhiker.world.policies import DELTA, MOVES

TASKS = ("flower_picker", "go_home")
TERMINATES = {"flower_picker": False, "go_home": True}
"""Whether a task's episodes can end before the step cap (then a termination head is learned)."""


def facing_cells(heading, view: tuple[int, int] = (8, 8)) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) in the view of the cell the explorer faces, for heading(s) (...)."""
    d = HEADING_DELTAS[np.asarray(heading)]
    return view[0] // 2 + d[..., 0], view[1] // 2 + d[..., 1]


def pick_reward(tiles, heading, action, next_tiles=None) -> np.ndarray:
    """What a frame shows of the flower picker's reward: 1.0 where ``action`` is interact and the
    faced cell of ``tiles`` (..., R, C) holds flowers (and, given ``next_tiles``, holds grass after
    the step), else 0.0.

    It cannot tell a flower the world grew from one planted a few steps ago (the task pays only the
    first): the *reader's reward* of imagined frames, and the rule the reward head must learn."""
    tiles = np.asarray(tiles)
    rows, cols = facing_cells(heading, tiles.shape[-2:])
    lead = np.indices(rows.shape)
    faced = tiles[(*lead, rows, cols)]
    hit = (np.asarray(action) == Action.INTERACT) & (faced == Tile.FLOWERS)
    if next_tiles is not None:
        hit &= np.asarray(next_tiles)[(*lead, rows, cols)] == Tile.GRASS
    return hit.astype(np.float32)


def _faced_cells(positions, headings, actions, tiles):
    """The faced cell at each step of recorded play: its kind before (E, T) and after (E, T) the
    step, and its map cell (E, T, 2). ``interact`` never moves, so it is the same cell in the next
    view; after a move, ``after`` is another cell (only ``interact`` reads it)."""
    positions, headings, tiles = np.asarray(positions), np.asarray(headings), np.asarray(tiles)
    rows, cols = facing_cells(headings[:, :-1], tiles.shape[-2:])
    lead = np.indices(np.asarray(actions).shape)
    before = tiles[:, :-1][(*lead, rows, cols)]
    after = tiles[:, 1:][(*lead, rows, cols)]
    return before, after, positions[:, :-1] + HEADING_DELTAS[headings[:, :-1]]


def episode_rewards(positions, headings, actions, tiles) -> np.ndarray:
    """The flower picker's exact rewards (E, T) of recorded play: positions (E, T+1, 2), headings
    (E, T+1), actions (E, T), tiles (E, T+1, R, C) — what the wrapper would have paid, planted
    flowers tracked by map cell."""
    actions = np.asarray(actions)
    e, t = actions.shape
    before, after, cells = _faced_cells(positions, headings, actions, tiles)
    interact = actions == Action.INTERACT
    picked = interact & (before == Tile.FLOWERS) & (after == Tile.GRASS)
    planted = interact & (before == Tile.GRASS) & (after == Tile.FLOWERS)
    out = np.zeros((e, t), dtype=np.float32)
    for i in range(e):
        mine: set[tuple[int, int]] = set()
        for j in range(t):
            cell = (int(cells[i, j, 0]), int(cells[i, j, 1]))
            if planted[i, j]:
                mine.add(cell)
            elif picked[i, j] and cell not in mine:
                out[i, j] = 1.0
    return out


def action_rewards(positions, headings, actions, tiles) -> np.ndarray:
    """What *every* action would have been paid at every step of recorded play: (E, T, A).

    Moves and noop never pay; ``interact`` pays 1 where the faced cell holds flowers the world
    grew (not ones the episode planted before that step: those are tracked along the actions
    actually taken). Where the recorded action was taken, this is :func:`episode_rewards`. The
    simulator knows the counterfactual exactly, so the heads can learn the rule from every frame,
    not only from the few where the behaviour policy happened to interact."""
    actions = np.asarray(actions)
    e, t = actions.shape
    before, after, cells = _faced_cells(positions, headings, actions, tiles)
    planted = (actions == Action.INTERACT) & (before == Tile.GRASS) & (after == Tile.FLOWERS)
    out = np.zeros((e, t, len(Action)), dtype=np.float32)
    for i in range(e):
        mine: set[tuple[int, int]] = set()
        for j in range(t):
            cell = (int(cells[i, j, 0]), int(cells[i, j, 1]))
            if before[i, j] == Tile.FLOWERS and cell not in mine:
                out[i, j, Action.INTERACT] = 1.0
            if planted[i, j]:
                mine.add(cell)
    return out


class FlowerPicker(gym.Wrapper):
    """Pick flowers the world grew, +1 each, in ``steps`` moves from the spawn (module docstring).

    ``info`` adds ``"picked"`` (flowers paid for so far). Any world config works; the default is
    the learning world the engines were trained on (no day-night cycle).
    """

    name = "flower_picker"
    terminates = False

    def __init__(self, env: HitchhikerWorld | None = None, steps: int = 32):
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be a positive int; got {steps!r}")
        super().__init__(env if env is not None else HitchhikerWorld(LEARNING_WORLD, max_steps=0))
        self.steps = int(steps)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._t, self._picked, self._planted = 0, 0, set()
        return obs, {**info, "picked": 0}

    def step(self, action):
        obs, _, _, _, info = self.env.step(action)
        reward, changed = 0.0, info["changed"]
        if changed is not None:
            r, c, old, new = changed
            if old == Tile.GRASS and new == Tile.FLOWERS:
                self._planted.add((r, c))
            elif old == Tile.FLOWERS and new == Tile.GRASS and (r, c) not in self._planted:
                reward = 1.0
                self._picked += 1
        self._t += 1
        return obs, reward, False, self._t >= self.steps, {**info, "picked": self._picked}


def home_of(env: HitchhikerWorld) -> tuple[int, int]:
    """The door tile (walkable, south of a house) nearest the spawn within its region: home."""
    kinds, region = env.base_map.kinds, env.base_map.reachable
    below = np.zeros_like(region)
    below[1:] = kinds[:-1] == Tile.HOUSE
    doors = np.argwhere(below & region)
    if len(doors) == 0:
        return env.base_map.spawn
    r, c = doors[np.argmin(np.abs(doors - env.base_map.spawn).sum(1))]
    return int(r), int(c)


def path_distances(walkable, start: tuple[int, int], size: int) -> np.ndarray:
    """(S, S) int shortest-path length in moves from ``start`` (-1 unreachable)."""
    dist = np.full((size, size), -1, dtype=np.int64)
    dist[start] = 0
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        for m in MOVES:
            nr, nc = r + DELTA[m][0], c + DELTA[m][1]
            if 0 <= nr < size and 0 <= nc < size and dist[nr, nc] < 0 and walkable(nr, nc):
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


class GoHome(gym.Wrapper):
    """Walked away from home by a script, come back in ``back_steps`` moves (module docstring).

    ``reset`` returns the frame at the end of the walk out; ``info["walk_out"]`` holds its frames
    (K+1, H, W, 3) and actions (K,), ``info["home"]`` the door's map cell. The walk goes to a tile
    ``out_steps`` moves from home by a shortest path (the farthest reachable if none is that far).
    """

    name = "go_home"
    terminates = True

    def __init__(
        self, env: HitchhikerWorld | None = None, out_steps: int = 8, back_steps: int = 24
    ):
        for key, value in (("out_steps", out_steps), ("back_steps", back_steps)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{key} must be a positive int; got {value!r}")
        super().__init__(env if env is not None else HitchhikerWorld(LEARNING_WORLD, max_steps=0))
        self.out_steps, self.back_steps = int(out_steps), int(back_steps)

    def reset(self, *, seed=None, options=None):
        if options:
            raise ValueError(f"GoHome.reset takes no options; got {sorted(options)}")
        world = self.env.unwrapped
        world.reset(seed=seed)
        self.home = home_of(world)
        obs, info = self.env.reset(seed=seed, options={"start": self.home})
        size = world.config.map_size
        dist = path_distances(world.walkable, self.home, size)
        far = min(self.out_steps, int(dist.max()))
        goals = np.argwhere(dist == far)
        rng = np.random.default_rng([int(world.map_seed), 7])
        goal = tuple(int(v) for v in goals[rng.integers(len(goals))])
        frames, actions = [obs], []
        for move in self._path(dist, goal):  # walk back along decreasing distance, then reverse
            obs, _, _, _, info = self.env.step(move)
            frames.append(obs)
            actions.append(int(move))
        self._t = 0
        walk = {"frames": np.stack(frames), "actions": np.asarray(actions, dtype=np.int64)}
        return obs, {**info, "walk_out": walk, "home": self.home}

    def _path(self, dist: np.ndarray, goal: tuple[int, int]) -> list[Action]:
        """A shortest move sequence home -> goal, read off the distance map."""
        moves, cell = [], goal
        while dist[cell] > 0:
            for m in MOVES:
                prev = (cell[0] - DELTA[m][0], cell[1] - DELTA[m][1])
                if (
                    0 <= prev[0] < dist.shape[0]
                    and 0 <= prev[1] < dist.shape[1]
                    and dist[prev] == dist[cell] - 1
                ):
                    moves.append(m)
                    cell = prev
                    break
        return moves[::-1]

    def step(self, action):
        obs, _, _, _, info = self.env.step(action)
        self._t += 1
        home = tuple(int(v) for v in info["position"]) == self.home
        truncated = not home and self._t >= self.back_steps
        return obs, float(home), home, truncated, {**info, "home": self.home}


def make_task(name: str, env: HitchhikerWorld | None = None, **kwargs) -> gym.Wrapper:
    """A task wrapper by name ("flower_picker", "go_home"); keyword settings go to it."""
    if name == "flower_picker":
        return FlowerPicker(env, **kwargs)
    if name == "go_home":
        return GoHome(env, **kwargs)
    raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
