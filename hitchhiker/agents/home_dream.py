"""Going home, learned inside the dream: DAgger through the memory engine, its pose the teacher.

:mod:`.home_agent` teaches the go-home policies in the real world, by a teacher that reads the true
map. Here the same two networks (:class:`~.home_agent.HomePolicy`, with a GRU memory and without)
learn the task **only in the dream**: the walk out is real (recorded play, as every dream starts
from real frames), and the whole way back is imagined by notebook 06's memory engine
(:class:`~hitchhiker.memory.memory_engine.MemoryEngine`, its bank holding the walk out).

**The teacher lives in the dream too.** Nothing in a dream says where the map's walls are; what the
engine does know is its pose tracker's reading of where the explorer stands, relative to the walk
out's first frame, home's doorstep (:mod:`hitchhiker.memory.pose`). The teacher heads for pose
(0, 0) and learns the walls from the dream itself:

    move*(p) = argmin over the four moves m not seen blocked at p of  |p + delta_m|_1
               (ties: a move closer along the axis with the larger offset first; with every
               move closer blocked, a step aside along the axis with the smaller offset)

where a move counts as *blocked at p* once the dream showed it there and the tracker read no shift
(a frame that did not move: water, rock or a house, as the dream draws them). Round 0 the teacher
drives the dream; every later round the student drives and the teacher labels the states the
student reached (DAgger, Ross, Gordon and Bagnell 2011); the loss is
:func:`.home_agent.imitation_loss`. An episode ends in the dream when the pose is home again (a
dream success) or after ``back_steps`` moves.

Judged in the real world, as the real-trained pair is, on the same test worlds. What the dream
cannot teach shows as *dream success minus real success*, each student. One cause is measured
here, not guessed: :func:`blocked_moves` replays a dreamed way back in the real world and
:func:`~hitchhiker.interactive.walls.blocked_in_play` (Stage III's) counts blocked moves in
recorded play. The shipped dream draws no move blocked, because the play it learned from holds
none (its behaviour policies step only onto open tiles), so the teacher's step aside never fires
there and the student meets its first wall in the real world.

Shapes: B walks in a dream batch, K moves of the walk out, N = h * w tokens of a frame.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from hitchhiker.agents.home_agent import UNLABELLED, HomeWalker, walk_sequence
from hitchhiker.agents.tasks import GoHome
from hitchhiker.memory.memory_engine import MemoryEngine
from hitchhiker.memory.pose import ACTION_DELTAS
from hitchhiker.world.policies import MOVES

_MOVES = np.array([int(m) for m in MOVES])


def teacher_moves(poses: np.ndarray, blocked: list[set]) -> np.ndarray:
    """The teacher's move (B,) home to pose (0, 0) from dream poses (B, 2), each walk's moves
    seen blocked given as a set of (row, col, move) (module docstring)."""
    poses = np.asarray(poses, dtype=np.int64).reshape(-1, 2)
    if len(blocked) != len(poses):
        raise ValueError(f"expected one blocked set per pose ({len(poses)}); got {len(blocked)}")
    out = np.empty(len(poses), dtype=np.int64)
    for i, (r, c) in enumerate(poses):
        best = None
        for m in _MOVES:
            if (int(r), int(c), int(m)) in blocked[i]:
                continue
            dr, dc = ACTION_DELTAS[m]
            after = abs(r + dr) + abs(c + dc)
            # ties: closer along the axis with the larger offset; else a step aside (along the
            # axis with the smaller offset), never back the way it came when it need not
            along = abs(r) if dr else abs(c)
            key = (after, -along if after < abs(r) + abs(c) else along)
            if best is None or key < best[0]:
                best = (key, int(m))
        # every move blocked (never seen in practice): try the first of the four again
        out[i] = best[1] if best is not None else int(_MOVES[0])
    return out


def _dream_batch(engine, walks, tokenizer, walker, back_steps: int):
    """Dream the way back of B walks out of one length, the ``walker`` driving (None: the
    teacher); (dream success (B,), episodes as :func:`play_dream_home` returns them)."""
    seqs = [walk_sequence(tokenizer, w) for w in walks]
    b, grid = len(seqs), seqs[0][0].shape[1:]
    tokens = torch.stack([s[0] for s in seqs]).flatten(2).to(engine.device)  # (B, K+1, N)
    acts = np.stack([s[1][1:].numpy() for s in seqs]).reshape(b, -1)  # (B, K)
    engine.use_memory = True
    engine.start_from(tokens, acts)
    if walker is not None:
        walker.start(walks)
    here = torch.stack([s[0][-1] for s in seqs])  # (B, h, w) the frame the way back starts on
    moved = np.array([int(s[1][-1]) for s in seqs])
    poses = engine.poses
    success = (poses == 0).all(1).astype(float)
    live = success == 0
    blocked: list[set] = [set() for _ in range(b)]
    records = [([], [], []) for _ in range(b)]
    made = [[] for _ in range(b)]  # every move of the way back, the last one too
    tracked = [[p.copy()] for p in poses]  # the dream's pose before each move and after the last
    for _ in range(back_steps):
        if not live.any():
            break
        labels = teacher_moves(poses, blocked)
        moves = labels if walker is None else walker.act_tokens(here)
        for i in np.flatnonzero(live):
            records[i][0].append(here[i].cpu())
            records[i][1].append(int(moved[i]))
            records[i][2].append(int(labels[i]))
        drawn = engine.imagine(moves)
        after = engine.poses
        for i in np.flatnonzero(live):
            made[i].append(int(moves[i]))
            tracked[i].append(after[i].copy())
        for i in np.flatnonzero(live & (after == poses).all(1)):
            blocked[i].add((int(poses[i, 0]), int(poses[i, 1]), int(moves[i])))
        home = live & (after == 0).all(1)
        success[home], live = 1.0, live & ~home
        here, moved, poses = drawn.view(b, *grid), np.asarray(moves), after
    episodes = []
    for (tokens_walk, prev_walk), (seen, prev, labels), moves, where in zip(
        seqs, records, made, tracked
    ):
        k = len(prev_walk) - 1
        episodes.append(
            {
                "tokens": torch.cat([tokens_walk[:-1], *(t[None] for t in seen)])
                if seen
                else tokens_walk[:-1],
                "prev": torch.as_tensor([*prev_walk[:-1].tolist(), *prev], dtype=torch.long),
                "labels": torch.as_tensor([UNLABELLED] * k + labels, dtype=torch.long),
                "moves": np.asarray(moves, dtype=np.int64),
                "poses": np.stack(where),
            }
        )
    return success, episodes


def play_dream_home(
    engine: MemoryEngine,
    seeds,
    tokenizer,
    walker: HomeWalker | None = None,
    batch: int = 64,
    progress: bool = False,
    **task_kw,
):
    """The way back of go home in worlds ``seeds`` dreamed by ``engine`` from each real walk out,
    the ``walker`` driving (None: the teacher). The same return as
    :func:`.home_agent.play_home`: (dream success (E,), episodes), an episode a dict of tokens
    (T, h, w), previous moves (T,) and teacher labels (T,), UNLABELLED on the walk out; and, of
    the M moves of the way back, ``moves`` (M,) and the dream's ``poses`` (M+1, 2), before each
    move and after the last."""
    if not isinstance(engine, MemoryEngine):
        raise ValueError(
            f"the go-home dream needs a Stage IV MemoryEngine (a pose tracker and a bank); "
            f"got {type(engine).__name__}"
        )
    task = GoHome(**task_kw)
    walks = [task.reset(seed=s)[1]["walk_out"] for s in seeds]
    groups: dict[int, list[int]] = {}  # walks out of different lengths dream apart
    for i, w in enumerate(walks):
        groups.setdefault(len(w["actions"]), []).append(i)
    chunks = [idx[j : j + batch] for idx in groups.values() for j in range(0, len(idx), batch)]
    success, episodes = np.zeros(len(seeds)), [None] * len(seeds)
    for idx in tqdm(chunks, desc="dreaming the way back", disable=not progress):
        got, eps = _dream_batch(engine, [walks[i] for i in idx], tokenizer, walker, task.back_steps)
        for i, s, ep in zip(idx, got, eps):
            success[i], episodes[i] = s, ep
    return success, episodes


def dreamed_and_real(engine, episode: dict, seed: int, **task_kw) -> tuple[np.ndarray, np.ndarray]:
    """One way back of :func:`play_dream_home` beside the truth: the frames the ``engine`` dreamed
    (T, 64, 64, 3) and the real world's after the same moves from the same walk out's end, world
    ``seed`` (T, 64, 64, 3). Frame t is the one the t-th move was chosen on."""
    out = int((episode["labels"] == UNLABELLED).sum())  # the walk out's frames but its end
    moves = episode["prev"][out + 1 :].tolist()  # the move into each later frame
    dreamed = engine.decode(episode["tokens"][out:].flatten(1).to(engine.device))
    task = GoHome(**task_kw)
    real = [task.reset(seed=seed)[0]] + [task.step(m)[0] for m in moves]
    return dreamed, np.stack(real)


def blocked_moves(episode: dict, seed: int, **task_kw) -> tuple[np.ndarray, np.ndarray]:
    """Which moves of a dreamed way back were blocked (M,) in the dream (its tracker read no
    shift) and in the real world (the same moves made from the same walk out's end, world
    ``seed``: the explorer did not move), up to the move that ends the real episode. Where the
    dream walks through what the world does not, the teacher meets no wall to step aside from."""
    poses = np.asarray(episode["poses"])
    in_dream = (poses[1:] == poses[:-1]).all(1)
    task = GoHome(**task_kw)
    task.reset(seed=seed)
    world, in_world = task.env.unwrapped, []
    for move in episode["moves"]:
        before = tuple(world.position)
        *_, term, trunc, _ = task.step(int(move))
        in_world.append(tuple(world.position) == before)
        if term or trunc:  # home (or out of moves) in the world first: the rest is not compared
            break
    return in_dream[: len(in_world)], np.array(in_world, dtype=bool)
