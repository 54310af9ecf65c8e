"""Reference policies for the tasks: random, and scripted ones that read the simulator's truth.

They are the yardsticks of Stage V's table, not agents: the random policy is the floor every
learned agent must clear, the scripted ones are privileged (they read the true map, as the data
collectors of :mod:`hitchhiker.world.policies` do) and show what a task pays when it is played well.

* :class:`RandomPolicy` — uniform over the 6 actions.
* :class:`FlowerScript` — breadth-first search over (cell, heading) states to the nearest state that
  *faces* a flower, then ``interact``. A move onto walkable ground moves the explorer, so facing a
  flower means arriving next to it by a step towards it (or bumping into something): the search
  runs over headings as well as cells.
* :class:`HomeScript` — the shortest path back to the door (go home with a perfect map).
* :class:`RetraceHome` — go home *with memory* and no map: it keeps the walk out it was shown
  (``info["walk_out"]["actions"]``) and undoes it, last move first.
* :class:`LookHome` — go home *without memory*: it sees only the current frame (read by the tile
  reader, as a learned agent would see it) and walks to the door of the nearest house in view, or
  at random when no house is in view. Houses look alike: the nearest is often not home.

Every policy has ``reset(env, seed)`` and ``act(obs, info) -> int`` (one world action).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from hitchhiker.agents.tasks import path_distances
from hitchhiker.world import HEADING_DELTAS, Action, Tile, read_tiles
from hitchhiker.world.policies import DELTA, MOVES


class RandomPolicy:
    """Uniformly random actions (seeded per episode)."""

    name = "random"

    def reset(self, env, seed: int) -> None:
        self.rng = np.random.default_rng([seed, 11])

    def act(self, obs, info) -> int:
        return int(self.rng.integers(len(Action)))


class FlowerScript:
    """Walk to the nearest state facing a flower the world grew, then pick it (privileged)."""

    name = "scripted"

    def __init__(self, limit: int = 4000):
        self.limit = limit  # states searched before giving up (then: a random move)

    def reset(self, env, seed: int) -> None:
        self.env, self.rng = env.unwrapped, np.random.default_rng([seed, 13])
        self.grown = self.env.base_map.kinds == Tile.FLOWERS

    def act(self, obs, info) -> int:
        world = self.env
        kinds = world.full_map()
        flowers = (kinds == Tile.FLOWERS) & self.grown
        size = kinds.shape[0]
        start = (*world.position, world.heading)

        def faces_flower(r, c, h):
            fr, fc = r + HEADING_DELTAS[h][0], c + HEADING_DELTAS[h][1]
            return 0 <= fr < size and 0 <= fc < size and flowers[fr, fc]

        if faces_flower(*start):
            return int(Action.INTERACT)
        first = {start: None}
        queue = deque([start])
        while queue and len(first) < self.limit:
            r, c, h = state = queue.popleft()
            for m in MOVES:
                nr, nc = r + DELTA[m][0], c + DELTA[m][1]
                nxt = (nr, nc, int(m) - 1) if world.walkable(nr, nc) else (r, c, int(m) - 1)
                if nxt in first:
                    continue
                first[nxt] = m if state == start else first[state]
                if faces_flower(*nxt):
                    return int(first[nxt])
                queue.append(nxt)
        return int(self.rng.choice(MOVES))


class HomeScript:
    """Walk the shortest path back to ``info["home"]`` (privileged: reads the true map)."""

    name = "scripted"

    def reset(self, env, seed: int) -> None:
        self.env, self._dist = env.unwrapped, None

    def act(self, obs, info) -> int:
        world = self.env
        if self._dist is None:  # the map's walkable tiles never change (interactions keep them)
            self._dist = path_distances(world.walkable, tuple(info["home"]), world.config.map_size)
        r, c = world.position
        size = self._dist.shape[0]

        def cost(m):
            nr, nc = r + DELTA[m][0], c + DELTA[m][1]
            inside = 0 <= nr < size and 0 <= nc < size and self._dist[nr, nc] >= 0
            return self._dist[nr, nc] if inside else size * size

        return int(min(MOVES, key=cost))


OPPOSITE = {
    Action.UP: Action.DOWN,
    Action.DOWN: Action.UP,
    Action.LEFT: Action.RIGHT,
    Action.RIGHT: Action.LEFT,
}


class RetraceHome:
    """Go home by undoing the remembered walk out (memory of its own actions, no map)."""

    name = "retrace (memory)"

    def reset(self, env, seed: int) -> None:
        self.plan = None

    def act(self, obs, info) -> int:
        if self.plan is None:  # the first call sees reset's info, with the walk out
            walk = [Action(int(a)) for a in info["walk_out"]["actions"]]
            self.plan = [OPPOSITE.get(a, Action.NOOP) for a in reversed(walk)]
        return int(self.plan.pop(0)) if self.plan else int(Action.NOOP)


class LookHome:
    """Go to the door below the nearest house in the current frame (no memory, no map)."""

    name = "look (no memory)"

    def reset(self, env, seed: int) -> None:
        self.rng = np.random.default_rng([seed, 17])

    def act(self, obs, info) -> int:
        kinds = read_tiles(np.asarray(obs)[None]).kinds[0]
        me = np.array(kinds.shape) // 2
        houses = np.argwhere(kinds == Tile.HOUSE)
        if len(houses) == 0:
            return int(self.rng.choice(MOVES))
        doors = houses + [1, 0]  # the door is the tile below a house
        dr, dc = doors[np.abs(doors - me).sum(1).argmin()] - me
        if dr == 0 and dc == 0:
            return int(Action.NOOP)
        if abs(dr) >= abs(dc):
            return int(Action.DOWN if dr > 0 else Action.UP)
        return int(Action.RIGHT if dc > 0 else Action.LEFT)
