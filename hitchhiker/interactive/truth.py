"""Ground truth for Stage III: held-out episodes to imagine, and the two reference engines.

A :class:`Truth` is a set of recorded held-out episodes (test split by default) with everything the
simulator knows about them: frames, actions, explorer positions and headings, the tile grid in
view, sheep, and the world seed each episode was played in. An engine is given the first K real
frames and imagines the rest under the recorded actions (:mod:`.rollout` scores it).

Two reference engines bound every score:

- :class:`SimulatorRollout`: the simulator itself behind the engine interface (perfect);
- :class:`CopyLastFrame`: the world freezes on the last real frame (the baseline to beat).

Both speak the engine contract of :mod:`hitchhiker.engine` (which holds the argument checks and
the context padding every engine shares).

Shapes: E episodes, K context frames, T horizon, B batch, N context length, W window,
H x W pixels, R x C view tiles.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from hitchhiker.engine import action_index, check_rollout_args, check_seed, check_seeds
from hitchhiker.world import ACTION_NAMES, HitchhikerWorld
from hitchhiker.world.dataset import LEARNING_WORLD, episode_seed, record
from hitchhiker.world.env import WorldConfig


# ----------------------------------------------------------------------------- ground truth
@dataclass(frozen=True)
class Truth:
    """Held-out episodes to imagine: K real context frames, then T steps to compare with.

    Frame index a runs over 0 .. K+T-1; actions[:, a] leads from frame a to frame a+1. The engine
    gets frames[:, :K] and actions[:, :K-1] as context and imagines frames K .. K+T-1 under
    actions[:, K-1:].
    """

    frames: np.ndarray
    """(E, K+T, H, W, 3) uint8 real frames."""
    actions: np.ndarray
    """(E, K+T-1) int64 recorded actions."""
    positions: np.ndarray
    """(E, K+T, 2) int64 explorer (row, col) on the map."""
    headings: np.ndarray
    """(E, K+T) int64 explorer heading (0 north, 1 south, 2 west, 3 east)."""
    tiles: np.ndarray
    """(E, K+T, R, C) int8 true tile kinds in view."""
    animals: np.ndarray
    """(E, K+T, R, C) bool sheep in view."""
    seeds: np.ndarray
    """(E,) int64 world seed of each episode (the simulator replays an episode from it)."""
    context: int
    """K: real frames the engine gets."""
    horizon: int
    """T: steps to imagine after the context."""

    @property
    def episodes(self) -> int:
        return self.frames.shape[0]

    def context_frames(self) -> np.ndarray:
        """(E, K, H, W, 3) the real start every free rollout begins from."""
        return self.frames[:, : self.context]

    def context_actions(self) -> np.ndarray:
        """(E, K-1) the actions between the context frames."""
        return self.actions[:, : self.context - 1]

    def future_actions(self, horizon: int | None = None) -> np.ndarray:
        """(E, T) the recorded actions to imagine under."""
        return self.actions[:, self.context - 1 : self.context - 1 + self._h(horizon)]

    def future(self, field: str, horizon: int | None = None) -> np.ndarray:
        """(E, T, ...) ``field`` (frames, positions, headings, tiles, animals) after the context."""
        return getattr(self, field)[:, self.context : self.context + self._h(horizon)]

    def _h(self, horizon: int | None) -> int:
        h = self.horizon if horizon is None else int(horizon)
        if not 1 <= h <= self.horizon:
            raise ValueError(f"horizon must lie in [1, {self.horizon}] for this truth set; got {h}")
        return h


_TRUTHS: dict[str, Truth] = {}


def truth_set(
    split: str = "test",
    episodes: int = 16,
    context: int = 4,
    horizon: int = 64,
    policy: str = "random",
    world: WorldConfig | None = None,
) -> Truth:
    """Record (or load from the disk and memory caches) ``episodes`` held-out episodes of
    ``context + horizon`` frames in ``world`` (default LEARNING_WORLD). Arrays are read-only."""
    if context < 1 or horizon < 1:
        raise ValueError(f"context and horizon must be >= 1; got {context} and {horizon}")
    world = world or LEARNING_WORLD
    key = json.dumps([split, episodes, context, horizon, policy, dataclasses.asdict(world)])
    if key not in _TRUTHS:
        rec = record(split, episodes, context + horizon - 1, policy, world=world, progress=False)
        seeds = np.array([episode_seed(split, i) for i in range(episodes)], dtype=np.int64)
        fields = {f: getattr(rec, f) for f in ("frames", "actions", "positions", "headings")}
        fields |= {"tiles": rec.tiles, "animals": rec.animals, "seeds": seeds}
        for array in fields.values():
            array.setflags(write=False)  # shared between callers: nobody may change it
        _TRUTHS[key] = Truth(**fields, context=context, horizon=horizon)
    return _TRUTHS[key]


# ----------------------------------------------------------------------------- engines
class SimulatorRollout:
    """The simulator behind the engine interface: every figure is perfect (the upper bound).

    A simulator cannot guess a world from pixels, so ``rollout`` takes the world ``seeds`` (B,)
    and needs the context from the episode's start (frame 0 after ``reset``): it replays the
    context actions, checks that the replay reproduces the given frames, then plays ``actions``.
    :func:`evaluate_engine` passes ``seeds=`` (and the whole real prefix) to any engine whose
    ``rollout`` has a ``seeds`` parameter.
    """

    name = "simulator"
    actions = ACTION_NAMES
    context = 1
    """It conditions on the world's state, not on past frames; the evaluation has always read its
    window as 1 (the default of :func:`hitchhiker.engine.context_window`)."""

    def __init__(self, world: WorldConfig | None = None):
        self.world = world or LEARNING_WORLD
        self.env = HitchhikerWorld(self.world, max_steps=0)

    def reset(self, seed: int) -> np.ndarray:
        return self.env.reset(seed=check_seed(seed))[0]

    def step(self, action) -> np.ndarray:
        return self.env.step(action)[0]

    def rollout(self, context_frames, context_actions, actions, seeds=None) -> np.ndarray:
        frames, past, future = check_rollout_args(context_frames, context_actions, actions)
        if seeds is None:
            raise ValueError(
                f"SimulatorRollout replays worlds by seed: pass seeds=(B={len(frames)},) ints "
                f"with a context that starts at the episode's first frame; got seeds={seeds!r}"
            )
        seeds = check_seeds(seeds, len(frames))
        out = np.empty((len(frames), future.shape[1], *frames.shape[2:]), dtype=np.uint8)
        env = HitchhikerWorld(self.world, max_steps=0)
        for b, seed in enumerate(seeds):
            replay = [env.reset(seed=int(seed))[0]]
            replay += [env.step(int(a))[0] for a in past[b]]
            if not np.array_equal(np.stack(replay), frames[b]):
                raise ValueError(
                    f"context {b} is not world {int(seed)} replayed from its start under "
                    f"context_actions: SimulatorRollout needs the whole real prefix"
                )
            for t, a in enumerate(future[b]):
                out[b, t] = env.step(int(a))[0]
        return out


class CopyLastFrame:
    """The frozen world: every imagined frame repeats the last real one (the baseline to beat)."""

    name = "copy_last_frame"
    actions = ACTION_NAMES
    context = 1

    def __init__(self, world: WorldConfig | None = None):
        self.env = HitchhikerWorld(world or LEARNING_WORLD, max_steps=0)
        self.frame = np.zeros((64, 64, 3), dtype=np.uint8)

    def reset(self, seed: int) -> np.ndarray:
        self.frame = self.env.reset(seed=check_seed(seed))[0]
        return self.frame.copy()

    def step(self, action) -> np.ndarray:
        action_index(action, self.actions)  # unknown actions are still an error
        return self.frame.copy()

    def rollout(self, context_frames, context_actions, actions) -> np.ndarray:
        frames, _, future = check_rollout_args(context_frames, context_actions, actions)
        return np.repeat(frames[:, -1:], future.shape[1], axis=1)
