"""Does the engine respect walls? Moves the simulator blocks, and what the engine draws for them.

Water, rock and houses block the explorer (``world.BLOCKING``), and so does a sheep it cannot push
on. In the simulator a blocked move leaves the view where it was; a free move scrolls it one tile.
*Action following* (:mod:`.rollout`) checks the engine against the simulator's shift along recorded
episodes, but a recording says little about walls: the behaviour policies of
:mod:`hitchhiker.world.policies` read the true map and step only onto open tiles, so recorded play
holds almost no blocked move, and an engine that scrolls on *every* move scores as well as one that
knows what stops the explorer.

So we ask directly. A *probe* is a moment of a held-out episode: its last K real frames as the
engine's context, and one of the four moves. The simulator, replayed to that moment from the
world's seed, answers exactly whether the move is blocked and what the next frame is. The engine
draws its next frame from the same context; :func:`~.rollout.estimate_shift` reads which way its
view scrolled. Two figures, each a mean over episodes with its 95% interval:

- ``blocked_moves_drawn_blocked``: of the moves the simulator blocked, the share the engine drew
  with the view where it was (over the episodes that met a wall);
- ``free_moves_drawn_moved``: of the free moves, the share drawn scrolled the right way.

Both are needed: a frozen world (:class:`~.truth.CopyLastFrame`) scores 1 on the first and 0 on the
second; an engine that has learned "every move scrolls" scores the opposite.

Shapes: P probes, E episodes, K context frames, H x W pixels (64 x 64).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import torch

from hitchhiker.interactive.rollout import estimate_shift, run_rollout
from hitchhiker.interactive.truth import truth_set
from hitchhiker.metrics import mean_interval
from hitchhiker.world import HitchhikerWorld
from hitchhiker.world.dataset import LEARNING_WORLD
from hitchhiker.world.env import WorldConfig

MOVES = (1, 2, 3, 4)
"""The four moves (up, down, left, right) tried at every probed moment; index into ``SHIFTS``."""


@dataclass(frozen=True)
class WallProbes:
    """P probes: a real context, a move, and the simulator's exact answer."""

    context_frames: np.ndarray
    """(P, K, H, W, 3) uint8: the last K real frames before the move."""
    context_actions: np.ndarray
    """(P, K-1) int: the recorded actions between them."""
    moves: np.ndarray
    """(P,) int: the move tried (1 up, 2 down, 3 left, 4 right)."""
    blocked: np.ndarray
    """(P,) bool: the simulator left the explorer where it was."""
    next_frames: np.ndarray
    """(P, H, W, 3) uint8: the simulator's frame after the move."""
    episode: np.ndarray
    """(P,) int: which held-out episode the probe comes from (the unit of the intervals)."""

    def __len__(self) -> int:
        return len(self.moves)


_PROBES: dict[str, WallProbes] = {}


def wall_probes(
    split: str = "test",
    episodes: int = 64,
    context: int = 4,
    steps: int = 64,
    every: int = 4,
    world: WorldConfig | None = None,
) -> WallProbes:
    """Probes at every ``every``-th moment of ``episodes`` recorded episodes of ``split`` (the
    episodes :func:`~.truth.truth_set` records, ``steps`` moves after the first ``context``
    frames), each moment with each of the four moves. Cached per arguments; arrays are read-only."""
    if every < 1:
        raise ValueError(f"every must be >= 1; got {every}")
    world = world or LEARNING_WORLD
    key = json.dumps([split, episodes, context, steps, every, dataclasses.asdict(world)])
    if key in _PROBES:
        return _PROBES[key]
    truth = truth_set(split, episodes, context, steps, world=world)
    k = truth.context
    times = range(k - 1, truth.frames.shape[1] - 1, every)  # the last context frame's index
    fields: dict[str, list] = {f.name: [] for f in dataclasses.fields(WallProbes)}
    env = HitchhikerWorld(world, max_steps=0)
    for e, seed in enumerate(truth.seeds):
        frame = env.reset(seed=int(seed))[0]
        for t in range(truth.frames.shape[1] - 1):
            if not np.array_equal(frame, truth.frames[e, t]):  # the replay must be the recording
                raise RuntimeError(f"episode {e} does not replay from seed {int(seed)} at step {t}")
            if t in times:
                for move in MOVES:
                    trial = copy.deepcopy(env)  # the world at t, sheep and random state included
                    after = trial.step(move)[0]
                    fields["context_frames"].append(truth.frames[e, t - k + 1 : t + 1])
                    fields["context_actions"].append(truth.actions[e, t - k + 1 : t])
                    fields["moves"].append(move)
                    fields["blocked"].append(trial.position == env.position)
                    fields["next_frames"].append(after)
                    fields["episode"].append(e)
            frame = env.step(int(truth.actions[e, t]))[0]
    probes = WallProbes(**{name: np.array(v) for name, v in fields.items()})
    for name in fields:
        getattr(probes, name).setflags(write=False)
    _PROBES[key] = probes
    return probes


