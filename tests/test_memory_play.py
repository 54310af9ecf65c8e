"""The memory panel: memory on and off beside the real world, a map of what the memory holds, the
walk-the-loop button and the memory budget (hitchhiker/memory/memory_play.py)."""

from __future__ import annotations

import numpy as np
import pytest

from hitchhiker import zoo
from hitchhiker.memory import memory_recipe
from hitchhiker.memory.frame_bank import FrameBank, MemoryPolicy
from hitchhiker.memory.memory_engine import MemoryEngine
from hitchhiker.memory.memory_play import COLOURS, loop_actions, memory_map, memory_play


@pytest.fixture(scope="module")
def smoke_memory():
    cfg, deps = zoo.prepare("memory", "smoke")
    model = memory_recipe.build(cfg).start_from(deps["dynamics"]).eval()
    return model, cfg, deps


def test_the_map_paints_held_read_view_and_explorer_where_they_are():
    pose = np.array([100, 200])
    img = memory_map([[100, 190]], pose, read=[[99, 200]], cells=32)  # 2 px per cell
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    top = pose - 16

    def at(cell):
        r, c = (np.array(cell) - top) * 2
        return tuple(img[r, c])

    assert at([100, 190]) == COLOURS["held"]  # outside the view box: untouched grey
    assert at([100, 200]) == COLOURS["explorer"]
    read = at([99, 200])  # inside the view, not on its edge: plain orange
    assert read == COLOURS["read"]
    assert at([90, 180]) == COLOURS["unknown"]
    edge = at([96, 200])  # the view's top edge (rows 96..103 for an 8-row view centred at 100)
    assert min(edge) >= 200
    with pytest.raises(ValueError, match="cells"):
        memory_map([], pose, cells=7)


def test_a_loop_comes_back_and_avoids_what_blocks_it():
    plain = loop_actions(5)
    assert plain == ["right"] * 3 + ["down"] * 2 + ["up"] * 2 + ["left"] * 3

    class Env:  # a corridor: walkable only on row 0 for columns 0..2, then down column 2
        position = (0, 0)

        def walkable(self, r, c):
            return (r == 0 and 0 <= c <= 2) or (c == 2 and 0 <= r <= 5)

    moves = loop_actions(6, Env())
    delta = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
    pos, env = np.array(Env.position), Env()
    for m in moves:
        pos = pos + delta[m]
        assert env.walkable(*pos), f"{m} walks into a wall at {pos}"
    assert tuple(pos) == Env.position and moves[:2] == ["right", "right"]
    assert moves[2:6] == ["down"] * 4  # turned where the corridor turns


def test_a_bank_lists_its_held_cells_and_forgets_down_to_a_budget():
    bank = FrameBank(MemoryPolicy(update=False, update_changed=False), view=(2, 2))
    bank.write(np.zeros((2, 2), dtype=np.int64), (5, 5), 0)  # cells (4..5, 4..5)
    bank.write(np.ones((2, 2), dtype=np.int64), (5, 6), 1)  # cells (4..5, 5..6)
    held = {tuple(c) for c in bank.held_cells()}
    assert held == {(4, 4), (4, 5), (5, 4), (5, 5), (4, 6), (5, 6)}
    bank.write(np.ones((2, 2), dtype=np.int64), (9, 9), 2)
    held = {tuple(c) for c in bank.held_cells()}
    bank.limit(1)
    assert len(bank) == 1 and bank.policy.capacity == 1
    one = FrameBank(bank.policy, view=(2, 2))
    one.write(np.ones((2, 2), dtype=np.int64), (0, 0), 0)
    assert bank.nbytes == one.nbytes  # the budget gives the memory back, not only the frames
    assert {tuple(c) for c in bank.held_cells()} < held
    bank.write(np.ones((2, 2), dtype=np.int64), (20, 20), 3)
    assert len(bank) == 1  # the budget holds after the limit
    bank.limit(None)
    bank.write(np.ones((2, 2), dtype=np.int64), (30, 30), 4)
    assert len(bank) == 2
    with pytest.raises(ValueError, match="capacity"):
        bank.limit(0)


def test_the_panel_plays_three_worlds_walks_a_loop_and_keeps_a_budget(smoke_memory):
    model, cfg, deps = smoke_memory
    on = MemoryEngine(model, deps["tokenizer"], cfg=cfg)
    off = MemoryEngine(model, deps["tokenizer"], use_memory=False, cfg=cfg)
    panel = memory_play(on, off, seed=2000003, keyboard=False)
    frame = panel.controller.frame
    assert frame.shape == (64, 4 * 64 + 3 * 4, 3)  # on | off | real | map
    scores = panel.walk_loop(6)
    assert set(scores) == {"real", "same"}
    for got in scores.values():
        assert set(got) == {"on", "off"} and all(np.isnan(v) or 0 <= v <= 1 for v in got.values())
    same = panel.panel.score_view(since=panel.panel.frames)  # a view against itself
    assert all(np.isnan(v) or v == 1.0 for v in same.values())
    assert "6 steps out" in panel.status.value
    assert panel.controller.steps == 12 and len(on._banks[0]) == 12 + 1 - cfg.context
    panel.budget.value = "4"
    assert len(on._banks[0]) == 4 and on.policy.capacity == 4
    for _ in range(3):
        panel.controller.press("right")
    assert len(on._banks[0]) <= 4
    assert "4 frames held" in panel.info.value
    panel.budget.value = "unbounded"
    assert on.policy.capacity is None


def test_a_latent_grid_plays_in_the_panel_and_its_map_shows_what_was_written():
    from hitchhiker.memory import state_recipe
    from hitchhiker.memory.state_memory_engine import StateMemoryEngine

    cfg, deps = zoo.prepare("state_memory", "smoke")
    model = state_recipe.build(cfg).start_from(deps["dynamics"]).eval()
    on = StateMemoryEngine(model, deps["tokenizer"], cfg=cfg)
    panel = memory_play(on, None, seed=2000003, keyboard=False)
    assert panel.controller.frame.shape == (64, 3 * 64 + 2 * 4, 3)  # on | real | map
    assert panel.budget.disabled and "latent grid" in panel.info.value
    with pytest.raises(ValueError, match="fixed size"):
        on.set_capacity(4)  # a grid has no frames to forget
    held0 = len(on.memory_map()[0])
    for _ in range(cfg.context + 3):
        panel.controller.press("right")
    held, pose, read = on.memory_map()
    assert len(held) > held0 and len(read) > 0
    written = int((on._state.last[0] >= 0).sum())
    assert f"{written} cells written" in panel.info.value
    # every map cell shown as held lies where the grid was written (modulo its side)
    s = model.mem_grid.grid_size
    last = on._state.last[0].view(s, s).numpy()
    assert (last[held[:, 0] % s, held[:, 1] % s] >= 0).all()
