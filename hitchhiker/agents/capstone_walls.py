"""Do the capstone's dreams stop where the real world stops the agent? Its four dreams, measured.

The flower agent was trained in a dream that never learned walls: the masked dynamics' training
play stepped only onto open tiles, so in that dream a step into the lake scrolls the view as if
the lake were grass (notebook 04 measured it on wall probes: ``stage3.dynamics.
blocked_moves_drawn_blocked``). An agent trained where nothing blocks it has no reason to avoid
water, and in the real world it bumps. The capstone (:mod:`.agent_play`) can dream each step
with any of four world models, memory by walls:

    (memory off, walls off)  the dynamics the agent was trained in (its heads pay)
    (memory on,  walls off)  notebook 06's memory model
    (memory off, walls on)   notebook 04's ``dynamics_walls``, trained on play that bumps
    (memory on,  walls on)   ``memory_walls``, the memory fine-tuned from it

Here the agent plays held-out worlds for real and every dream imagines each of its steps one step
ahead of the real past (the capstone at horizon 1): the same real episode for all four (the
policy's generator is seeded by the world). For every move the simulator refused (its position
did not change: exact), the dream should draw the view where it was; for every free move, scrolled
the way the explorer went (:func:`~hitchhiker.interactive.rollout.estimate_shift` reads the drawn
frame, as the wall probes do). Two figures per dream, each a mean over worlds with its 95% interval:

- ``blocked_drawn_blocked``: of the agent's moves the world refused, the share the dream drew still
  (over the worlds where the agent bumped at all);
- ``free_drawn_moved``: of its free moves, the share drawn scrolled the right way.

And what walls cost in the real world (:func:`refusal_figures`): of each policy's moves on the
worlds it is judged on, the share the world refused; an agent that learned where nothing blocks
it, beside the real-trained control that met every wall, and beside the agent trained in the dream
of ``dynamics_walls`` (the zoo's ``agent_walls``).

Shapes: E worlds, T steps per episode.
"""

from __future__ import annotations

import numpy as np

from hitchhiker import zoo
from hitchhiker.agents.judge import real_play, test_seeds
from hitchhiker.agents.scripted import RandomPolicy
from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.interactive.rollout import SHIFT_NAMES, estimate_shift
from hitchhiker.interactive.walls import wall_in_view
from hitchhiker.memory.memory_engine import MemoryEngine
from hitchhiker.metrics import mean_interval
from hitchhiker.tokens import same_tokens_need
from hitchhiker.world.dataset import episode_seed

DREAMS = {
    (False, False): "flower_dream",
    (True, False): "memory",
    (False, True): "walls",
    (True, True): "memory_walls",
}
"""The capstone's dreams by (memory, walls), and the name each takes in the benchmark."""

MOVE_NAMES = SHIFT_NAMES[1:]
"""up, down, left, right: the actions that move the explorer (the view scrolls the other way)."""


def capstone_dreams(tokenizer, tokens: str = "shipped") -> dict:
    """The capstone's other dreams, ``memory=``, ``walls=`` and ``memory_walls=`` of
    :class:`~.agent_play.AgentPanel`, on the agent's ``tokenizer``: the shipped models with the
    shipped tokenizer (``tokens``, the agent config's ``tokenizer`` setting), else smoke-sized
    ones fitted on the same stand-in."""
    got = {
        n: zoo.dependency(same_tokens_need(n, {"tokenizer": tokens}))
        for n in ("memory", "dynamics_walls", "memory_walls")
    }
    return {
        "memory": MemoryEngine(got["memory"], tokenizer, cfg=got["memory"].shipped_config),
        "walls": DynamicsEngine(
            got["dynamics_walls"], tokenizer, cfg=got["dynamics_walls"].shipped_config
        ),
        "memory_walls": MemoryEngine(
            got["memory_walls"], tokenizer, cfg=got["memory_walls"].shipped_config
        ),
    }


def wall_ahead(worlds=range(64), within: int = 3) -> tuple[int, str, int]:
    """(test world, move, free steps) of the first held-out test world among ``worlds`` where a
    straight walk from the start is refused after fewer than ``within`` free steps (the wall is in
    the first frame): where to walk into a wall in the capstone (its seed ``s`` is test world s)."""
    for world in worlds:
        try:
            _, move, made = wall_in_view([episode_seed("test", int(world))], within)
        except ValueError:  # nothing blocks a short walk from this world's start
            continue
        return int(world), SHIFT_NAMES[move], made
    raise ValueError(f"no test world among {worlds} has a wall within {within} moves of its start")


