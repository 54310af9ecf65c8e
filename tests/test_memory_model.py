"""The memory reader on the Stage III dynamics model: exact warping, the Stage III model untouched
without memory, play and training computing the same thing, a tiny model that learns to copy from
memory, and the engine's bookkeeping on real walks."""

import dataclasses

import numpy as np
import pytest
import torch

from hitchhiker import zoo
from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.interactive.masked_dynamics_model import DynamicsModel
from hitchhiker.masks.core import CoreConfig, KVCache
from hitchhiker.memory import memory_recipe
from hitchhiker.memory.frame_bank import MemoryPolicy
from hitchhiker.memory.memory_dynamics_model import (
    MemoryDynamicsModel,
    age_bucket,
    warp_memory,
)
from hitchhiker.memory.memory_engine import MemoryEngine
from hitchhiker.world.dataset import LEARNING_WORLD, record

V, MASK = 16, 16


def tiny(memory_frames=2, seed=0):
    torch.manual_seed(seed)
    cfg = CoreConfig(vocab_size=V, seq_len=64, dim=32, depth=2, heads=2, modalities=4)
    base = DynamicsModel(cfg, 6, 3, (8, 8)).eval()
    return base, MemoryDynamicsModel(cfg, 6, 3, (8, 8), memory_frames).start_from(base).eval()


def window(b=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, V, (b, 4, 64), generator=g)
    actions = torch.randint(0, 6, (b, 4), generator=g)
    actions[:, 0] = 6
    return tokens, actions


def test_warp_moves_each_stored_cell_by_the_offset_and_masks_the_rest():
    stored = torch.arange(64).view(1, 1, 8, 8)
    known = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    known[0, 0, 1, 3] = False  # a stale cell: it would land on target (2, 1)
    m = warp_memory(stored, torch.tensor([[[1, -2]]]), torch.tensor([[5]]), known, (8, 8), MASK)
    got = m.tokens.view(8, 8)
    # stored 1 row down, 2 columns left of the target: target (r, c) shows stored (r - 1, c + 2)
    assert (got[0] == MASK).all() and (got[:, 6:] == MASK).all()
    for r in range(1, 8):
        for c in range(6):
            want = MASK if (r - 1, c + 2) == (1, 3) else (r - 1) * 8 + c + 2
            assert got[r, c] == want, (r, c)
    assert age_bucket(torch.tensor([0, 1, 2, 3, 4, 255, 256, 10**6])).tolist() == [
        0,
        0,
        1,
        1,
        2,
        7,
        8,
        8,
    ]


def test_without_memory_it_is_the_stage3_model_and_only_the_last_slot_reads_memory():
    base, mem = tiny()
    tokens, actions = window()
    assert torch.equal(base(tokens, actions), mem(tokens, actions))
    hide = torch.rand(2, 3, 64, generator=torch.Generator().manual_seed(2)) < 0.5
    stored = torch.randint(0, V, (2, 2, 8, 8))
    memory = warp_memory(
        stored, torch.zeros(2, 2, 2), torch.ones(2, 2), torch.ones_like(stored).bool(), (8, 8), MASK
    )
    plain, read = base(tokens, actions, hide=hide), mem(tokens, actions, hide=hide, memory=memory)
    torch.testing.assert_close(plain[:, :-1], read[:, :-1])
    assert not torch.allclose(plain[:, -1], read[:, -1])


def test_memories_older_than_training_showed_read_as_the_oldest_it_knows():
    _, mem = tiny()
    tokens, actions = window()
    mem.oldest_age = 95  # walks of 96 steps: ages up to 95 were trained (bucket 6, 64-127)
    ages = torch.tensor([1, 95, 96, 200, 10**6])
    assert mem.bucket_of(ages).tolist() == [0, 6, 6, 6, 6]
    stored = torch.randint(0, V, (2, 2, 8, 8))
    known = torch.ones_like(stored).bool()

    def read(age):
        memory = warp_memory(
            stored, torch.zeros(2, 2, 2), torch.full((2, 2), age), known, (8, 8), MASK
        )
        return mem(tokens, actions, hide=torch.ones(2, 3, 64, dtype=torch.bool), memory=memory)

    assert torch.equal(read(95), read(300))  # an old memory reads like the oldest trained one
    mem.oldest_age = None
    assert not torch.equal(read(95), read(300))
    with pytest.raises(ValueError, match="oldest_age"):
        MemoryDynamicsModel(mem.cfg, 6, 3, (8, 8), 2, oldest_age=0)


