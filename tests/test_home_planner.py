"""Going home by looking ahead (hitchhiker.agents.home_planner): the pose read from the real walk
out is exact, a planner that knows it takes the move home and mostly arrives, the dream planners
play real episodes reproducibly, and bad input gets a clear error."""

import numpy as np
import pytest

from hitchhiker import zoo
from hitchhiker.agents.home_planner import HomePlanner, planner_home_play, planner_home_success
from hitchhiker.agents.judge import real_returns
from hitchhiker.agents.scripted import RandomPolicy
from hitchhiker.agents.tasks import GoHome
from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.memory import memory_recipe
from hitchhiker.memory.memory_engine import MemoryEngine
from hitchhiker.world import Action
from hitchhiker.world.dataset import episode_seed
from hitchhiker.world.policies import DELTA

UNDO = {Action.UP: Action.DOWN, Action.DOWN: Action.UP, Action.LEFT: Action.RIGHT,
        Action.RIGHT: Action.LEFT}  # fmt: skip


@pytest.fixture(scope="module")
def smoke():
    return zoo.prepare("memory", "smoke")


@pytest.fixture(scope="module")
def engine(smoke):
    cfg, deps = smoke
    model = memory_recipe.build(cfg).start_from(deps["dynamics"]).eval()
    return MemoryEngine(model, deps["tokenizer"], cfg=cfg)


def walk_out(seed: int, out_steps: int = 6):
    info = GoHome(out_steps=out_steps).reset(seed=seed)[1]
    return info["walk_out"]["frames"], info["walk_out"]["actions"]


def test_the_pose_read_from_the_real_walk_out_is_where_the_walk_went(engine):
    for i in range(3):
        frames, actions = walk_out(episode_seed("val", i))
        engine.start_from(engine.encode(frames)[None], actions[None])
        went = np.sum([DELTA[Action(int(a))] for a in actions], axis=0)
        # the walk out is a shortest path: no move was blocked, so the tracker sums its moves
        assert engine.poses.tolist() == [went.tolist()]


def test_one_move_from_home_the_planner_undoes_it(engine):
    frames, actions = walk_out(episode_seed("val", 0), out_steps=1)
    assert len(actions) == 1
    planner = HomePlanner(engine, "blind", candidates=8, depth=1)
    move = planner.plan(engine.encode(frames)[None], actions[None])
    assert move.tolist() == [int(UNDO[Action(int(actions[0]))])]


def test_a_planner_that_knows_the_pose_from_the_walk_out_mostly_arrives(engine):
    seeds = [episode_seed("test", i) for i in range(8)]
    blind = planner_home_success(HomePlanner(engine, "blind"), seeds)
    random = real_returns("go_home", RandomPolicy(), seeds)
    # no dream: a move into rock counts as made, so it can push into the same rock again and
    # again; it still arrives far more often than a random walk does
    assert blind.sum() >= 6 and random.sum() <= 1


@pytest.mark.parametrize("mode", ["memory", "no_memory"])
def test_the_dream_planners_play_real_episodes_reproducibly(engine, mode):
    seeds = [episode_seed("val", i) for i in range(2)]
    kw = {"out_steps": 3, "back_steps": 4}
    runs = [
        planner_home_success(HomePlanner(engine, mode, candidates=4, depth=2, seed=1), seeds, **kw)
        for _ in range(2)
    ]
    assert runs[0].shape == (2,) and set(runs[0].tolist()) <= {0.0, 1.0}
    np.testing.assert_array_equal(runs[0], runs[1])
    assert engine.use_memory == (mode == "memory")  # the mode's dream: bank on or off


def test_refused_moves_are_counted_exactly(engine):
    """A planner that always walks up, against the simulator replaying the same walk: the moves
    made and the refused ones (the explorer stayed) agree exactly; the world refuses some."""

    class AlwaysUp:
        def __init__(self, engine):
            self.engine = engine

        def plan(self, tokens, actions):
            return np.full(len(tokens), int(Action.UP))

    seeds = [episode_seed("test", i) for i in range(8)]
    kw = {"out_steps": 4, "back_steps": 12}
    play = planner_home_play(AlwaysUp(engine), seeds, **kw)
    moves = refused = 0
    for seed in seeds:
        env = GoHome(**kw)
        where, done = tuple(env.reset(seed=seed)[1]["position"]), False
        while not done:
            _, _, term, trunc, info = env.step(int(Action.UP))
            moves, refused = moves + 1, refused + (tuple(info["position"]) == where)
            where, done = tuple(info["position"]), term or trunc
    assert (play.moves, play.refused) == (moves, refused)
    assert 0 < refused < moves  # up runs into something in some of these worlds, not at once


def test_bad_input_gets_a_clear_error(engine, smoke):
    with pytest.raises(ValueError, match="mode must be one of"):
        HomePlanner(engine, "teleport")
    with pytest.raises(ValueError, match="candidates must be >= 4"):
        HomePlanner(engine, candidates=3)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        HomePlanner(engine, depth=0)
    dyn = smoke[1]["dynamics"]  # a Stage III engine has no pose tracker: no idea where home is
    with pytest.raises(ValueError, match="needs a Stage IV MemoryEngine"):
        HomePlanner(DynamicsEngine(dyn, smoke[1]["tokenizer"], cfg=dyn.shipped_config))
    frames, actions = walk_out(episode_seed("val", 0))
    with pytest.raises(ValueError, match="expected the actions"):
        HomePlanner(engine).plan(engine.encode(frames)[None], actions[None, :-1])