@torch.no_grad()
def draw_probes(engine, probes: WallProbes, seed: int = 0, batch_size: int = 64) -> np.ndarray:
    """(P, H, W, 3) the engine's next frame for every probe (its sampler seeded with ``seed``)."""
    if hasattr(engine, "seed"):
        engine.seed = seed
    drawn = run_rollout(
        engine,
        probes.context_frames,
        probes.context_actions,
        probes.moves[:, None],
        batch_size=batch_size,
    )
    return drawn[:, 0]


def drawn_shifts(probes: WallProbes, drawn) -> np.ndarray:
    """(P,) which way each drawn frame scrolled from the last real one: index into ``SHIFTS``
    (0: not at all; otherwise the move it shows)."""
    drawn = np.asarray(drawn)
    if drawn.shape != probes.next_frames.shape:
        raise ValueError(
            f"expected one drawn frame per probe, {probes.next_frames.shape}; got {drawn.shape}"
        )
    return estimate_shift(probes.context_frames[:, -1], drawn)


def blocked_in_play(actions, positions) -> tuple[int, int]:
    """(moves, of which the world blocked) in recorded play: actions (E, T) and the explorer's
    positions (E, T+1, 2). A world model learns walls only from blocked moves its data shows."""
    actions, positions = np.asarray(actions), np.asarray(positions)
    moves = np.isin(actions, MOVES)
    stayed = (positions[:, 1:] == positions[:, :-1]).all(-1)
    return int(moves.sum()), int((moves & stayed).sum())


def wall_figures(probes: WallProbes, drawn, prefix: str) -> dict[str, float]:
    """``prefix.blocked_moves_drawn_blocked`` and ``prefix.free_moves_drawn_moved`` (module
    docstring), per-episode means with ``_ci95``, and how many probes of each kind there were."""
    shift = drawn_shifts(probes, drawn)
    right = np.where(probes.blocked, shift == 0, shift == probes.moves)
    out: dict[str, float] = {}
    for name, kind in (("blocked_moves_drawn_blocked", True), ("free_moves_drawn_moved", False)):
        per_episode = [
            right[(probes.episode == e) & (probes.blocked == kind)].mean()
            for e in np.unique(probes.episode[probes.blocked == kind])
        ]
        out[f"{prefix}.{name}"], out[f"{prefix}.{name}_ci95"] = mean_interval(per_episode)
    out[f"{prefix}.blocked_probes"] = float(probes.blocked.sum())
    out[f"{prefix}.free_probes"] = float((~probes.blocked).sum())
    return out


def evaluate_walls(engine, prefix: str, seed: int = 0, **probe_kw) -> dict[str, float]:
    """:func:`wall_figures` of ``engine`` on :func:`wall_probes` (``probe_kw``)."""
    probes = wall_probes(**probe_kw)
    return wall_figures(probes, draw_probes(engine, probes, seed), prefix)


def wall_in_view(seeds, within: int = 3, world: WorldConfig | None = None) -> tuple[int, int, int]:
    """(seed, move, moves) of the first world among ``seeds`` whose first frame shows what blocks
    a straight walk: ``move`` (1 up, 2 down, 3 left, 4 right) is refused after ``moves`` free
    steps, ``moves < within`` (the view reaches 4 tiles out, so the wall is in the dream's first
    frame too). Where to try walking into a wall in a dream that starts from a world's first frame."""
    env = HitchhikerWorld(world or LEARNING_WORLD, max_steps=0)
    for seed in seeds:
        for move in MOVES:
            env.reset(seed=int(seed))
            for made in range(within):
                before = env.position
                env.step(move)
                if env.position == before:
                    return int(seed), move, made
    raise ValueError(f"no world among these seeds has a wall within {within} moves of its start")


def plot_blocked(probes: WallProbes, drawn: dict, count: int = 4, scale: float = 1.0):
    """A row per blocked probe: the last real frame, the simulator's answer (the same view), then
    each engine's drawn frame (``drawn``: name -> (P, H, W, 3)), titled with the shift it shows."""
    import matplotlib.pyplot as plt

    from hitchhiker.world import ACTION_NAMES

    blocked = np.flatnonzero(probes.blocked)
    _, first = np.unique(probes.episode[blocked], return_index=True)  # one per episode: variety
    picks = blocked[np.sort(first)][:count]
    if len(picks) == 0:
        raise ValueError("these probes hold no blocked move: probe more episodes")
    shifts = {name: drawn_shifts(probes, frames) for name, frames in drawn.items()}
    cols = 2 + len(drawn)
    fig, axes = plt.subplots(
        len(picks), cols, figsize=(1.9 * cols * scale, 2.0 * len(picks) * scale), squeeze=False
    )
    for row, p in zip(axes, picks):
        move = ACTION_NAMES[int(probes.moves[p])]
        panels = [
            ("last real frame", probes.context_frames[p, -1]),
            (f"simulator: {move} blocked", probes.next_frames[p]),
        ]
        panels += [
            (
                f"{name}: {'stays' if shifts[name][p] == 0 else 'moves ' + ACTION_NAMES[int(shifts[name][p])]}",
                frames[p],
            )
            for name, frames in drawn.items()
        ]
        for ax, (title, image) in zip(row, panels):
            ax.imshow(image)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return fig
