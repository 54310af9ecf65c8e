"""The retrieval memory's bookkeeping: exact retrieval on hand-made poses, update, forgetting,
save and load, and exact recall on real walks of the simulator."""

import numpy as np
import pytest

from hitchhiker.memory.frame_bank import FrameBank, MemoryPolicy, Retrieved
from hitchhiker.world.dataset import LEARNING_WORLD, record
from hitchhiker.world.env import Action

WORLD = np.arange(120 * 120, dtype=np.int64).reshape(120, 120)  # token = the world cell's number
ORIGIN = np.array([60, 60])  # bank pose (0, 0) is world cell (60, 60)


def view_at(pose, world=WORLD):
    r, c = np.asarray(pose) + ORIGIN
    return world[r - 4 : r + 4, c - 4 : c + 4].copy()


def bank_of(poses, policy=None, steps=None):
    bank = FrameBank(policy or MemoryPolicy(k=4))
    for i, pose in enumerate(poses):
        assert bank.write(view_at(pose), pose, i if steps is None else steps[i])
    return bank


def test_overlap_retrieval_is_a_greedy_cover_of_the_target_view():
    bank = bank_of([(0, 0), (0, 8), (3, 3)])
    got = bank.retrieve((0, 4), step=3)
    assert isinstance(got, Retrieved) and got.tokens.shape == (4, 8, 8) and got.fresh.dtype == bool
    # (3, 3) covers 5 x 7 = 35 target cells; then (0, 8) adds rows 0-2 of cols 4-7 and col 7 of
    # rows 3-7 (12 + 5); then (0, 0) adds rows 0-2 of cols 0-3 (12); the view is then covered
    assert got.index.tolist() == [2, 1, 0, -1]
    assert got.valid.tolist() == [True, True, True, False]
    assert got.offset.tolist() == [[3, -1], [0, 4], [0, -4], [0, 0]]
    assert got.age.tolist() == [1, 2, 3, 0]
    assert (got.tokens[0] == view_at((3, 3))).all() and (got.tokens[3] == 0).all()
    assert not got.fresh[3].any()
    assert bank.retrieve((0, 4), step=3, k=2).index.tolist() == [2, 1]
    assert bank.coverage((0, 4)).all()
    tokens, known = bank.aligned(got)
    assert known.all() and (tokens == view_at((0, 4))).all()


def test_cover_stops_when_nothing_adds_a_cell():
    # a frame far down-right (overlapping 1 x 5 cells of the target) is written first: once the
    # others cover the view it adds nothing, so the last slot is padding, not that frame
    bank = bank_of([(7, 7), (0, 0), (0, 8), (3, 3)], MemoryPolicy(k=4, update=False))
    got = bank.retrieve((0, 4), step=9)
    assert got.index.tolist() == [3, 2, 1, -1]
    # and a query no frame overlaps reads nothing at all
    assert not bank.retrieve((30, -30), step=9).valid.any()
    assert not bank.coverage((30, -30)).any()


def test_ties_go_to_the_newest_frame():
    # two frames two cells either side of the target: equal gain, the newer (higher step) first
    for steps, first in [((5, 9), 1), ((9, 5), 0)]:
        bank = bank_of([(0, -2), (0, 2)], MemoryPolicy(k=2, update=False), steps=steps)
        assert bank.retrieve((0, 0), step=10).index.tolist()[0] == first
    # the same pose twice without update: the newer one, then nothing more to add
    bank = bank_of([(0, 0), (0, 0)], MemoryPolicy(k=2, update=False))
    assert bank.retrieve((0, 0), step=2).index.tolist() == [1, -1]


