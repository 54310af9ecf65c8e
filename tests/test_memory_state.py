"""The state-space memory: the latent grid's exact writes and reads (world- and screen-aligned), a
fresh model that is Stage III's, a tiny model that learns to copy from the grid through its
recurrence, a state that does not grow over 10,000 frames, the engine and the recipe end to end,
and clear errors."""

import dataclasses

import numpy as np
import pytest
import torch

from hitchhiker import zoo
from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.interactive.masked_dynamics_model import DynamicsModel
from hitchhiker.masks.core import CoreConfig
from hitchhiker.memory import state_recipe
from hitchhiker.memory.latent_grid import LatentGrid
from hitchhiker.memory.memory_engine import explorer_cell
from hitchhiker.memory.state_memory_engine import StateMemoryEngine
from hitchhiker.memory.state_memory_model import StateMemoryModel, StateRead
from hitchhiker.world.dataset import LEARNING_WORLD, record

V = 16


def grid(aligned="world", size=32, channels=4, seed=0):
    torch.manual_seed(seed)
    return LatentGrid(V, (8, 8), size, channels, aligned)


def frame(seed, b=1):
    return torch.randint(0, V, (b, 64), generator=torch.Generator().manual_seed(seed))


def test_a_write_is_the_gated_update_and_touches_only_the_cells_it_shows():
    g = grid()
    keep = ~torch.as_tensor(explorer_cell()).flatten()[None]
    tokens = frame(1)
    mem = g.write(g.empty(1), tokens, [[3, 5]], 7, keep)
    x = torch.cat([g.embed(tokens), torch.zeros(1, 64, 4)], -1)
    want = torch.sigmoid(g.gate(x)) * torch.tanh(g.update(x))  # s = 0 before: (1 - g) s vanishes
    state, last = g.read(mem, [[3, 5]])
    torch.testing.assert_close(state[keep], want[keep])
    assert (state[~keep] == 0).all() and (last[~keep] == -1).all() and (last[keep] == 7).all()
    rows, cols = np.nonzero((mem.last[0] >= 0).view(32, 32).numpy())
    shown = {((3 + r) % 32, (5 + c) % 32) for r in range(8) for c in range(8) if (r, c) != (4, 4)}
    assert set(zip(rows.tolist(), cols.tolist())) == shown  # nothing else of the grid changed


def test_walking_away_and_back_reads_the_same_state_and_a_place_s_cells_away_aliases():
    g = grid()
    home = g.write(g.empty(1), frame(1), [[0, 0]], 0)
    before = g.read(home, [[0, 0]])
    mem = home
    for step, col in enumerate((8, 16, 24 - 32), 1):  # three views beside home, none on it
        mem = g.write(mem, frame(10 + step), [[0, col]], step)
    after = g.read(mem, [[0, 0]])
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    moved = g.read(home, [[0, 1]])  # one step right: the view shows home's cells one column on
    assert torch.equal(moved[0][0].view(8, 8, 4)[:, :7], before[0][0].view(8, 8, 4)[:, 1:])
    assert (moved[1].view(8, 8)[:, 7] == -1).all()
    far = g.write(home, frame(99), [[32, 0]], 9)  # 32 = S rows away: the same cells, overwritten
    assert (g.read(far, [[0, 0]])[1] == 9).all()


def test_the_screen_aligned_grid_does_not_move_with_the_explorer():
    world, screen = grid("world"), grid("screen")
    screen.load_state_dict(world.state_dict())
    tokens = frame(3)
    w_mem = world.write(world.empty(1), tokens, [[0, 0]], 0)
    s_mem = screen.write(screen.empty(1), tokens, [[0, 0]], 0)
    assert torch.equal(world.read(w_mem, [[0, 0]])[0], screen.read(s_mem, [[0, 0]])[0])
    assert s_mem.state.shape == (1, 64, 4) and w_mem.state.shape == (1, 32 * 32, 4)
    # after a move right the world grid shows home one column on; the screen grid, unchanged
    assert torch.equal(screen.read(s_mem, [[0, 1]])[0], screen.read(s_mem, [[0, 0]])[0])
    assert not torch.equal(world.read(w_mem, [[0, 1]])[0], world.read(w_mem, [[0, 0]])[0])


