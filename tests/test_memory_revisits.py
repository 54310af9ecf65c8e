"""Condition (i) of the revisit benchmark: exact sets of cells, the simulator scores 1, a frozen
world does not, and the intervals are the textbook ones."""

import numpy as np
import pytest

from hitchhiker.interactive.revisit import revisit_set
from hitchhiker.interactive.truth import CopyLastFrame, SimulatorRollout
from hitchhiker.memory.revisit_benchmark import (
    cell_sets,
    evaluate_way_back,
    return_scores,
    way_back,
)


@pytest.fixture(scope="module")
def walks():
    return revisit_set("test", 12, 16, 4, water=False)


def test_the_way_back_retraces_the_way_out_so_every_cell_was_seen(walks):
    frames, past, future = way_back(walks)
    assert frames.shape[1] == 9 and past.shape[1] == 8 and future.shape[1] == 8
    sets = cell_sets(walks, window=4)
    assert sets["seen"].all()  # out and back on the same cells: all of the way back was shown
    assert (sets["beyond_window"] <= sets["seen"]).all()
    assert (sets["memory_needing"] <= sets["beyond_window"]).all()
    # the first step back is the frame before the turn: still in the window, nothing beyond it
    assert not sets["beyond_window"][:, 0].any() and sets["beyond_window"][:, -1].any()
    h = walks.period // 2
    dominant = [np.bincount(t.ravel()).argmax() for t in walks.tiles[:, : h + 1]]
    for e, kind in enumerate(dominant):
        assert (walks.tiles[e, h + 1 :][sets["memory_needing"][e]] != kind).all()


def test_the_simulator_scores_one_and_a_frozen_world_does_not(walks):
    real = evaluate_way_back(SimulatorRollout(), walks, "sim", window=4)
    for name in ("seen", "beyond_window"):
        assert real[f"sim.way_back_{name}_accuracy"] == 1.0
        assert real[f"sim.way_back_{name}_accuracy_ci95"] == 0.0
    frozen = return_scores(
        CopyLastFrame().rollout(*way_back(walks)), walks, window=4
    )  # the turning point's view, held: wrong wherever the way back shows other land
    assert np.nanmean(frozen["beyond_window"]) < 0.9
    with pytest.raises(ValueError, match="imagined way back"):
        return_scores(np.zeros((4, 3, 64, 64, 3), np.uint8), walks, window=4)


def test_interval_is_mean_and_1_96_standard_errors():
    from hitchhiker.metrics import mean_interval

    mean, half = mean_interval([0.5, 1.0, np.nan, 0.0])
    assert mean == 0.5 and half == pytest.approx(1.96 * 0.5 / np.sqrt(3))
    assert np.isnan(mean_interval([np.nan])[0])


def test_cost_counts_what_each_memory_holds_as_history_grows(smoke_model):
    from hitchhiker.memory.cost import history_walk, retrieval_cost, window_cost
    from hitchhiker.memory.memory_engine import MemoryEngine

    model, cfg, deps = smoke_model
    frames, actions = history_walk(40)
    assert frames.shape == (1, 40, 64, 64, 3) and actions.shape == (1, 39)
    engine = MemoryEngine(model, deps["tokenizer"], cfg=cfg)
    tokens = engine.encode(frames)
    small = retrieval_cost(engine, tokens[:, :16], actions[:, :15], frames=2)
    large = retrieval_cost(engine, tokens, actions, frames=2)
    # every frame that left the window is written (the warm-up and timed frames too)
    assert small["stored"] == 16 - cfg.context + 3 and large["stored"] == 40 - cfg.context + 3
    assert large["bytes"] > small["bytes"] > 0 and small["ms"] > 0
    wide = window_cost(model, deps["tokenizer"], cfg, 8, frames=1)
    assert wide["bytes"] == 8 * 64 * 8 and wide["ms"] > 0  # 8 frames of 64 int64 token ids


@pytest.fixture(scope="module")
def smoke_model():
    from hitchhiker import zoo
    from hitchhiker.memory import memory_recipe

    cfg, deps = zoo.prepare("memory", "smoke")
    return memory_recipe.build(cfg).start_from(deps["dynamics"]).eval(), cfg, deps


def test_edits_are_the_cells_the_player_changed_and_the_simulator_keeps_them():
    walks = revisit_set("test", 12, 32, 4, water=False, edit_every=4)
    h = walks.period // 2
    assert (walks.actions[:, :h] == 5).sum(axis=1).min() >= 3  # interact on the way out
    assert (walks.positions[:, -1] == walks.positions[:, 0]).all()  # and still back home
    edits = cell_sets(walks, window=4)["edits"]
    assert edits.any()
    # an edited cell shows, on the way back, a kind other than the one frame 0 showed there
    e, f, r, c = np.argwhere(edits)[0]
    world = walks.positions[e, h + 1 + f] + np.array([r - 4, c - 4])
    r0, c0 = world - walks.positions[e, 0] + 4
    if 0 <= r0 < 8 and 0 <= c0 < 8:
        assert walks.tiles[e, 0, r0, c0] != walks.tiles[e, h + 1 + f, r, c]
    real = evaluate_way_back(SimulatorRollout(), walks, "sim", window=4)
    assert real["sim.way_back_edits_accuracy"] == 1.0
    plain = revisit_set("test", 12, 32, 4, water=False)
    assert not cell_sets(plain, window=4)["edits"].any()  # no interact, no edit