def test_an_edit_makes_the_older_frame_stale_and_is_read_back():
    cut = WORLD.copy()
    cut[60, 62] = -7  # a tree at world (60, 62) was cut between the two frames
    for update in (True, False):
        bank = FrameBank(MemoryPolicy(k=1, update=update))
        bank.write(view_at((0, 0)), (0, 0), 0)
        bank.write(view_at((0, 1), cut), (0, 1), 1)
        fresh = np.zeros((8, 8), dtype=bool)
        fresh[:, 0] = True  # only its first column is not shown by the newer frame
        assert (bank.state_dict()["fresh"][0] == (fresh if update else True)).all()
        # at the older frame's own pose: with update the newer frame covers more of it
        stored = bank.retrieve((0, 0), step=2, k=2)
        assert stored.index.tolist() == ([1, 0] if update else [0, -1])
        # from one cell left, the older frame overlaps more: without update it is read, stale
        got = bank.retrieve((0, -1), step=2)
        tokens, known = bank.aligned(got)
        assert got.index.tolist() == ([1] if update else [0])
        assert tokens[4, 7] == (-7 if update else WORLD[60, 62])
        # both frames retrieved (the cover never takes the second: it adds no cell): newest wins
        both = FrameBank(MemoryPolicy(retrieve="recency", k=2, update=update))
        both.write(view_at((0, 0)), (0, 0), 0)
        both.write(view_at((0, 1), cut), (0, 1), 1)
        tokens, known = both.aligned(both.retrieve((0, -1), step=2))
        assert known[:, 1:].all() and tokens[4, 7] == -7


def test_write_ignores_cells_it_is_told_not_to_remember():
    bank = FrameBank(MemoryPolicy(k=2))
    bank.write(view_at((0, 0)), (0, 0), 0)
    centre = np.zeros((8, 8), dtype=bool)
    centre[4, 4] = True
    bank.write(np.full((8, 8), -1), (0, 0), 1, ignore=centre)
    got = bank.retrieve((0, 0), step=2)
    assert got.index.tolist() == [1, 0]  # the older frame still holds the unshown centre
    tokens, known = bank.aligned(got)
    assert known.all() and tokens[4, 4] == WORLD[60, 60] and (tokens[~centre] == -1).all()


def test_recency_and_random_retrieval():
    bank = bank_of([(0, 0), (0, 30), (0, 0), (20, 20), (5, 5)], MemoryPolicy(k=3))
    # by overlap: frame 2 (frame 0 is stale under it, frame 4 hides 3 x 3 of it), then frame 4
    assert bank.retrieve((0, 0), step=5, k=3).index.tolist() == [2, 4, -1]
    recency = FrameBank(MemoryPolicy(retrieve="recency", k=3))
    recency.load_state_dict({**bank.state_dict(), "policy": recency.state_dict()["policy"]})
    assert recency.retrieve((0, 0), step=5).index.tolist() == [4, 3, 2]
    assert recency.retrieve((0, 0), step=5, k=7).index.tolist() == [4, 3, 2, 1, 0, -1, -1]
    draws = []
    for seed in (0, 1):
        rand = FrameBank(MemoryPolicy(retrieve="random", k=3, seed=seed))
        rand.load_state_dict({**bank.state_dict(), "policy": rand.state_dict()["policy"]})
        a, b = rand.retrieve((0, 0), step=5), rand.retrieve((9, 9), step=5)
        assert (a.index == b.index).all() and a.valid.all()  # a pure function of (seed, step)
        assert len(set(a.index.tolist())) == 3
        draws.append(tuple(a.index.tolist()))
        many = {tuple(rand.retrieve((0, 0), step=s).index.tolist()) for s in range(40)}
        assert len(many) > 5
    assert draws[0] != draws[1]


def test_eviction_rules():
    # frame 0 far away (all fresh); frame 2 hides all but one column of frame 1
    poses = [(20, 20), (0, 0), (0, 1), (40, 40)]
    oldest = bank_of(poses, MemoryPolicy(capacity=3, evict="oldest"))
    least = bank_of(poses, MemoryPolicy(capacity=3, evict="least_covering"))
    kept = sorted(oldest.state_dict()["serial"].tolist())
    assert len(oldest) == 3 and kept == [1, 2, 3]
    assert len(least) == 3 and sorted(least.state_dict()["serial"].tolist()) == [0, 2, 3]
    # what is forgotten is not read back
    assert 0 not in oldest.retrieve((20, 20), step=5).index.tolist()
    assert least.retrieve((20, 20), step=5).index.tolist()[0] == 0