def tiny(seed=0, size=16, channels=16, context=3):
    torch.manual_seed(seed)
    cfg = CoreConfig(vocab_size=V, seq_len=64, dim=32, depth=2, heads=2, modalities=context + 1)
    base = DynamicsModel(cfg, 6, context, (8, 8)).eval()
    model = StateMemoryModel(cfg, 6, context, (8, 8), size, channels).start_from(base).eval()
    return base, model


def window(b=2, seed=1, frames=4):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, V, (b, frames, 64), generator=g)
    actions = torch.randint(0, 6, (b, frames), generator=g)
    actions[:, 0] = 6
    return tokens, actions


def test_a_fresh_model_is_stage3_and_a_read_never_changes_what_it_was_given():
    base, model = tiny()
    tokens, actions = window()
    hide = torch.rand(2, 3, 64, generator=torch.Generator().manual_seed(2)) < 0.5
    plain = base(tokens, actions, hide=hide)
    assert torch.equal(base(tokens, actions), model(tokens, actions))
    empty = model.recall(model.empty(2), [[0, 0], [5, 5]], 3)
    assert empty.frames == 0  # nothing written: no memory, Stage III's logits exactly
    assert torch.equal(plain, model(tokens, actions, hide=hide, memory=empty))

    mem = model.mem_grid.write(model.empty(2), frame(4, 2), [[0, 0], [1, 1]], 0)
    read = model.recall(mem, [[0, 1], [1, 1]], 4)
    assert read.frames == 1 and read.written.any() and (read.age[read.written] == 4).all()
    assert (model.cell_read(read) == 0).all()  # the cell read starts at zero
    given = [t.clone() for t in (tokens, actions, hide, read.state, read.age, read.written)]
    state = [t.clone() for t in (mem.state, mem.last)]
    out = model(tokens, actions, hide=hide, memory=read)
    for was, now in zip(given, (tokens, actions, hide, read.state, read.age, read.written)):
        assert torch.equal(was, now)
    assert torch.equal(state[0], mem.state) and torch.equal(state[1], mem.last)
    torch.testing.assert_close(out[:, :-1], plain[:, :-1])  # only the last slot reads memory