def walls_in_play(panel, worlds, horizon: int = 1) -> dict[tuple[bool, bool], np.ndarray]:
    """For each dream of ``panel`` (an :class:`~.agent_play.AgentPanel` with ``memory``,
    ``walls`` and ``memory_walls``): counts (E, 4) per held-out world in ``worlds``, the moves the
    world refused, of which the dream drew still, the free moves, of which drawn scrolled right.

    The agent drives every episode to its end; the panel's horizon, driver and generator are
    restored afterwards (its episode is reset: Reset or a world number starts it again)."""
    missing = [DREAMS[k] for k in DREAMS if k != (False, False) and k not in panel.dreams]
    if missing:
        raise ValueError(
            f"the panel lacks the dreams {missing}: pass memory=, walls=, memory_walls="
        )
    saved = panel.horizon, (panel.use_memory, panel.use_walls), panel.driver, panel.gen.get_state()
    panel.horizon, out = horizon, {}
    try:
        for key in DREAMS:
            counts = np.zeros((len(worlds), 4), dtype=np.int64)
            for i, world in enumerate(worlds):
                panel.gen.manual_seed(int(world))  # the same real episode for every dream
                panel.reset(int(world))
                panel.choose(*key)
                panel.hand_back()
                counts[i] = _episode(panel)
            out[key] = counts
    finally:
        panel.horizon, panel.driver = saved[0], saved[2]
        panel.gen.set_state(saved[3])
        panel.choose(*saved[1])
    return out


def _episode(panel) -> np.ndarray:
    """Step the agent to the episode's end; (refused, drawn still, free, drawn right)."""
    got = np.zeros(4, dtype=np.int64)
    world = panel.task.unwrapped
    while not panel.done:
        where = world.position
        if panel.since_anchor >= panel.horizon:  # re-anchored this step: it starts from the real
            dream_before = panel.dreamer.decode(panel.tokens[:, -1])[0]
        else:
            dream_before = panel.frames["dream"]
        panel.step("agent")
        if panel.last_action not in MOVE_NAMES:
            continue
        drawn = int(estimate_shift(dream_before, panel.frames["dream"]))
        if world.position == where:  # the simulator refused the move
            got[:2] += (1, drawn == 0)
        else:
            moved = MOVE_NAMES.index(panel.last_action) + 1
            got[2:] += (1, drawn == moved)
    return got


def capstone_wall_figures(panel, worlds, prefix: str) -> dict[str, float]:
    """``prefix.<dream>.blocked_drawn_blocked`` and ``.free_drawn_moved`` (module docstring) with
    their ``_ci95``, and ``prefix.blocked_moves`` / ``prefix.free_moves``: how many the agent made."""
    got, out = walls_in_play(panel, worlds), {}
    for key, name in DREAMS.items():
        c = got[key]
        bumped, free = c[:, 0] > 0, c[:, 2] > 0
        blocked = c[bumped, 1] / c[bumped, 0]
        moved = c[free, 3] / c[free, 2]
        for fig, shares in (("blocked_drawn_blocked", blocked), ("free_drawn_moved", moved)):
            key_ = f"{prefix}.{name}.{fig}"
            out[key_], out[f"{key_}_ci95"] = mean_interval(shares) if len(shares) else (0.0, 0.0)
    first = got[(False, False)]
    out[f"{prefix}.blocked_moves"] = float(first[:, 0].sum())
    out[f"{prefix}.free_moves"] = float(first[:, 2].sum())
    out[f"{prefix}.worlds_bumped"] = float((first[:, 0] > 0).sum())
    out[f"{prefix}.worlds"] = float(len(first))
    return out


REFUSED = ("random", "real_trained", "dream_trained")
"""The policies whose refused moves :func:`refusal_figures` counts."""


def refusal_figures(model, cfg, tokenizer) -> dict[str, float]:
    """What walls cost an agent in the real world, on the ``cfg.eval_episodes`` test worlds it is
    judged on (the same episodes as its real returns): ``stage5.<name>.refusals.<policy>.
    refused_share``, of each policy's moves the share the world refused (per world, then the mean
    over the worlds where it moved, with its 95% interval) and ``.moves``; and the paired difference
    dream-trained minus real-trained, world by world."""
    prefix, seeds = f"stage5.{cfg.name}.refusals", test_seeds(cfg.eval_episodes)
    policies = {
        "random": RandomPolicy(),
        "real_trained": model.real_policy,
        "dream_trained": model.policy,
    }
    share, out = {}, {}
    for name in REFUSED:
        _, moves, refused = real_play(
            cfg.task, policies[name], seeds, tokenizer, cfg.seed, steps=cfg.task_steps
        )
        share[name] = np.where(moves > 0, refused / np.maximum(moves, 1), np.nan)
        key = f"{prefix}.{name}.refused_share"
        out[key], out[f"{key}_ci95"] = mean_interval(share[name][moves > 0])
        out[f"{prefix}.{name}.moves"] = float(moves.sum())
    both = share["dream_trained"] - share["real_trained"]
    key = f"{prefix}.dream_minus_real_trained"
    out[key], out[f"{key}_ci95"] = mean_interval(both[~np.isnan(both)])
    return out
