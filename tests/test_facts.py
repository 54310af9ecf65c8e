"""Fact scoring of Stage II: atomic facts, caption round trips, and the t2i / i2t scores on
hand-made cases with known answers, plus real frames read back exactly."""

import numpy as np
import pytest

from hitchhiker.unified import facts as fx
from hitchhiker.unified.sequence import facts_of
from hitchhiker.world import REGIONS, Facts, describe, parse_caption
from hitchhiker.world.dataset import LEARNING_WORLD, record

GRASS = dict.fromkeys(REGIONS, "grass")


def facts(facing="north", on="grass", animals=(), **regions) -> Facts:
    regions = {r.replace("_", "-"): k for r, k in regions.items()}
    return Facts(facing=facing, standing_on=on, regions={**GRASS, **regions}, animals=animals)


@pytest.fixture(scope="module")
def rec():
    return record("test", 2, 16, world=LEARNING_WORLD, progress=False)


def test_atomic_facts_are_facing_ground_eight_regions_and_each_sheep():
    f = facts("east", "sand", ("north", "south-west"), north_west="water")
    atoms = fx.atomic_facts(f)
    assert len(atoms) == 1 + 1 + 8 + 2
    assert ("facing", "east") in atoms and ("standing_on", "sand") in atoms
    assert ("region", "north-west", "water") in atoms and ("region", "east", "grass") in atoms
    assert {a for a in atoms if a[0] == "sheep"} == {("sheep", "north"), ("sheep", "south-west")}
    with pytest.raises(TypeError, match="Facts"):
        fx.atomic_facts("You stand on grass, facing north.")


def test_caption_facts_round_trip_on_hand_made_and_recorded_views(rec):
    hand = [
        facts(),
        facts("west", "house", ("east",), north="water", south="forest"),
        facts("south", "stump", tuple(REGIONS), west="rock", east="path", south_east="flowers"),
    ]
    for f in hand + facts_of(rec):
        assert parse_caption(describe(f)) == f
        assert fx.atomic_facts(parse_caption(describe(f))) == fx.atomic_facts(f)


def test_fact_share_counts_the_requested_facts_that_hold():
    asked = facts("north", "grass", ("east",))  # 11 atomic facts
    assert fx.fact_share(asked, asked) == 1.0
    assert fx.fact_share(asked, facts("south", "grass", ("east",))) == pytest.approx(10 / 11)
    assert fx.fact_share(asked, facts("north", "grass")) == pytest.approx(10 / 11)  # sheep gone
    # an extra sheep or region kind nobody asked about does not count against the view
    assert fx.fact_share(facts(), facts(animals=("west",))) == 1.0
    wrong = facts(
        "south", "sand", (), **dict.fromkeys([r.replace("-", "_") for r in REGIONS], "rock")
    )
    assert fx.fact_share(asked, wrong) == 0.0


def test_caption_precision_and_recall_on_hand_made_captions():
    truth = facts("north", "grass", ("east",), north="water")  # 11 facts
    assert fx.caption_scores(describe(truth), truth) == (1.0, 1.0, True)
    one_wrong = facts("north", "grass", ("east",), north="forest")
    p, r, ok = fx.caption_scores(describe(one_wrong), truth)
    assert ok and p == pytest.approx(10 / 11) and r == pytest.approx(10 / 11)
    no_sheep = facts("north", "grass", (), north="water")  # says less, all of it true
    assert fx.caption_scores(describe(no_sheep), truth) == (1.0, pytest.approx(10 / 11), True)
    extra = facts("north", "grass", ("east", "west"), north="water")  # says more than is true
    assert fx.caption_scores(describe(extra), truth) == (pytest.approx(11 / 12), 1.0, True)
    for bad in ("", "You stand on grass, facing", "grass grass grass", "Hello world."):
        assert fx.caption_scores(bad, truth) == (0.0, 0.0, False)


def test_i2t_scores_average_over_captions_and_count_unparseable_ones_as_zero():
    truth = facts("north", "grass", ("east",))
    out = fx.i2t_scores([describe(truth), "nonsense", describe(facts("south"))], [truth] * 3)
    assert out["parse_rate"] == pytest.approx(2 / 3)
    assert out["precision"] == pytest.approx((1 + 0 + 9 / 10) / 3)
    assert out["recall"] == pytest.approx((1 + 0 + 9 / 11) / 3)
    with pytest.raises(ValueError, match="as many captions"):
        fx.i2t_scores(["a"], [truth, truth])


def test_real_frames_read_back_to_exactly_their_facts(rec):
    frames = rec.frames.reshape(-1, 64, 64, 3)
    truth = facts_of(rec)
    assert fx.facts_of_frames(frames) == truth
    assert np.all(fx.t2i_scores(truth, frames) == 1.0)
    shifted = fx.t2i_scores(truth[::-1], frames)  # other views' captions: many facts fail
    assert shifted.mean() < 0.95
    with pytest.raises(ValueError, match="frames"):
        fx.t2i_scores(truth[:3], frames[:2])


def test_fact_table_ticks_each_requested_fact():
    asked = facts("north", "grass", ("east",), north="water")
    got = facts("south", "grass", ("east",))
    rows = dict(fx.fact_table(asked, got))
    assert len(rows) == 11
    assert rows["facing north"] is False and rows["north: water"] is False
    assert rows["standing on grass"] and rows["sheep to the east"] and rows["west: grass"]
    assert not any(dict(fx.fact_table(asked, None)).values())


def test_region_accuracy_scores_each_region_and_unparseable_captions_as_wrong():
    truth = facts(north="water", east="forest")
    one_wrong = describe(facts(north="water", east="sand"))
    acc = fx.region_accuracy([describe(truth), one_wrong, "grass grass"], [truth] * 3)
    want = np.full(len(REGIONS), 2 / 3)
    want[REGIONS.index("east")] = 1 / 3
    assert np.allclose(acc, want)
    with pytest.raises(ValueError, match="as many captions"):
        fx.region_accuracy([], [])
