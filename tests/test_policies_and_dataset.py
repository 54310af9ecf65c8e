import numpy as np
import pytest
import torch

from hitchhiker.world import HitchhikerWorld, WorldConfig
from hitchhiker.world.dataset import (
    FrameDataset,
    TrajectoryDataset,
    episode_seed,
    record,
    record_episode,
)
from hitchhiker.world.policies import Explorer, LoopWalk, RandomWalk, make_policy

SMALL = WorldConfig(map_size=64)


def _run(policy, steps, seed=0):
    env = HitchhikerWorld(SMALL, max_steps=0)
    _, info = env.reset(seed=seed)
    policy.reset(env, np.random.default_rng(seed))
    positions, actions = [tuple(info["position"])], []
    for _ in range(steps):
        a = policy.act(info)
        _, _, _, _, info = env.step(a)
        actions.append(a)
        positions.append(tuple(info["position"]))
    return env, positions, actions


def test_random_walk_travels_and_interacts():
    _, positions, actions = _run(RandomWalk(), 300)
    assert len(set(positions)) > 40  # momentum: it goes places instead of jittering
    assert 5 in actions  # it interacts now and then


def test_explorer_covers_more_ground_than_a_random_walk():
    _, p_rand, _ = _run(RandomWalk(), 200, seed=1)
    _, p_expl, _ = _run(Explorer(), 200, seed=1)
    assert len(set(p_expl)) > len(set(p_rand))
    assert len(set(p_expl)) > 120  # nearly every step reaches a tile not stood on before


@pytest.mark.parametrize("period", [16, 17, 32])
def test_loop_walk_returns_exactly_every_period(period):
    pol = LoopWalk(period=period)
    _, positions, _ = _run(pol, 4 * period, seed=2)
    for k in range(1, 4):
        assert positions[k * period] == positions[(k - 1) * period]
        # and it really left: somewhere in between it stood elsewhere
        assert any(p != positions[k * period] for p in positions[(k - 1) * period : k * period])
    assert pol.returns[:3] == [period, 2 * period, 3 * period]


def test_unknown_policy_and_split_raise():
    with pytest.raises(ValueError, match="random, bumper, explorer, loop"):
        make_policy("teleport")
    with pytest.raises(ValueError, match="train, val, test"):
        episode_seed("dev", 0)


def test_splits_use_disjoint_seeds():
    seeds = {s: {episode_seed(s, i) for i in range(1000)} for s in ("train", "val", "test")}
    assert not seeds["train"] & seeds["val"] and not seeds["val"] & seeds["test"]


def test_recording_is_deterministic_and_matches_ground_truth():
    a = record_episode(5, 40, "random", SMALL)
    b = record_episode(5, 40, "random", SMALL)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert a["frames"].shape == (41, 64, 64, 3) and a["frames"].dtype == np.uint8
    assert a["actions"].shape == (40,) and a["tiles"].shape == (41, 8, 8)
    # replaying the recorded actions in a fresh world gives the recorded frames
    env = HitchhikerWorld(SMALL, max_steps=0)
    obs, _ = env.reset(seed=5)
    assert np.array_equal(obs, a["frames"][0])
    for t, act in enumerate(a["actions"]):
        obs, *_ = env.step(int(act))
        assert np.array_equal(obs, a["frames"][t + 1])


def test_record_caches_and_serves_torch_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("HITCHHIKER_CACHE", str(tmp_path))
    rec = record("val", episodes=2, steps=12, policy="explorer", world=SMALL, progress=False)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    again = record("val", episodes=2, steps=12, policy="explorer", world=SMALL, progress=False)
    assert np.array_equal(rec.frames, again.frames) and np.array_equal(rec.actions, again.actions)
    assert rec.frames.shape == (2, 13, 64, 64, 3)

    frames = FrameDataset(rec)
    assert len(frames) == 26
    item = frames[3]
    assert item["frame"].shape == (3, 64, 64) and item["frame"].dtype == torch.float32
    assert 0.0 <= item["frame"].min() and item["frame"].max() <= 1.0
    assert item["tiles"].shape == (8, 8)

    traj = TrajectoryDataset(rec, length=5, stride=2)
    x = traj[0]
    assert x["frames"].shape == (5, 3, 64, 64) and x["actions"].shape == (4,)
    assert len(traj) == 2 * len(range(0, 13 - 5 + 1, 2))
    with pytest.raises(ValueError, match="window length"):
        TrajectoryDataset(rec, length=20)


def test_cache_key_holds_the_policy_defaults(tmp_path, monkeypatch):
    """A changed policy default records again instead of reusing stale play; spelling out a
    default is the same recording as leaving it out."""
    from hitchhiker.world.policies import WallBumper, policy_settings

    monkeypatch.setenv("HITCHHIKER_CACHE", str(tmp_path))
    assert policy_settings("bumper") == {
        "momentum": 0.8,
        "interact_prob": 0.05,
        "noop_prob": 0.05,
        "bump_prob": 0.6,
    }
    with pytest.raises(ValueError, match="unknown"):
        policy_settings("random", bump_prob=0.5)
    kw = dict(episodes=1, steps=6, policy="bumper", world=SMALL, progress=False)
    record("val", **kw)
    record("val", **kw, policy_kwargs={"bump_prob": 0.6})
    assert len(list(tmp_path.glob("*.npz"))) == 1
    monkeypatch.setattr(WallBumper.__init__, "__defaults__", (0.3,))
    assert policy_settings("bumper")["bump_prob"] == 0.3
    record("val", **kw)
    assert len(list(tmp_path.glob("*.npz"))) == 2
