"""Go home, learned inside the dream (hitchhiker.agents.home_dream, recipe "home_dream"): the
dream's teacher is exact on hand-worked poses, its dream walks are recorded as DAgger reads them, the
student drives what it says, and bad input gets a clear error."""

import dataclasses

import numpy as np
import pytest
import torch

from hitchhiker import zoo
from hitchhiker.agents.home_agent import NO_MOVE, UNLABELLED, HomePolicy, HomeWalker, dagger
from hitchhiker.agents.home_dream import (
    blocked_moves,
    dreamed_and_real,
    play_dream_home,
    teacher_moves,
)
from hitchhiker.agents.judge import test_seeds as world_seeds
from hitchhiker.agents.tasks import GoHome
from hitchhiker.memory.memory_engine import MemoryEngine
from hitchhiker.memory.pose import ACTION_DELTAS
from hitchhiker.tokens import TokenGrid
from hitchhiker.world import Action

UP, DOWN, LEFT, RIGHT = (int(a) for a in (Action.UP, Action.DOWN, Action.LEFT, Action.RIGHT))


def test_the_teacher_heads_for_home_and_steps_aside_from_what_the_dream_showed_blocked():
    poses = [(2, -1), (0, 3), (-1, 0), (2, 0), (2, 0), (2, -1)]
    blocked = [set(), set(), set(), {(2, 0, UP)}, {(2, 0, UP), (2, 0, LEFT)}, {(2, -1, UP)}]
    # the larger offset first; along an axis; blocked: aside (not back); both closer moves
    # blocked... here one: the other closer move
    assert teacher_moves(poses, blocked).tolist() == [UP, LEFT, DOWN, LEFT, RIGHT, RIGHT]
    for (r, c), m in zip(poses[:3], teacher_moves(poses[:3], [set()] * 3)):
        assert abs(r + ACTION_DELTAS[m][0]) + abs(c + ACTION_DELTAS[m][1]) == abs(r) + abs(c) - 1
    with pytest.raises(ValueError, match="one blocked set per pose"):
        teacher_moves(poses, [set()])


@pytest.fixture(scope="module")
def smoke_dream():
    model, cfg = zoo.load_or_fit("memory", "smoke")
    tokenizer = zoo.dependencies("memory", cfg)["tokenizer"]
    return MemoryEngine(model, tokenizer, cfg=cfg), tokenizer


def test_the_dream_walks_are_recorded_as_dagger_reads_them_and_reproduce(smoke_dream):
    engine, tok = smoke_dream
    seeds = world_seeds(3, "val")
    success, episodes = play_dream_home(engine, seeds, tok, out_steps=4, back_steps=5)
    again, episodes2 = play_dream_home(engine, seeds, tok, out_steps=4, back_steps=5)
    assert np.array_equal(success, again)
    grid = (engine.grid[0], engine.grid[1])
    for ep, ep2, home in zip(episodes, episodes2, success):
        assert all(torch.equal(ep[k], ep2[k]) for k in ("tokens", "prev", "labels"))
        labelled = ep["labels"] != UNLABELLED
        assert ep["prev"][0] == NO_MOVE and int((~labelled).sum()) == 4  # walk out but its end
        back = int(labelled.sum())
        assert 1 <= back <= 5 and (home == 1 or back == 5)  # ends home, or out of moves
        # round 0: the teacher drives, so each label is the next frame's previous move
        moves = ep["labels"][labelled]
        assert torch.equal(moves[:-1], ep["prev"][labelled.nonzero()[1:, 0]])
        assert ep["tokens"].shape == (len(ep["prev"]), *grid)
    # the first way back beside the real world's: one frame per move chosen, from the walk's end
    dreamed, real = dreamed_and_real(engine, episodes[0], seeds[0], out_steps=4, back_steps=5)
    back = int((episodes[0]["labels"] != UNLABELLED).sum())
    assert dreamed.shape == real.shape == (back, 64, 64, 3) and dreamed.dtype == np.uint8
    start = GoHome(out_steps=4, back_steps=5).reset(seed=seeds[0])[0]
    assert np.array_equal(real[0], start)
    # the dream starts from the encoded real frame: its first frame is that frame decoded
    assert np.array_equal(dreamed[0], engine.decode(engine.encode(start[None]))[0])


def test_the_student_drives_the_dream_and_learns_from_it(smoke_dream):
    engine, tok = smoke_dream
    g = TokenGrid.of(tok)
    torch.manual_seed(0)
    net = HomePolicy(g.vocab_size, (g.grid_h, g.grid_w), True, width=32)
    walker = HomeWalker(net, tok, greedy=True)
    _, episodes = play_dream_home(engine, world_seeds(2, "val"), tok, walker, out_steps=3,
                                  back_steps=4)  # fmt: skip
    for ep in episodes:
        with torch.no_grad():
            logits, _ = net(ep["tokens"][None], ep["prev"][None])
        back = (ep["labels"] != UNLABELLED).nonzero()[:, 0]
        # the move the student chose on each dreamed frame is the next frame's previous move
        assert torch.equal(logits[0, back].argmax(-1)[:-1], ep["prev"][back[1:]])

    def play(seeds, tokenizer, walker, **kw):
        return play_dream_home(engine, seeds, tokenizer, walker, **kw)

    log = dagger(net, tok, lambda r: world_seeds(4, "train", first=4 * r), rounds=2, steps=2,
                 progress=False, play=play, out_steps=3, back_steps=4)  # fmt: skip
    assert len(log) == 2 and all(np.isfinite(r["loss"]) for r in log)


def test_the_dream_needs_a_memory_engine(smoke_dream):
    _, tok = smoke_dream
    with pytest.raises(ValueError, match="needs a Stage IV MemoryEngine.*got str"):
        play_dream_home("a window dream", world_seeds(1, "val"), tok)


def test_blocked_moves_are_read_off_the_dream_poses_and_the_real_world_exactly():
    # a walk's end with a wall beside it: one move the world blocks and one it allows
    for seed in world_seeds(40, "val"):
        task = GoHome(out_steps=4)
        task.reset(seed=seed)
        world = task.env.unwrapped
        here = np.asarray(world.position)
        free = [m for m in (UP, DOWN, LEFT, RIGHT) if world.walkable(*(here + ACTION_DELTAS[m]))]
        if 0 < len(free) < 4:
            break
    wall = next(m for m in (UP, DOWN, LEFT, RIGHT) if m not in free)
    # the dream drew the move into the wall made, the free one blocked: the world the other way
    episode = {"moves": np.array([wall, free[0]]), "poses": np.array([[2, 0], [1, 0], [1, 0]])}
    in_dream, in_world = blocked_moves(episode, seed, out_steps=4)
    assert in_dream.tolist() == [False, True] and in_world.tolist() == [True, False]


def test_the_walls_dream_differs_only_in_the_memory_that_dreams_it():
    """home_dream_walls: the same students, teacher and worlds, dreamed by memory_walls."""
    from hitchhiker.agents import home_dream_recipe

    walls, plain = (
        zoo.config_for("home_dream_walls", "smoke"),
        zoo.config_for("home_dream", "smoke"),
    )
    assert (walls.dream_memory, plain.dream_memory) == ("memory_walls", "memory")
    assert dataclasses.replace(walls, name="home_dream", dream_memory="memory") == plain
    need = home_dream_recipe.needs({"tokenizer": "shipped", "dream_memory": "memory_walls"})
    assert need["memory"].model == "memory_walls"
    with pytest.raises(ValueError, match="dream_memory must name .*'memory_walls'.*'window16'"):
        zoo.config_for("home_dream", "smoke", dream_memory="window16")