def test_a_tiny_model_learns_to_copy_from_the_grid_through_its_recurrence():
    """Each batch walks a random map of random tokens: two views are written into the grid, the
    target is a third view nearby. Only the grid tells the target's tokens where the writes
    covered it; the gradient reaches the grid's update through both writes."""
    _, model = tiny(seed=3, context=1)  # one context frame: the window plays no part here
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(4)
    rows, cols = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")

    def view(world, pose):  # (B, 64) tokens of the views at pose (B, 2) of maps (B, 16, 16)
        r = (pose[:, 0, None, None] + torch.as_tensor(rows)) % 16
        c = (pose[:, 1, None, None] + torch.as_tensor(cols)) % 16
        return world[torch.arange(len(world))[:, None, None], r, c].view(len(world), 64)

    def batch(b=32):
        tokens, actions = window(b, int(torch.randint(0, 10**6, (1,), generator=gen)), 2)
        world = torch.randint(0, V, (b, 16, 16), generator=gen)
        target = torch.randint(0, 16, (b, 2), generator=gen)
        mem = model.empty(b)
        for step in range(2):
            pose = target + torch.randint(-3, 4, (b, 2), generator=gen)
            mem = model.mem_grid.write(mem, view(world, pose), pose, step)
        tokens[:, -1] = view(world, target)
        return tokens, actions, model.recall(mem, target, 3)

    hide = torch.ones(32, 1, 64, dtype=torch.bool)
    for _ in range(80):
        tokens, actions, read = batch()
        logits = model(tokens, actions, hide=hide, memory=read)[:, -1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tokens[:, -1].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        tokens, actions, read = batch(64)
        logits = model(tokens, actions, hide=hide.repeat(2, 1, 1), memory=read)[:, -1]
    right = logits.argmax(-1) == tokens[:, -1]
    assert read.written.float().mean() > 0.5 and (~read.written).any()
    assert right[read.written].float().mean() > 0.9  # copied from the grid
    assert right[~read.written].float().mean() < 0.3  # nothing to copy: about chance (1 in 16)


def test_the_state_and_its_work_per_frame_do_not_grow_over_10000_frames():
    g = grid(size=32, channels=8)
    rng = np.random.default_rng(0)
    steps = rng.integers(-1, 2, size=(10_000, 2)) * (rng.random((10_000, 1)) < 0.5)
    poses = np.cumsum(steps, 0)  # a long random walk, far beyond the grid's side
    keep = ~torch.as_tensor(explorer_cell()).flatten()[None]
    with torch.no_grad():
        mem = g.empty(1)
        size = mem.nbytes
        for t, pose in enumerate(poses):
            new = g.write(mem, frame(t % 97), pose[None], t, keep)
            touched = (new.last != mem.last) | (new.state != mem.state).any(-1)
            assert int(touched.sum()) <= 63  # one frame's cells, whatever came before
            assert new.state.shape == mem.state.shape and new.nbytes == size
            mem = new
        state, last = g.read(mem, poses[-1:])
    assert state.shape == (1, 64, 8) and (last == 9_999).sum() == 63
    assert (mem.last[0] >= 0).sum() <= 32 * 32  # the grid is full, never larger


@pytest.fixture(scope="module")
def smoke_state():
    cfg, deps = zoo.prepare("state_memory", "smoke")
    model = state_recipe.build(cfg).start_from(deps["dynamics"]).eval()
    return model, cfg, deps


def test_the_engine_plays_stage3_without_memory_and_its_cost_stays_flat(smoke_state):
    from hitchhiker.memory.cost import history_walk, state_cost

    model, cfg, deps = smoke_state
    rec = record("test", 2, 24, "loop", LEARNING_WORLD, {"period": 16}, progress=False)
    ctx, past, future = rec.frames[:, :9], rec.actions[:, :8], rec.actions[:, 8:]
    off = StateMemoryEngine(model, deps["tokenizer"], use_memory=False, cfg=cfg)
    plain = DynamicsEngine(model, deps["tokenizer"], cfg=cfg)
    np.testing.assert_array_equal(off.rollout(ctx, past, future), plain.rollout(ctx, past, future))

    truth = StateMemoryEngine(model, deps["tokenizer"], pose="true", cfg=cfg)
    out = truth.rollout(ctx, past, future, poses=rec.positions)
    assert out.shape == (2, 16, 64, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(truth._poses, rec.positions[:, -1])
    oracle = truth.rollout(ctx, past, future, poses=rec.positions, truth=rec.frames[:, 9:])
    assert oracle.shape == out.shape
    assert truth.memory_bytes == 2 * (32 * 32 * 8 * 4 + 32 * 32 * 8)

    engine = StateMemoryEngine(model, deps["tokenizer"], cfg=cfg)
    frames, actions = history_walk(40)
    tokens = engine.encode(frames)
    small = state_cost(engine, tokens[:, :16], actions[:, :15], frames=2)
    large = state_cost(engine, tokens, actions, frames=2)
    assert small["bytes"] == large["bytes"] > 0 and small["ms"] > 0
    assert 0 < small["written"] <= large["written"] <= 32 * 32


def test_smoke_fit_and_evaluate_through_the_zoo_for_both_alignments():
    cfg, deps = zoo.prepare("state_memory", "smoke")
    model = state_recipe.fit(cfg, deps, progress=False)
    assert len(model.losses) == cfg.train.steps and "memory_acc" in model.log[-1]
    short = dataclasses.replace(cfg, revisit_periods=(16,), way_back_periods=())  # a quick run
    figures = zoo.evaluate("state_memory", model, short)
    for cond in ("true_pose", "estimated_pose"):
        assert 0 <= figures[f"stage4.state_memory.{cond}.k16.way_back_seen_accuracy"] <= 1
        assert 0 <= figures[f"stage4.state_memory.{cond}.k16.revisit_seen_land_accuracy"] <= 1
    assert "stage4.state_memory.k16_edits.revisit_walks" in figures
    assert not any("no_memory" in k for k in figures)
    screen = zoo.config_for("state_memory_screen", "smoke")
    assert screen.aligned == "screen" and screen.name == "state_memory_screen"
    assert state_recipe.build(screen).mem_grid.shape == (8, 8)


def test_bad_input_gets_clear_errors(smoke_state):
    model, cfg, deps = smoke_state
    with pytest.raises(ValueError, match="grid_size must be >= the view's side 8"):
        LatentGrid(V, (8, 8), 4, 4)
    with pytest.raises(ValueError, match="aligned must be one of"):
        LatentGrid(V, (8, 8), 32, 4, "diagonal")
    g = grid()
    mem = g.empty(2)
    with pytest.raises(ValueError, match=r"tokens must be \(B, N\)"):
        g.write(mem, torch.zeros(2, 63, dtype=torch.long), [[0, 0], [0, 0]], 0)
    with pytest.raises(ValueError, match=r"poses must be \(B, 2\)"):
        g.write(mem, frame(0, 2), [0, 0], 0)
    with pytest.raises(ValueError, match="token ids must lie in"):
        g.write(mem, torch.full((2, 64), V), [[0, 0], [0, 0]], 0)
    with pytest.raises(ValueError, match="keep must be"):
        g.write(mem, frame(0, 2), [[0, 0], [0, 0]], 0, keep=torch.ones(2, 8, 8, dtype=bool))
    with pytest.raises(ValueError, match="grid state of"):
        grid(size=16).read(mem, [[0, 0], [0, 0]])
    ones = torch.ones(1, 63, dtype=torch.bool)
    with pytest.raises(ValueError, match="state read of 64 cells"):
        model.embed_memory(StateRead(torch.zeros(1, 63, 8), torch.ones(1, 63).long(), ones))
    with pytest.raises(ValueError, match="expected a StateMemoryModel"):
        StateMemoryEngine(DynamicsModel(model.cfg, 6, 3, (8, 8)), deps["tokenizer"], cfg=cfg)
    with pytest.raises(ValueError, match="pose must be one of"):
        StateMemoryEngine(model, deps["tokenizer"], pose="gps", cfg=cfg)
    with pytest.raises(ValueError, match="grid_size must be"):
        zoo.config_for("state_memory", "smoke", grid_size=4)
    with pytest.raises(ValueError, match="aligned must be one of"):
        zoo.config_for("state_memory", "smoke", aligned="diagonal")
    with pytest.raises(ValueError, match="one memory frame"):
        zoo.config_for("state_memory", "smoke", memory_frames=2)


def test_a_saved_grid_world_continues_exactly(smoke_state, tmp_path):
    from hitchhiker.memory.saved_world import load_world, save_world

    model, cfg, deps = smoke_state
    today = StateMemoryEngine(model, deps["tokenizer"], cfg=cfg)
    today.reset(2000003)
    for a in ["right", "interact", "down", "down", "left", "left", "up"]:
        today.step(a)
    assert int((today._state.last >= 0).sum()) > 0  # frames left the window into the grid
    path = save_world(today, tmp_path / "grid_world.safetensors")
    tomorrow = StateMemoryEngine(model, deps["tokenizer"], cfg=cfg)
    load_world(tomorrow, path)
    assert torch.equal(tomorrow._state.state, today._state.state)
    walk = ["up", "right", "right", "noop", "left"]
    a = np.stack([today.step(x) for x in walk])
    b = np.stack([tomorrow.step(x) for x in walk])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="no latent grid"):
        tomorrow.load_memory_tensors({"bank.tokens": torch.zeros(1)})