def test_play_through_the_cache_computes_what_training_computes():
    _, mem = tiny()
    tokens, actions = window()
    hide = torch.zeros(2, 3, 64, dtype=torch.bool)
    hide[:, -1] = True  # the frame being drawn: all hidden
    stored = torch.randint(0, V, (2, 2, 8, 8))
    offset = torch.tensor([[[0, 3], [1, -2]], [[0, 0], [7, 0]]])
    memory = warp_memory(
        stored,
        offset,
        torch.tensor([[5, 40], [1, 300]]),
        torch.ones_like(stored).bool(),
        (8, 8),
        MASK,
    )
    trained = mem(tokens, actions, hide=hide, memory=memory)[:, -1]
    cache = KVCache()
    mem.remember(tokens[:, :3], actions[:, :3], memory, cache)
    cache.frozen = True
    blank = torch.full((2, 1, 64), mem.mask_id)
    torch.testing.assert_close(mem(blank, actions[:, 3:], 3, cache, memory=memory)[:, 0], trained)


def test_a_tiny_model_learns_to_copy_from_memory():
    """Targets are random: only the memory (warped by random offsets) tells them."""
    _, mem = tiny(memory_frames=1, seed=3)
    mem.train()
    opt = torch.optim.AdamW(mem.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(4)

    def batch(b=32):
        tokens, actions = window(b, int(torch.randint(0, 10**6, (1,), generator=g)))
        offset = torch.randint(-3, 4, (b, 1, 2), generator=g)
        target = tokens[:, -1].view(b, 8, 8)
        stored = torch.randint(0, V, (b, 8, 8), generator=g)
        for i in range(
            b
        ):  # target cell (r, c) is stored at (r, c) - offset, where that lies inside
            dr, dc = offset[i, 0].tolist()
            rs, cs = slice(max(0, dr), min(8, 8 + dr)), slice(max(0, dc), min(8, 8 + dc))
            stored[i, max(0, -dr) : min(8, 8 - dr), max(0, -dc) : min(8, 8 - dc)] = target[
                i, rs, cs
            ]
        memory = warp_memory(
            stored[:, None],
            offset,
            torch.full((b, 1), 9),
            torch.ones(b, 1, 8, 8).bool(),
            (8, 8),
            MASK,
        )
        return tokens, actions, memory

    for _ in range(150):
        tokens, actions, memory = batch()
        hide = torch.zeros(32, 3, 64, dtype=torch.bool)
        hide[:, -1] = True
        logits = mem(tokens, actions, hide=hide, memory=memory)[:, -1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tokens[:, -1].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    mem.eval()
    tokens, actions, memory = batch(64)
    hide = torch.zeros(64, 3, 64, dtype=torch.bool)
    hide[:, -1] = True
    with torch.no_grad():
        right = mem(tokens, actions, hide=hide, memory=memory)[:, -1].argmax(-1) == tokens[:, -1]
    covered = memory.tokens[:, 0] != MASK
    assert right[covered].float().mean() > 0.9  # copied from memory
    assert right[~covered].float().mean() < 0.3  # nothing to copy: about chance (1 in 16)


@pytest.fixture(scope="module")
def smoke_memory():
    cfg, deps = zoo.prepare("memory", "smoke")
    model = memory_recipe.build(cfg).start_from(deps["dynamics"]).eval()
    return model, cfg, deps


def test_training_windows_read_the_true_land_they_retrieve(smoke_memory):
    _, cfg, deps = smoke_memory
    tokens, actions, pos = memory_recipe.walk_tokens(
        cfg, "train", cfg.data.episodes, deps["tokenizer"]
    )
    found = memory_recipe.window_retrievals(pos, actions, cfg.context, cfg.policy(), tokens=tokens)
    data = memory_recipe.MemoryWindowDataset(
        tokens, torch.as_tensor(actions), found, cfg.context, cfg.pad_action
    )
    agree = total = 0
    for i in range(len(data)):
        e, j = divmod(i, data.steps)
        if (pos[e, j + 1] == pos[e, j]).all():
            continue  # blocked or not a move: the retrieval was made for the move's pose
        it = data[i]
        m = warp_memory(
            it["memory"][None], it["offset"][None], it["age"][None], it["known"][None], (8, 8), -1
        )
        known = m.tokens[0] != -1
        target = it["tokens"][-1].flatten().expand_as(m.tokens[0])
        agree += int((m.tokens[0] == target)[known].sum())
        total += int(known.sum())
    assert total > 1000  # the walks come back: there is memory to read
    assert agree / total > 0.99  # what differs: sheep that moved, and edits made since


def test_engine_without_memory_plays_the_stage3_engine_and_its_pose_follows_the_walk(smoke_memory):
    model, cfg, deps = smoke_memory
    rec = record("test", 2, 24, "loop", LEARNING_WORLD, {"period": 16}, progress=False)
    ctx, past, future = rec.frames[:, :9], rec.actions[:, :8], rec.actions[:, 8:]
    off = MemoryEngine(model, deps["tokenizer"], use_memory=False, cfg=cfg)
    plain = DynamicsEngine(model, deps["tokenizer"], cfg=cfg)
    np.testing.assert_array_equal(off.rollout(ctx, past, future), plain.rollout(ctx, past, future))

    engine = MemoryEngine(model, deps["tokenizer"], pose="estimated", cfg=cfg)
    real = engine.encode(rec.frames)
    engine._begin(real, rec.actions, None)  # the whole real walk as context: poses estimated
    np.testing.assert_array_equal(engine._poses, rec.positions[:, -1] - rec.positions[:, 0])
    assert sum(len(b) for b in engine._banks) == 2 * (25 - cfg.context)  # all but the window
    assert engine.memory_bytes > 0

    truth = MemoryEngine(model, deps["tokenizer"], pose="true", cfg=cfg)
    out = truth.rollout(ctx, past, future, poses=rec.positions)
    assert out.shape == (2, 16, 64, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(truth._poses, rec.positions[:, -1])
    assert any(g.valid.any() for g in truth.last_retrieved)  # the loop came back: memory was read


def test_bad_settings_get_clear_errors(smoke_memory):
    model, cfg, deps = smoke_memory
    with pytest.raises(ValueError, match="pose must be one of"):
        MemoryEngine(model, deps["tokenizer"], pose="gps", cfg=cfg)
    with pytest.raises(ValueError, match="at most"):
        MemoryEngine(model, deps["tokenizer"], policy=MemoryPolicy(k=5), cfg=cfg)
    engine = MemoryEngine(model, deps["tokenizer"], cfg=cfg)
    frames = np.zeros((1, 2, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="poses must be"):
        engine.rollout(
            frames,
            np.zeros((1, 1), np.int64),
            np.zeros((1, 3), np.int64),
            poses=np.zeros((1, 2, 2)),
        )
    with pytest.raises(ValueError, match="memory_frames"):
        zoo.config_for("memory", "smoke", memory_frames=0)


def test_an_imagined_frame_adds_to_memory_but_never_overwrites_what_was_known(smoke_memory):
    model, cfg, deps = smoke_memory
    engine = MemoryEngine(model, deps["tokenizer"], cfg=cfg)
    known = np.zeros((2, 8, 8), dtype=bool)
    known[:, :, :4] = True  # the memory knew the left half of the view it drew
    engine._recalled = (np.array([[3, 4], [3, 4]]), known)
    engine._poses = np.array([[3, 4], [3, 5]])  # walk 1's move was blocked: another view
    ignore = engine._imagined_ignore(2)
    reach = np.zeros((8, 8), dtype=bool)
    reach[4, 3:6] = reach[3:6, 4] = True  # the explorer's cell and the four it can face
    centre = np.zeros((8, 8), dtype=bool)
    centre[4, 4] = True
    np.testing.assert_array_equal(ignore[0], (known[0] & ~reach) | centre)
    np.testing.assert_array_equal(ignore[1], centre)  # a view the memory was not read for
    engine.use_memory = False
    np.testing.assert_array_equal(engine._imagined_ignore(2), np.stack([centre, centre]))


def test_a_saved_world_continues_exactly_and_bad_files_get_clear_errors(smoke_memory, tmp_path):
    from hitchhiker.checkpoint import CheckpointError
    from hitchhiker.memory.saved_world import load_world, save_world

    model, cfg, deps = smoke_memory
    engine = MemoryEngine(model, deps["tokenizer"], pose="true", cfg=cfg)
    engine.reset(2000003)
    for a in [4, 4, 5, 4, 2, 2, 5, 3, 3, 1, 5, 4]:  # moves and interacts: the world is edited
        engine.step(a)
    path = save_world(engine, tmp_path / "world.safetensors")
    later = [1, 1, 3, 3, 2, 5, 4, 4, 2, 2]
    want = [engine.step(a) for a in later]
    real = engine.world.env.position

    again = MemoryEngine(model, deps["tokenizer"], pose="true", cfg=cfg)
    load_world(again, path)
    assert len(again._banks[0]) == len(engine._banks[0]) - len(later)
    got = [again.step(a) for a in later]
    for w, g in zip(want, got):
        np.testing.assert_array_equal(w, g)  # the same frames, drawn from the same memory
    assert again.world.env.position == real  # the real world replayed beside it
    fresh = MemoryEngine(model, deps["tokenizer"], pose="true", cfg=cfg)
    fresh.reset(2000003)  # the same world, not the saved one: other frames
    assert any(not np.array_equal(w, fresh.step(a)) for w, a in zip(want, later))

    with pytest.raises(ValueError, match="another engine"):
        load_world(MemoryEngine(model, deps["tokenizer"], pose="estimated", cfg=cfg), path)
    with pytest.raises(ValueError, match="kept under"):
        load_world(
            MemoryEngine(model, deps["tokenizer"], pose="true", cfg=cfg, policy=MemoryPolicy(k=1)),
            path,
        )
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_world(again, bad)
    with pytest.raises(RuntimeError, match="reset"):
        save_world(MemoryEngine(model, deps["tokenizer"], cfg=cfg), tmp_path / "x.safetensors")


def test_memory_engines_play_in_dream_play_beside_the_real_world(smoke_memory):
    from hitchhiker.interactive.dream_play import dream_play

    model, cfg, deps = smoke_memory
    on = MemoryEngine(model, deps["tokenizer"], cfg=cfg)
    off = MemoryEngine(model, deps["tokenizer"], use_memory=False, cfg=cfg)
    panel = dream_play({"memory on": on, "memory off": off}, seed=2000003)
    for name in ["right"] * 6 + ["left"] * 6:  # out and back: the memory is read on the way back
        frame = panel.controller.press(name)
    assert frame.dtype == np.uint8 and frame.shape[0] == 64 and frame.shape[1] > 128  # both
    assert len(on._banks[0]) == 12 + 1 - cfg.context  # every frame that left the window
    assert any(g.valid.any() for g in on.last_retrieved)
    panel.engine_menu.value = "memory off"
    panel.controller.press("up")
    assert off.last_retrieved == [] and off.memory_bytes >= 0


def test_the_window_is_newer_than_the_bank_where_the_two_differ(smoke_memory):
    """An edit made in the last W steps is only in the window: the bank's older view of that cell
    is not read (``window_first``), every other remembered cell is."""
    model, cfg, deps = smoke_memory
    for first in (True, False):
        policy = MemoryPolicy(k=2, update=False, update_changed=True, window_first=first)
        engine = MemoryEngine(model, deps["tokenizer"], policy=policy, cfg=cfg)
        engine._new_memory(1)
        engine._banks[0].write(np.full((8, 8), 3), (0, 0), 0)  # seen long ago at pose (0, 0)
        newer = np.full((1, 8, 8), 3)
        newer[0, 2, 2] = 7  # the window's frame at pose (0, 1) shows one cell changed
        keep = np.zeros((1, 8, 8), dtype=bool)
        keep[0, 4, 4] = True
        engine._pending = [(newer, np.array([[0, 1]]), 4, keep)]
        engine._steps = 5
        target = np.array([[0, 0]])
        memory, _ = engine._read(target, engine._window_view(target))
        read = memory.tokens[0, 0].view(8, 8)  # slot 0: the old frame, warped into the view
        # frame cell (2, 2) at pose (0, 1) is target cell (2, 3) of the view at (0, 0)
        assert read[2, 3] == (model.mask_id if first else 3)
        others = torch.ones(8, 8, dtype=torch.bool)
        others[2, 3] = False
        assert (read[others] == 3).all()  # what the window shows alike stays readable


def test_ages_read_up_to_the_last_age_bucket_training_fills():
    from types import SimpleNamespace

    def oldest(steps):
        return memory_recipe.oldest_age(SimpleNamespace(data=SimpleNamespace(episode_steps=steps)))

    # a walk of T steps reads ages 1..T-1; buckets floor(log2 age) hold 2^b..2^(b+1)-1
    assert oldest(96) == 63  # 64..95 fill bucket 6 (64..127) in part: it reads as bucket 5
    assert oldest(128) == 127 and oldest(64) == 63  # a filled last bucket is read
    assert oldest(24) == 15 and oldest(2) == 1
    assert age_bucket(torch.tensor(oldest(96))) == 5


def test_walks_begun_from_real_frames_imagine_as_a_rollout_does(smoke_memory):
    """start_from + imagine (Stage V's capstone steps the memory dream one action at a time) draw
    exactly what rollout draws for the same real past and actions; the past older than the
    window is in the memory."""
    model, cfg, deps = smoke_memory
    rec = record("test", 2, 12, "random", world=LEARNING_WORLD, progress=False)
    past, future = rec.actions[:, :8], rec.actions[:, 8:]
    engine = MemoryEngine(model, deps["tokenizer"], cfg=cfg)
    with pytest.raises(RuntimeError, match="start_from"):
        engine.imagine([0, 0])
    whole = engine.rollout(rec.frames[:, :9], past, future)
    engine.start_from(engine.encode(rec.frames[:, :9]), past)
    assert len(engine._banks) == 2 and engine.memory_bytes > 0  # 9 frames, a window of W < 9
    assert engine.context < 9
    steps = [engine.imagine(future[:, s]) for s in range(future.shape[1])]
    np.testing.assert_array_equal(engine.decode(torch.stack(steps, 1)), whole)


def test_the_walls_memory_differs_only_in_what_it_starts_from_and_the_walks_it_learns_on():
    """memory_walls is the shipped recipe started from Stage III's dynamics_walls, on loop and
    bumping walks, its revisits measured without the ablations; any other start is refused."""
    walls, plain = zoo.config_for("memory_walls", "smoke"), zoo.config_for("memory", "smoke")
    assert (walls.start_from, plain.start_from) == ("dynamics_walls", "dynamics")
    assert walls.data.policy == ("loop", "bumper") and plain.data.policy == ("loop", "random")
    assert not walls.ablations and plain.ablations
    same = dict(name="memory", start_from="dynamics", data=plain.data, ablations=True)
    assert dataclasses.replace(walls, **same) == plain
    need = memory_recipe.needs({"tokenizer": "shipped", "start_from": "dynamics_walls"})
    assert need["dynamics"].model == "dynamics_walls"
    with pytest.raises(ValueError, match="start_from must name .*dynamics_walls.*'diffusion'"):
        zoo.config_for("memory", "smoke", start_from="diffusion")


def test_without_ablations_only_the_memory_and_its_controls_are_measured():
    model, cfg = zoo.load_or_fit("memory_walls", "smoke")
    figures = zoo.evaluate("memory_walls", model, cfg)
    assert figures["stage4.memory_walls.k16.revisit_walks"] >= 2
    labels = {k.split(".")[2] for k in figures if k.count(".") > 3}
    assert labels == {"true_pose", "estimated_pose", "no_memory"}
