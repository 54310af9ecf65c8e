"""The revisit measurement (walk away, come back) against exact ground truth."""

import numpy as np
import pytest

from hitchhiker.interactive import revisit
from hitchhiker.interactive.truth import CopyLastFrame, SimulatorRollout
from hitchhiker.world import Tile


@pytest.fixture(scope="module")
def walks():
    return revisit.revisit_set("test", episodes=8, period=8, limit=4)


def test_walks_return_to_where_they_started(walks):
    assert walks.episodes >= 1 and walks.period == 8
    assert walks.frames.shape[:2] == (walks.episodes, 9) and walks.actions.shape == (
        walks.episodes,
        8,
    )
    assert (walks.positions[:, -1] == walks.positions[:, 0]).all()
    # the land at the return is the land that was left
    assert (walks.tiles[:, -1] == walks.tiles[:, 0]).all()


def test_the_simulator_remembers_everything(walks):
    figures = revisit.evaluate_revisits(SimulatorRollout(), walks, "stage3.simulator")
    assert figures["stage3.simulator.revisit_tile_accuracy"] == 1.0
    assert figures["stage3.simulator.revisit_seen_land_accuracy"] == 1.0
    recall = figures["stage3.simulator.revisit_water_recall"]
    assert recall == 1.0 or (np.isnan(recall) and not (walks.tiles[:, -1] == Tile.WATER).any())


def test_a_frozen_world_gets_the_return_right_but_not_the_walk(walks):
    imagined = revisit.imagine(CopyLastFrame(), walks)
    assert imagined.shape == (walks.episodes, 8, 64, 64, 3) and imagined.dtype == np.uint8
    scores = revisit.revisit_scores(imagined, walks)
    # frame P shows the place of frame 0, which the frozen world repeats: right by construction
    assert scores["revisit_tile_accuracy"] == 1.0
    # on the way, it draws frame 0's land where the view has moved on: exactly this share is right
    kinds0 = walks.tiles[:, :1]  # what frame 0 reads as, repeated
    shown = revisit.seen_masks(walks.positions, 1, 8, None, (8, 8))
    expected = float(
        (np.broadcast_to(kinds0, walks.tiles[:, 1:].shape) == walks.tiles[:, 1:])[shown].mean()
    )
    assert scores["revisit_seen_land_accuracy"] == pytest.approx(expected)
    assert scores["revisit_seen_land_accuracy"] < 1.0


def test_exact_scores_of_a_dream_that_forgets_the_way_back(walks):
    """The true walk, except that at the return it still shows the far point (frame P/2). Real
    frames read exactly, so every expected score follows from the ground-truth tiles alone."""
    half = walks.period // 2
    imagined = np.array(walks.frames[:, 1:])
    imagined[:, -1] = walks.frames[:, half]
    drawn = np.array(walks.tiles[:, 1:])
    drawn[:, -1] = walks.tiles[:, half]
    truth = walks.tiles[:, 1:]
    wet = truth[:, -1] == Tile.WATER
    shown = revisit.seen_masks(walks.positions, 1, walks.period, None, (8, 8))
    scores = revisit.revisit_scores(imagined, walks)
    assert scores["revisit_tile_accuracy"] == pytest.approx(
        float((drawn[:, -1] == truth[:, -1]).mean())
    )
    assert scores["revisit_seen_land_accuracy"] == pytest.approx(
        float((drawn == truth)[shown].mean())
    )
    if wet.any():
        assert scores["revisit_water_recall"] == pytest.approx(
            float((drawn[:, -1][wet] == Tile.WATER).mean())
        )
    assert (
        scores["revisit_tile_accuracy"] < 1.0
    )  # the walks do leave: the far point looks different


def test_wrong_shapes_are_refused(walks):
    with pytest.raises(ValueError, match="imagined frames"):
        revisit.revisit_scores(walks.frames[:, :3], walks)