def test_novel_writes_skip_a_repeated_view():
    bank = FrameBank(MemoryPolicy(write="novel", novel_cells=8))
    assert bank.write(view_at((0, 0)), (0, 0), 0)
    assert not bank.write(view_at((0, 0)), (0, 0), 1)
    assert bank.write(view_at((0, 1)), (0, 1), 2)  # one new column: 8 cells
    assert not bank.write(view_at((0, 0)), (0, 0), 3)
    strict = FrameBank(MemoryPolicy(write="novel", novel_cells=9))
    assert strict.write(view_at((0, 0)), (0, 0), 0) and not strict.write(view_at((0, 1)), (0, 1), 1)
    assert len(bank) == 2 and len(strict) == 1
    # an edit on the spot is new content, not new ground: written only when changes count
    edited = view_at((0, 0))
    edited[3, 4] = -7
    for counts, written in [(False, False), (True, True)]:
        b = FrameBank(MemoryPolicy(write="novel", novel_cells=1, novel_counts_changes=counts))
        b.write(view_at((0, 0)), (0, 0), 0)
        assert not b.write(view_at((0, 0)), (0, 0), 1)
        assert b.write(edited, (0, 0), 2) == written


def test_a_memory_read_never_changes_the_tokens_it_was_given():
    bank = FrameBank(MemoryPolicy(k=1))
    grid = view_at((0, 0))
    bank.write(grid, (0, 0), 0)
    grid[:] = -1  # the caller reuses its buffer
    got = bank.retrieve((0, 0), step=1)
    assert (got.tokens[0] == view_at((0, 0))).all()
    got.tokens[:] = 5  # and scribbles on what it read
    got.fresh[:] = False
    again = bank.retrieve((0, 0), step=1)
    assert (again.tokens[0] == view_at((0, 0))).all() and again.fresh.all()
    state = bank.state_dict()
    state["tokens"][:] = 3
    assert (bank.retrieve((0, 0), step=1).tokens[0] == view_at((0, 0))).all()


def random_bank(policy, writes=120, seed=0):
    rng = np.random.default_rng(seed)
    bank, pose = FrameBank(policy), np.zeros(2, dtype=np.int64)
    for step in range(writes):
        pose = np.clip(pose + rng.integers(-1, 2, size=2), -20, 20)
        bank.write(view_at(pose), pose, step)
    return bank, rng


@pytest.mark.parametrize("retrieve", ["overlap", "recency", "random"])
def test_state_dict_round_trip_reproduces_retrieval(retrieve):
    policy = MemoryPolicy(retrieve=retrieve, k=3, capacity=40, evict="least_covering", seed=3)
    bank, rng = random_bank(policy)
    state = bank.state_dict()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    copy = FrameBank.from_state_dict({k: v.copy() for k, v in state.items()})
    assert copy.policy == policy and len(copy) == len(bank) == 40
    for step in range(120, 140):
        query = rng.integers(-20, 21, size=2)
        a, b = bank.retrieve(query, step), copy.retrieve(query, step)
        for field in ("tokens", "offset", "age", "fresh", "index", "valid"):
            assert (getattr(a, field) == getattr(b, field)).all()
        # and both continue the same way
        assert bank.write(view_at(query), query, step) == copy.write(view_at(query), query, step)
    for key, value in bank.state_dict().items():
        assert (value == copy.state_dict()[key]).all()


