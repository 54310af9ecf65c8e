"""Behaviour policies: who walks the explorer while we record the data every stage learns from.

A world model only learns what its data shows. Four ways of walking give four kinds of data:

* :class:`RandomWalk` — a random walk with *momentum* (keep going the same way with probability
  ``momentum``), so trajectories travel instead of jittering in place; it sometimes interacts, so
  the data holds cut trees and planted flowers (persistent changes a model must learn).
* :class:`WallBumper` — the random walk, pressing now and then into what blocks it, so the data
  shows moves the world refuses (the others never make one).
* :class:`Explorer` — covers new ground: it keeps a map of what it has seen and walks (by
  breadth-first search over walkable tiles) to the nearest tile whose surroundings are still unseen.
  Coverage-heavy data for tokenizers and for learning what lies beyond the view.
* :class:`LoopWalk` — leaves a place and comes back after exactly ``period`` steps by walking out
  ``period // 2`` moves and retracing them. Revisits with exact ground truth are Stage IV's test:
  *when you return, is it still the same place?*

The policies are *privileged*: they read the true map through the env (``env.walkable``). They are
data collectors, not agents; agents that must act from pixels come in Stage V.

Shapes: positions are (row, col) map tiles; R x C is the view's tile grid.
"""

from __future__ import annotations

import inspect
from collections import deque

import numpy as np

from hitchhiker.world.env import Action, HitchhikerWorld

MOVES = (Action.UP, Action.DOWN, Action.LEFT, Action.RIGHT)
DELTA = {Action.UP: (-1, 0), Action.DOWN: (1, 0), Action.LEFT: (0, -1), Action.RIGHT: (0, 1)}
OPPOSITE = {
    Action.UP: Action.DOWN,
    Action.DOWN: Action.UP,
    Action.LEFT: Action.RIGHT,
    Action.RIGHT: Action.LEFT,
}


class Policy:
    """A behaviour policy: ``reset(env, rng)`` at the start of an episode, then ``act(info)``."""

    name = "policy"

    def reset(self, env: HitchhikerWorld, rng: np.random.Generator) -> None:
        self.env, self.rng = env, rng

    def act(self, info: dict) -> int:
        raise NotImplementedError

    def _open_moves(self, pos) -> list[Action]:
        r, c = int(pos[0]), int(pos[1])
        return [m for m in MOVES if self.env.walkable(r + DELTA[m][0], c + DELTA[m][1])]


class RandomWalk(Policy):
    """Random walk with momentum; interacts now and then."""

    name = "random"

    def __init__(self, momentum: float = 0.8, interact_prob: float = 0.05, noop_prob: float = 0.05):
        if not 0 <= momentum <= 1 or interact_prob + noop_prob > 1:
            raise ValueError("momentum must lie in [0, 1] and interact_prob + noop_prob <= 1")
        self.momentum, self.interact_prob, self.noop_prob = momentum, interact_prob, noop_prob

    def reset(self, env, rng):
        super().reset(env, rng)
        self.last = Action(int(rng.choice(MOVES)))

    def act(self, info: dict) -> int:
        u = self.rng.random()
        if u < self.interact_prob:
            return int(Action.INTERACT)
        if u < self.interact_prob + self.noop_prob:
            return int(Action.NOOP)
        open_moves = self._open_moves(info["position"])
        if self.last in open_moves and self.rng.random() < self.momentum:
            return int(self.last)
        # Turn: prefer open directions, so the walk does not press against a wall for long.
        choices = open_moves or list(MOVES)
        self.last = Action(int(self.rng.choice(choices)))
        return int(self.last)


class WallBumper(RandomWalk):
    """:class:`RandomWalk` that now and then walks into what blocks it.

    The other policies step only onto open tiles, so their recordings never show a move the world
    refuses, and a world model trained on them draws every move as made (Stage III's wall probes,
    :mod:`hitchhiker.interactive.walls`, measure it). Beside a blocking neighbour (water, rock, a
    house, the map's edge) this walk presses into it with probability ``bump_prob``; the view stays
    where it was and the explorer turns to face the wall, which is what the model must learn."""

    name = "bumper"

    def __init__(self, bump_prob: float = 0.6, **walk):
        super().__init__(**walk)
        if not 0 <= bump_prob <= 1:
            raise ValueError(f"bump_prob must lie in [0, 1]; got {bump_prob}")
        self.bump_prob = bump_prob

    def act(self, info: dict) -> int:
        open_moves = self._open_moves(info["position"])
        walls = [m for m in MOVES if m not in open_moves]
        if walls and self.bump_prob > 0 and self.rng.random() < self.bump_prob:
            return int(self.rng.choice(walls))  # momentum keeps its way: the walk goes on after
        return super().act(info)


def bfs_path(walkable, start, is_goal, limit: int = 20000) -> list[Action] | None:
    """Shortest move sequence from ``start`` to the first cell where ``is_goal(r, c)`` holds."""
    start = (int(start[0]), int(start[1]))
    parent = {start: None}
    queue = deque([start])
    while queue and len(parent) < limit:
        cell = queue.popleft()
        if cell != start and is_goal(*cell):
            path = []
            while parent[cell] is not None:
                prev, move = parent[cell]
                path.append(move)
                cell = prev
            return path[::-1]
        for m in MOVES:
            nxt = (cell[0] + DELTA[m][0], cell[1] + DELTA[m][1])
            if nxt not in parent and walkable(*nxt):
                parent[nxt] = (cell, m)
                queue.append(nxt)
    return None


