"""Where am I: dead reckoning corrected by the shift read from views, against the simulator's truth."""

import numpy as np
import pytest

from hitchhiker.memory.pose import (
    ACTION_DELTAS,
    CANDIDATES,
    PoseTracker,
    read_shift,
    shift_mismatch,
    track,
)
from hitchhiker.world import Tile, read_tiles
from hitchhiker.world.dataset import LEARNING_WORLD, episode_seed, record
from hitchhiker.world.env import Action, HitchhikerWorld
from hitchhiker.world.policies import DELTA
from hitchhiker.world.tiles import HEADING_DELTAS

WORLD = np.random.default_rng(7).integers(0, 1000, size=(40, 40))  # every cell tells itself apart


def view_at(world, row, col, size=8):
    """The (size, size) view centred on (row, col) under the world's rule: cell (r, c) shows
    (row + r - size // 2, col + c - size // 2)."""
    return world[row - size // 2 : row + size - size // 2, col - size // 2 : col + size - size // 2]


def test_action_deltas_are_the_worlds():
    for move in (Action.UP, Action.DOWN, Action.LEFT, Action.RIGHT):
        assert tuple(ACTION_DELTAS[move]) == DELTA[move]
        assert tuple(ACTION_DELTAS[move]) == tuple(HEADING_DELTAS[move - 1])
    assert (ACTION_DELTAS[[Action.NOOP, Action.INTERACT]] == 0).all()


def test_read_shift_finds_each_candidate():
    prev = view_at(WORLD, 20, 20)
    for d in CANDIDATES:
        assert read_shift(prev, view_at(WORLD, 20 + d[0], 20 + d[1])) == d


def test_convention_moving_right_shows_what_was_one_cell_right():
    prev, nxt = view_at(WORLD, 20, 20), view_at(WORLD, 20, 21)
    assert (nxt[:, :-1] == prev[:, 1:]).all()
    assert read_shift(prev, nxt) == (0, 1)


def test_a_uniform_view_is_ambiguous():
    grass = np.full((8, 8), Tile.GRASS)
    assert read_shift(grass, grass) is None
    rates, counts = shift_mismatch(grass, grass)
    assert (rates == 0).all() and counts.tolist() == [63, 54, 54, 54, 54]


def test_the_centre_and_masked_cells_are_not_read():
    prev, nxt = view_at(WORLD, 20, 20).copy(), view_at(WORLD, 21, 20).copy()
    nxt[4, 4] = prev[4, 4] = -1  # the explorer's sprite
    sheep = np.zeros((8, 8), dtype=bool)
    sheep[1:3, 1:7] = True
    nxt[sheep] = 999_999  # sheep walked into view: with no mask they hide the shift...
    assert read_shift(prev, nxt, ignore=sheep) == (1, 0)
    assert read_shift(prev, nxt, ignore=np.stack([np.zeros_like(sheep), sheep])) == (1, 0)
    # ...and reading the centre would count the sprite as a mismatch of the true shift
    rates, _ = shift_mismatch(prev, nxt, ignore=sheep, ignore_centre=False)
    assert rates[CANDIDATES.index((1, 0))] > 0


def test_read_shift_only_among_the_candidates_given():
    prev, nxt = view_at(WORLD, 20, 20), view_at(WORLD, 20, 19)
    assert read_shift(prev, nxt, [(0, 0), (0, -1)]) == (0, -1)
    assert read_shift(prev, nxt, [(0, 0), (1, 0)]) in {(0, 0), (1, 0), None}


def test_read_shift_rejects_bad_input():
    grid = np.zeros((8, 8), dtype=np.int64)
    with pytest.raises(ValueError, match="same shape"):
        read_shift(grid, np.zeros((8, 7), dtype=np.int64))
    with pytest.raises(ValueError, match="integer grid"):
        read_shift(grid.astype(float), grid)
    with pytest.raises(ValueError, match="candidates"):
        read_shift(grid, grid, [(2, 0)])
    with pytest.raises(ValueError, match="candidates"):
        read_shift(grid, grid, [(1, 1)])
    with pytest.raises(ValueError, match="ignore"):
        read_shift(grid, grid, ignore=np.zeros((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="candidates must be one of"):
        PoseTracker(candidates="some")
    with pytest.raises(ValueError, match="action"):
        PoseTracker().update(9, grid, grid)
    with pytest.raises(ValueError, match="needs prev_view"):
        PoseTracker().update(1)


def test_the_tracker_recovers_after_a_blocked_move():
    """Walk right twice, bump into a wall once (the view does not move), walk right again."""
    views = [view_at(WORLD, 20, 20), view_at(WORLD, 20, 21), view_at(WORLD, 20, 22)]
    views += [view_at(WORLD, 20, 22), view_at(WORLD, 20, 23)]
    actions = [Action.RIGHT, Action.RIGHT, Action.RIGHT, Action.RIGHT]
    tracker, blind = PoseTracker(), PoseTracker(correct=False)
    tracker.reset((5, 5))
    blind.reset((5, 5))
    for a, prev, nxt in zip(actions, views[:-1], views[1:]):
        tracker.update(int(a), prev, nxt)
        blind.update(int(a))
    assert tracker.pose == (5, 8)
    assert blind.pose == (5, 9)  # dead reckoning counted the bump


def test_reading_all_candidates_mistakes_an_edit_in_a_forest_for_a_move():
    """The documented blind spot of candidates="all"; the default reads only what the action allows."""
    prev = np.full((8, 8), Tile.FOREST)
    nxt = prev.copy()
    nxt[3, 4] = Tile.STUMP  # cut the tree north of the explorer
    assert read_shift(prev, nxt) == (1, 0)
    everything, allowed = PoseTracker(candidates="all"), PoseTracker()
    assert everything.update(int(Action.INTERACT), prev, nxt) == (1, 0)
    assert allowed.update(int(Action.INTERACT), prev, nxt) == (0, 0)


def bumping_walk(seed, steps, heading):
    """A real walk in the simulator that heads one way (so it reaches a shore and presses against
    it) with random detours; the course's behaviour policies never walk into water or rock."""
    env = HitchhikerWorld(LEARNING_WORLD, max_steps=0)
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    keep = {"frames": [obs], "positions": [info["position"]], "tiles": [info["tiles"]]}
    keep["animals"], actions = [info["animals"]], []
    for _ in range(steps):
        a = heading if rng.random() < 0.6 else int(rng.integers(len(Action)))
        obs, _, _, _, info = env.step(a)
        actions.append(a)
        for key, value in (("frames", obs), ("positions", info["position"])):
            keep[key].append(value)
        keep["tiles"].append(info["tiles"])
        keep["animals"].append(info["animals"])
    return np.array(actions), {k: np.stack(v) for k, v in keep.items()}


@pytest.fixture(scope="module")
def bumping_walks():
    walks = [bumping_walk(episode_seed("test", i), 96, 1 + i % 4) for i in range(8)]
    actions = np.stack([a for a, _ in walks])
    rest = {k: np.stack([w[k] for _, w in walks]) for k in walks[0][1]}
    return actions, rest


def test_tracked_pose_is_exact_on_walks_that_bump_and_dead_reckoning_drifts(bumping_walks):
    actions, walk = bumping_walks
    truth = walk["positions"] - walk["positions"][:, :1]
    moved = (walk["positions"][:, 1:] != walk["positions"][:, :-1]).any(-1)
    blocked = (actions >= Action.UP) & (actions <= Action.RIGHT) & ~moved
    assert blocked.any(1).all()  # every walk bumps into something
    assert (track(actions, walk["tiles"]) == truth).all()
    drift = track(actions, correct=False)
    assert (drift != truth).any(axis=(1, 2)).any()
    # dead reckoning is wrong by exactly the bumps it counted
    bumps = np.cumsum(np.where(blocked[..., None], ACTION_DELTAS[actions], 0), axis=1)
    assert (drift[:, 1:] - truth[:, 1:] == bumps).all()


def test_tracked_pose_is_exact_from_tiles_read_off_the_pixels(bumping_walks):
    actions, walk = bumping_walks
    truth = walk["positions"] - walk["positions"][:, :1]
    reading = read_tiles(walk["frames"])
    assert (track(actions, reading.kinds, ignore=reading.animals) == truth).all()


def test_tracked_pose_is_exact_on_recorded_random_walks():
    rec = record("test", 8, 48, "random", world=LEARNING_WORLD, progress=False)
    truth = rec.positions - rec.positions[:, :1]
    assert (track(rec.actions, rec.tiles) == truth).all()
    assert (rec.actions == Action.INTERACT).any()  # edits happen on the way and do not fool it
    one = PoseTracker()
    poses = [one.pose] + [
        one.update(int(a), p, n) for a, p, n in zip(rec.actions[0], rec.tiles[0], rec.tiles[0, 1:])
    ]
    assert (np.array(poses) == truth[0]).all()


def test_track_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(E, T\)"):
        track(np.zeros(5, dtype=np.int64), np.zeros((1, 6, 8, 8), dtype=np.int64))
    with pytest.raises(ValueError, match="T\\+1"):
        track(np.zeros((1, 5), dtype=np.int64), np.zeros((1, 5, 8, 8), dtype=np.int64))