def test_state_dict_survives_safetensors():
    safetensors = pytest.importorskip("safetensors.numpy")
    bank, _ = random_bank(MemoryPolicy(k=2, capacity=16))
    loaded = FrameBank.from_state_dict(safetensors.load(safetensors.save(bank.state_dict())))
    a, b = bank.retrieve((3, 3), 200), loaded.retrieve((3, 3), 200)
    assert (a.index == b.index).all() and (a.tokens == b.tokens).all()


def test_memory_stays_bounded_over_ten_thousand_writes():
    bank = FrameBank(MemoryPolicy(k=2, capacity=64))
    rng, pose = np.random.default_rng(0), np.zeros(2, dtype=np.int64)
    sizes = {}
    for step in range(10_000):
        pose = np.clip(pose + rng.integers(-1, 2, size=2), -20, 20)
        bank.write(view_at(pose), pose, step)
        if step + 1 in (64, 1_000, 10_000):
            sizes[step + 1] = (len(bank), bank.nbytes)
    assert sizes[64] == sizes[1_000] == sizes[10_000]
    # 64 frames x (64 int64 tokens + 64 fresh flags + pose, step and write number)
    assert sizes[10_000] == (64, 64 * (64 * 8 + 64 + 2 * 8 + 8 + 8))
    got = bank.retrieve(pose, 10_000)
    assert got.valid[0] and got.index.max() < 10_000


def test_bad_input_gets_a_clear_error():
    for kwargs, match in [
        ({"write": "sometimes"}, "unknown write policy"),
        ({"retrieve": "nearest"}, "unknown retrieve policy"),
        ({"evict": "lru"}, "unknown evict policy"),
        ({"k": 0}, "k must be an int >= 1"),
        ({"capacity": 0}, "capacity must be >= 1"),
        ({"capacity": -5}, "capacity must be >= 1"),
        ({"capacity": 2.5}, "capacity must be an int"),
        ({"novel_cells": -1}, "novel_cells"),
        ({"seed": -1}, "seed"),
    ]:
        with pytest.raises(ValueError, match=match):
            MemoryPolicy(**kwargs)
    bank = FrameBank(MemoryPolicy())
    grid = view_at((0, 0))
    with pytest.raises(ValueError, match="tokens must be an integer grid of shape"):
        bank.write(grid[:4], (0, 0), 0)
    with pytest.raises(ValueError, match="tokens must be an integer grid"):
        bank.write(grid.astype(float), (0, 0), 0)
    with pytest.raises(ValueError, match="pose"):
        bank.write(grid, (0, 0, 0), 0)
    with pytest.raises(ValueError, match="pose"):
        bank.write(grid, (0.5, 0), 0)
    with pytest.raises(ValueError, match="step"):
        bank.write(grid, (0, 0), -1)
    with pytest.raises(ValueError, match="ignore"):
        bank.write(grid, (0, 0), 0, ignore=np.zeros((8, 8), dtype=np.int64))
    with pytest.raises(ValueError, match="k must be"):
        bank.retrieve((0, 0), 0, k=0)
    with pytest.raises(ValueError, match="view"):
        FrameBank(view=(0, 8))
    with pytest.raises(ValueError, match="MemoryPolicy"):
        FrameBank("overlap")
    with pytest.raises(ValueError, match="Retrieved"):
        bank.aligned(np.zeros((1, 8, 8)))
    bank.write(grid, (0, 0), 0)
    other = FrameBank(MemoryPolicy(k=5))
    with pytest.raises(ValueError, match="saved under"):
        other.load_state_dict(bank.state_dict())
    with pytest.raises(ValueError, match="view"):
        FrameBank(view=(6, 6)).load_state_dict(bank.state_dict())
    with pytest.raises(ValueError, match="missing"):
        FrameBank().load_state_dict({"tokens": np.zeros((1, 8, 8))})
    small = FrameBank(MemoryPolicy(capacity=1))
    state = bank_of([(0, 0), (1, 1)], MemoryPolicy(capacity=1)).state_dict()
    small.load_state_dict(state)
    state["tokens"] = np.zeros((2, 8, 8), dtype=np.int64)
    with pytest.raises(ValueError, match="disagree"):
        small.load_state_dict(state)


