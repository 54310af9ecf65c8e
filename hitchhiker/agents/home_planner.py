"""Going home by looking ahead: random-shooting MPC through the memory dream, with memory and without.

The flower planner (:mod:`.planner`) scores imagined action sequences by the reward heads. Going
home has no head to ask: what pays is *being home*, and which door is home lives only in memory.
The Stage IV engine (:class:`~hitchhiker.memory.memory_engine.MemoryEngine`) carries two memories
of a walk: its frame bank (what the land looked like where the explorer has been) and its pose
tracker (where the explorer stands relative to where tracking began: dead reckoning of the moves,
corrected by the shift read between consecutive frames, :mod:`hitchhiker.memory.pose`). Begin the
dream at the walk out's first frame, on home's doorstep, and home is the pose (0, 0).

Every planner below does the same search (Nagabandi et al., ICRA 2018, as :mod:`.planner` does): at
each real step, imagine K sequences of L moves from the real past (the first moves cycling through
the four, the rest uniform), score each, take the best one's first move, then look again from the
next *real* frame:

- **memory**: the dream starts from the whole real past (the walk out and the way back so far),
  its bank on; a sequence's imagined poses p_1..p_L, read by the tracker from the dream's frames,
  score

      score = gamma^l*                       if p_l* = (0, 0) first at step l*   (home reached)
            = -0.01 * min_l |p_l|_1          otherwise                            (closest approach)

- **no memory**: the dream starts from the last W real frames only, its bank off. Nothing says
  which door is home, so it scores the cue a frame holds: gamma^l* where the tile reader sees the
  explorer standing below a house (on a door) in imagined frame l* (:class:`~.scripted.LookHome`'s
  cue, looked for through the dream).
- **blind** (no dream): the memory planner's score, with each plan's poses dead-reckoned from the
  real pose; a move into rock counts as made. The control for what imagining adds.

Ties (nothing in sight) go to a random candidate. The planner drives its engine: every plan
replaces the engine's walks, so give it an engine of its own.

Shapes: B episodes, K candidates, L depth, n real frames so far, N = h * w tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from hitchhiker.agents.tasks import GoHome
from hitchhiker.interactive.walls import blocked_in_play
from hitchhiker.memory.memory_engine import MemoryEngine
from hitchhiker.memory.pose import ACTION_DELTAS
from hitchhiker.world import Tile
from hitchhiker.world.policies import MOVES
from hitchhiker.world.reader import read_tiles

MODES = ("memory", "no_memory", "blind")
"""The three go-home planners (module docstring)."""
_MOVES = np.array([int(m) for m in MOVES])


class HomePlanner:
    """Random-shooting MPC home through ``engine`` (a Stage IV ``MemoryEngine``); ``mode`` one
    of :data:`MODES`. ``candidates`` K sequences of ``depth`` L moves per real step."""

    def __init__(
        self,
        engine,
        mode: str = "memory",
        candidates: int = 16,
        depth: int = 6,
        gamma: float = 0.95,
        seed: int = 0,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        if candidates < len(_MOVES):
            raise ValueError(f"candidates must be >= {len(_MOVES)} (every first move once)")
        if depth < 1:
            raise ValueError(f"depth must be >= 1; got {depth}")
        if not isinstance(engine, MemoryEngine):
            raise ValueError(
                f"the go-home planner needs a Stage IV MemoryEngine (a pose tracker and a bank); "
                f"got {type(engine).__name__}"
            )
        self.engine, self.mode = engine, mode
        self.candidates, self.depth, self.gamma = int(candidates), int(depth), float(gamma)
        self.rng = np.random.default_rng(seed)

    def sequences(self, b: int) -> np.ndarray:
        """(B * K, L) move sequences: first moves cycle through the four, the rest uniform."""
        seq = _MOVES[self.rng.integers(0, len(_MOVES), (b, self.candidates, self.depth))]
        seq[:, :, 0] = _MOVES[np.arange(self.candidates) % len(_MOVES)]
        return seq.reshape(b * self.candidates, self.depth)

    @torch.no_grad()
    def plan(self, tokens: torch.Tensor, actions) -> np.ndarray:
        """The next move (B,) of each episode from its real past: token ids (B, n, N) of the
        frames since the walk out began (on home's doorstep) and the actions (B, n-1) between."""
        b, n = tokens.shape[:2]
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (b, n - 1):
            raise ValueError(
                f"expected the actions (B={b}, n-1={n - 1}) between the frames; got {actions.shape}"
            )
        k, eng = self.candidates, self.engine
        if self.mode == "no_memory":  # the window only: the walk out is forgotten
            w = eng.context
            tokens, actions = tokens[:, -w:], actions[:, max(0, actions.shape[1] - (w - 1)) :]
        eng.use_memory = self.mode == "memory"
        eng.start_from(tokens.repeat_interleave(k, 0), np.repeat(actions, k, 0))
        seq = self.sequences(b)
        pose = eng.poses
        first = np.full(b * k, -1)  # the step home (or a door) was first reached
        closest = np.abs(pose).sum(1).astype(float)
        for step in range(self.depth):
            if self.mode == "blind":
                pose = pose + ACTION_DELTAS[seq[:, step]]
            else:
                drawn = eng.imagine(seq[:, step])
                pose = eng.poses
            if self.mode == "no_memory":
                kinds = read_tiles(eng.decode(drawn)).kinds
                me = np.array(kinds.shape[1:]) // 2
                there = kinds[:, me[0] - 1, me[1]] == Tile.HOUSE
            else:
                there = (pose == 0).all(1)
                closest = np.minimum(closest, np.abs(pose).sum(1))
            first[(first < 0) & there] = step
        missed = 0.0 if self.mode == "no_memory" else -0.01 * closest  # no door: no closeness
        score = np.where(first >= 0, self.gamma ** np.maximum(first, 0), missed)
        score = score + self.rng.random(b * k) * 1e-6  # ties: a random candidate
        best = score.reshape(b, k).argmax(1)
        return seq.reshape(b, k, self.depth)[np.arange(b), best, 0]


@dataclass(frozen=True)
class HomePlay:
    """What a planner did going home: ``success`` (E,) per episode, and over all episodes the
    ``moves`` (up, down, left, right) it made in the real world, of which the world ``refused``
    (rock, water, a tree or the map's edge in the way: the explorer stayed)."""

    success: np.ndarray
    moves: int
    refused: int


def planner_home_success(
    planner: HomePlanner, seeds, progress: bool = False, **task_kw
) -> np.ndarray:
    """Success (E,) of ``planner`` going home in worlds ``seeds`` (:func:`planner_home_play`)."""
    return planner_home_play(planner, seeds, progress, **task_kw).success


def planner_home_play(planner: HomePlanner, seeds, progress: bool = False, **task_kw) -> HomePlay:
    """Play ``planner`` going home in worlds ``seeds`` (:class:`~.tasks.GoHome`, ``task_kw`` its
    settings), all episodes in lockstep; the real past is encoded by the planner's engine. Every
    real move of the way back is checked against the simulator (Stage III's
    :func:`~hitchhiker.interactive.walls.blocked_in_play`): a move after which the explorer stands
    where it stood was refused (a dream without walls plans such moves; each wastes a step)."""
    envs = [GoHome(**task_kw) for _ in seeds]
    infos = [env.reset(seed=s)[1] for env, s in zip(envs, seeds)]
    eng = planner.engine
    past = [eng.encode(i["walk_out"]["frames"]) for i in infos]  # (n, N) each
    acts = [list(i["walk_out"]["actions"]) for i in infos]
    way = [[np.asarray(i["position"])] for i in infos]  # positions from the walk out's end
    success = np.zeros(len(seeds))
    live = np.ones(len(seeds), dtype=bool)
    bar = tqdm(desc="going home", total=envs[0].back_steps if envs else 0, disable=not progress)
    while live.any():
        by_length: dict[int, list[int]] = {}  # walks out of different lengths plan apart
        for i in np.flatnonzero(live):
            by_length.setdefault(len(past[i]), []).append(int(i))
        for idx in by_length.values():
            tokens = torch.stack([past[i] for i in idx])
            planned = planner.plan(tokens, np.array([acts[i] for i in idx]).reshape(len(idx), -1))
            frames = []
            for i, move in zip(idx, planned):
                frame, reward, term, trunc, info = envs[i].step(int(move))
                frames.append(frame)
                acts[i].append(int(move))
                way[i].append(np.asarray(info["position"]))
                success[i] = reward
                live[i] = not (term or trunc)
            for i, tokens in zip(idx, eng.encode(np.stack(frames))):  # one batch per group
                past[i] = torch.cat([past[i], tokens[None]])
        bar.update()
    bar.total = bar.n  # every episode ended (home, or out of steps): the bar ends full
    bar.close()
    counts = [
        blocked_in_play([acts[i][len(acts[i]) - len(w) + 1 :]], [np.stack(w)])
        for i, w in enumerate(way)
    ]
    moves, refused = np.sum(counts, axis=0, dtype=int) if counts else (0, 0)
    return HomePlay(success, int(moves), int(refused))
