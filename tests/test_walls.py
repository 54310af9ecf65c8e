"""Stage III's wall probes: the simulator's exact answer to moves it blocks, and the figures."""

import numpy as np
import pytest

from hitchhiker.interactive.rollout import true_shift
from hitchhiker.interactive.truth import CopyLastFrame
from hitchhiker.interactive.walls import (
    blocked_in_play,
    draw_probes,
    drawn_shifts,
    evaluate_walls,
    wall_figures,
    wall_in_view,
    wall_probes,
)
from hitchhiker.world import BLOCKING, read_tiles
from hitchhiker.world.dataset import LEARNING_WORLD, record
from hitchhiker.world.policies import DELTA, MOVES, RandomWalk, WallBumper

PROBE = dict(split="val", episodes=8, steps=24, every=3)


@pytest.fixture(scope="module")
def probes():
    p = wall_probes(**PROBE)
    assert p.blocked.any() and (~p.blocked).any(), "these episodes must meet at least one wall"
    return p


def test_probes_cover_every_move_at_every_probed_moment(probes):
    moments = len(range(3, 4 + 24 - 1, 3))  # the last context frame: index 3, then every 3rd
    assert len(probes) == 8 * moments * 4
    assert (probes.moves.reshape(-1, 4) == [1, 2, 3, 4]).all()
    assert probes.context_frames.shape == (len(probes), 4, 64, 64, 3)
    assert probes.context_actions.shape == (len(probes), 3)
    assert not probes.blocked.flags.writeable  # cached and shared: read-only


def test_blocked_is_what_the_map_in_view_says(probes):
    """Read the last real frame: a move onto water, rock or a house is blocked; a move onto open
    land with no sheep at or beside the target is made. (A sheep may step away or in first.)"""
    reading = read_tiles(probes.context_frames[:, -1])
    centre = np.array([4, 4])
    for p in range(len(probes)):
        r, c = centre + DELTA[MOVES[probes.moves[p] - 1]]
        near = reading.animals[p, max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].any()
        if BLOCKING[reading.kinds[p, r, c]]:
            assert probes.blocked[p]
        elif not near:
            assert not probes.blocked[p]
        else:
            continue
    # and the simulator's own next frame shows exactly that: no scroll when blocked
    shift = drawn_shifts(probes, probes.next_frames)
    assert ((shift == 0) == probes.blocked).all()
    assert (shift[~probes.blocked] == probes.moves[~probes.blocked]).all()


def test_the_simulator_scores_one_and_a_frozen_world_only_on_walls(probes):
    perfect = wall_figures(probes, probes.next_frames, "sim")
    assert perfect["sim.blocked_moves_drawn_blocked"] == 1.0
    assert perfect["sim.free_moves_drawn_moved"] == 1.0
    assert perfect["sim.blocked_probes"] == probes.blocked.sum()
    frozen = evaluate_walls(CopyLastFrame(), "frozen", **PROBE)
    assert frozen["frozen.blocked_moves_drawn_blocked"] == 1.0
    assert frozen["frozen.free_moves_drawn_moved"] == 0.0
    # an engine that scrolls on every move: the opposite
    always = probes.next_frames.copy()
    always[probes.blocked] = probes.next_frames[np.flatnonzero(~probes.blocked)[0]]
    walker = wall_figures(probes, always, "w")
    assert walker["w.blocked_moves_drawn_blocked"] < 1.0


def test_drawing_checks_shapes_and_passes_the_seed(probes):
    with pytest.raises(ValueError, match="one drawn frame per probe"):
        wall_figures(probes, probes.next_frames[:-1], "x")

    class Seeded(CopyLastFrame):
        seed = -1

    eng = Seeded()
    drawn = draw_probes(eng, probes, seed=5)
    assert eng.seed == 5 and drawn.shape == probes.next_frames.shape
    with pytest.raises(ValueError, match="every"):
        wall_probes(**{**PROBE, "every": 0})


def test_the_bumper_walks_into_walls_and_at_zero_is_the_random_walk():
    kw = dict(world=LEARNING_WORLD, progress=False, cache=False)
    plain = record("val", 4, 48, "random", **kw)
    zero = record("val", 4, 48, "bumper", policy_kwargs={"bump_prob": 0.0}, **kw)
    assert np.array_equal(plain.actions, zero.actions)
    moves = (plain.actions >= 1) & (plain.actions <= 4)
    assert not (moves & (true_shift(plain.positions) == 0)).any()  # the random walk never bumps
    bumpy = record("val", 8, 48, "bumper", policy_kwargs={"bump_prob": 0.5}, **kw)
    moves = (bumpy.actions >= 1) & (bumpy.actions <= 4)
    assert (moves & (true_shift(bumpy.positions) == 0)).sum() >= 5
    with pytest.raises(ValueError, match="bump_prob"):
        WallBumper(bump_prob=1.5)
    assert isinstance(WallBumper(), RandomWalk)


def test_blocked_moves_in_recorded_play_are_counted_exactly():
    U, D, L, R = 1, 2, 3, 4
    actions = np.array([[U, U, 0, L], [R, 5, D, D]])
    positions = np.array(
        [
            [(5, 5), (4, 5), (4, 5), (4, 5), (4, 4)],  # the second UP is blocked, the noop no move
            [(5, 5), (5, 6), (5, 6), (6, 6), (6, 6)],  # interact no move, the last DOWN blocked
        ]
    )
    assert blocked_in_play(actions, positions) == (6, 2)


def test_wall_in_view_finds_a_world_whose_first_view_shows_a_wall():
    from hitchhiker.world import HitchhikerWorld

    seed, move, free = wall_in_view(range(2000000, 2000016))
    env = HitchhikerWorld(LEARNING_WORLD, max_steps=0)
    env.reset(seed=seed)
    for _ in range(free):
        before = env.position
        env.step(move)
        assert env.position != before  # the free steps are made
    before = env.position
    env.step(move)
    assert env.position == before and free < 3  # then refused, within the first view
    with pytest.raises(ValueError, match="no world"):
        wall_in_view([], within=3)