def centre_and(animals):
    """Cells a frame should not remember: the explorer's own cell and sheep."""
    skip = np.array(animals, dtype=bool)
    skip[..., 4, 4] = True
    return skip


def test_a_loop_walk_finds_the_true_tiles_on_return():
    """Real loops from the simulator, tile kinds standing in for tokens: write every frame of the
    way out and back with its true pose; at the return, the memory shows the returned view."""
    period = 24
    rec = record("test", 6, period, "loop", world=LEARNING_WORLD, policy_kwargs={"period": period})
    back = (rec.positions[:, period] == rec.positions[:, 0]).all(-1)
    assert back.sum() >= 4
    for e in np.flatnonzero(back):
        bank = FrameBank(MemoryPolicy(k=8))
        skip = centre_and(rec.animals[e])
        for t in range(period):
            bank.write(rec.tiles[e, t], rec.positions[e, t], t, ignore=skip[t])
        here = rec.positions[e, period]
        got = bank.retrieve(here, period)
        tokens, known = bank.aligned(got)
        assert (known == bank.coverage(here)).all()  # eight frames are enough to cover it
        assert known[~centre_and(np.zeros((8, 8)))].all()  # frame 0 showed all but its centre
        score = known & ~skip[period]
        assert (tokens[score] == rec.tiles[e, period][score]).all()
        assert got.age[got.valid].min() >= 1


def test_edits_of_a_random_walk_are_read_back_where_they_happened():
    """At every step of real random walks (which cut trees and plant flowers), the memory of the
    earlier frames shows the current view's true tiles on every cell it covers — with update on."""
    rec = record("test", 6, 48, "random", world=LEARNING_WORLD, progress=False)
    assert (rec.actions == Action.INTERACT).any()
    stale_reads = 0
    for update in (True, False):
        for e in range(rec.episodes):
            bank = FrameBank(MemoryPolicy(k=8, update=update))
            skip = centre_and(rec.animals[e])
            for t in range(rec.steps + 1):
                if t and rec.actions[e, t - 1] != Action.INTERACT:  # an edit made just now is new
                    tokens, known = bank.aligned(bank.retrieve(rec.positions[e, t], t))
                    score = known & ~skip[t]
                    wrong = int((tokens[score] != rec.tiles[e, t][score]).sum())
                    if update:
                        assert wrong == 0
                    stale_reads += wrong
                bank.write(rec.tiles[e, t], rec.positions[e, t], t, ignore=skip[t])
    assert stale_reads > 0  # without update, edited tiles come back as they were before


def test_update_changed_overwrites_only_what_a_newer_frame_shows_differently():
    policy = MemoryPolicy(update=False, update_changed=True, k=2)
    bank = FrameBank(policy, (8, 8))
    old = np.arange(64).reshape(8, 8)
    bank.write(old, (10, 10), 0)
    new = old.copy()
    new[2, 5] = 99  # a tree cut: one cell differs; the new frame sits one row down
    shifted = np.roll(new, -1, axis=0)  # the view at (11, 10) shows old rows 1..7 in rows 0..6
    shifted[7] = 100 + np.arange(8)
    bank.write(shifted, (11, 10), 1)
    fresh = bank.state_dict()["fresh"]
    want = np.ones((8, 8), dtype=bool)
    want[2, 5] = False  # only the changed cell of the older frame is stale
    np.testing.assert_array_equal(fresh[0], want)
    assert fresh[1].all()
    plain = FrameBank(MemoryPolicy(update=False, k=2), (8, 8))
    plain.write(old, (10, 10), 0)
    plain.write(shifted, (11, 10), 1)
    assert plain.state_dict()["fresh"].all()  # update off: nothing overwritten