class Explorer(Policy):
    """Walks to the nearest tile whose surroundings are unseen; covers new ground fast."""

    name = "explorer"

    def __init__(self, reach: int = 2):
        self.reach = reach  # a target counts as "new" if a tile within `reach` of it is unseen

    def reset(self, env, rng):
        super().reset(env, rng)
        size = env.config.map_size
        self.seen = np.zeros((size, size), dtype=bool)
        self.plan: list[Action] = []

    def _mark_seen(self, pos) -> None:
        rows, cols = self.env.view_shape
        r0, c0 = int(pos[0]) - rows // 2, int(pos[1]) - cols // 2
        s = self.seen.shape[0]
        self.seen[max(r0, 0) : min(r0 + rows, s), max(c0, 0) : min(c0 + cols, s)] = True

    def _unseen_near(self, r: int, c: int) -> bool:
        k, s = self.reach, self.seen.shape[0]
        window = self.seen[max(r - k, 0) : min(r + k + 1, s), max(c - k, 0) : min(c + k + 1, s)]
        return not window.all()

    def act(self, info: dict) -> int:
        pos = info["position"]
        self._mark_seen(pos)
        if self.plan and not info.get("moved", True) and info.get("step", 0) > 0:
            self.plan = []  # something (a rare pushed-animal jam) blocked us: plan again
        if not self.plan:
            self.plan = bfs_path(self.env.walkable, pos, self._unseen_near) or []
            if not self.plan:  # everything reachable is seen: wander
                open_moves = self._open_moves(pos) or list(MOVES)
                return int(self.rng.choice(open_moves))
        return int(self.plan.pop(0))


class LoopWalk(Policy):
    """Walk out ``period // 2`` moves, then retrace them: back at the start every ``period`` steps.

    With ``edit_every`` = n, every n-th step of the way out is an ``interact`` instead of a move
    (the faced cell changes, if it can), and the way back, done sooner, waits at the start.

    ``returns`` lists the steps at which the explorer stood again where its loop began (ground
    truth for revisit tests). Odd periods spend their extra step on a no-op at the turning point.
    """

    name = "loop"

    def __init__(self, period: int = 32, momentum: float = 0.7, edit_every: int = 0):
        if period < 2:
            raise ValueError(f"period must be >= 2 steps; got {period}")
        if edit_every < 0 or edit_every == 1:
            raise ValueError(f"edit_every must be 0 (no edits) or >= 2 steps; got {edit_every}")
        self.period, self.momentum, self.edit_every = period, momentum, edit_every

    def reset(self, env, rng):
        super().reset(env, rng)
        self.t = 0
        self.out: list[Action] = []
        self.back: list[Action] | None = None
        self.start = None
        self.returns: list[int] = []

    def act(self, info: dict) -> int:
        pos = (int(info["position"][0]), int(info["position"][1]))
        phase = self.t % self.period
        self.t += 1
        if phase == 0:
            if self.start is not None and pos == self.start:
                self.returns.append(int(info["step"]))
            self.start, self.out, self.back = pos, [], None
        half = self.period // 2
        edit = self.edit_every and phase % self.edit_every == self.edit_every - 1
        if phase < half and edit and self.out:
            # change the world on the way out (cut a tree, plant or pick flowers) at the cell the
            # last move faces; the way back retraces the moves, so it passes the edit again
            return int(Action.INTERACT)
        if phase < half:
            open_moves = self._open_moves(pos)
            if self.out and self.out[-1] in open_moves and self.rng.random() < self.momentum:
                move = self.out[-1]
            elif open_moves:
                # avoid immediately undoing the last move so the loop really leaves the place
                fwd = [m for m in open_moves if not self.out or m != OPPOSITE[self.out[-1]]]
                move = Action(int(self.rng.choice(fwd or open_moves)))
            else:
                return int(Action.NOOP)
            self.out.append(move)
            return int(move)
        if phase == half and self.period % 2:
            return int(Action.NOOP)
        if self.back is None:  # the turning point: retrace the way out, once
            self.back = [OPPOSITE[m] for m in reversed(self.out)]
        return int(self.back.pop(0)) if self.back else int(Action.NOOP)


POLICIES = {"random": RandomWalk, "bumper": WallBumper, "explorer": Explorer, "loop": LoopWalk}


def _policy_class(name: str) -> type[Policy]:
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; expected one of {', '.join(POLICIES)}")
    return POLICIES[name]


def make_policy(name: str, **kwargs) -> Policy:
    """A fresh policy by name ("random", "bumper", "explorer", "loop")."""
    return _policy_class(name)(**kwargs)


def policy_settings(name: str, **kwargs) -> dict:
    """Every setting policy ``name`` plays with: the defaults of each ``__init__`` along its class
    hierarchy, overridden by ``kwargs`` (what a recording's cache key must hold, so that changing a
    default records again instead of reusing stale play). Unknown names get a clear error."""
    settings = {}
    for cls in reversed(_policy_class(name).__mro__):
        if "__init__" in vars(cls) and cls is not object:
            for p in inspect.signature(cls.__init__).parameters.values():
                if p.default is not inspect.Parameter.empty:
                    settings[p.name] = p.default
    unknown = sorted(set(kwargs) - set(settings))
    if unknown:
        raise ValueError(f"policy {name!r} takes {sorted(settings)}; got unknown {unknown}")
    return {**settings, **kwargs}
