"""MaskGIT: exact mask counts, decoding that fills every token, inpainting that keeps the given
ones, a loss that falls on a tiny task, clear errors, and the recipe end to end (oracle tokens)."""

import math

import numpy as np
import pytest
import torch

from hitchhiker import tokens as tk
from hitchhiker import zoo
from hitchhiker.config import make_config
from hitchhiker.masks import maskgit as mg
from hitchhiker.masks import maskgit_recipe as mgr
from hitchhiker.masks.core import CoreConfig
from hitchhiker.train import TrainConfig, train


def tiny(vocab=16, grid=(4, 4), dim=32, depth=1, seed=0) -> mg.MaskGIT:
    torch.manual_seed(seed)
    cfg = CoreConfig(vocab_size=vocab, seq_len=grid[0] * grid[1], dim=dim, depth=depth, heads=2)
    return mg.MaskGIT(cfg, grid).eval()


# ----------------------------------------------------------------------------- schedules and masks


@pytest.mark.parametrize("name", sorted(mg.SCHEDULES))
def test_schedules_go_from_all_masked_to_none(name):
    r = torch.linspace(0, 1, 101)
    g = mg.mask_schedule(name, r)
    assert g[0] == pytest.approx(1.0) and g[-1] == pytest.approx(0.0, abs=1e-12)
    assert (g[1:] <= g[:-1] + 1e-12).all()


def test_cosine_mask_counts_are_exact():
    n = 64
    u = torch.tensor([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, 1.0])
    want = [min(n, max(1, math.ceil(math.cos(math.pi / 2 * x) * n - 1e-9))) for x in u.tolist()]
    assert mg.mask_counts(u, n).tolist() == want
    assert want[0] == n and want[-1] == 1  # u=0 hides all, u=1 still hides one


def test_random_mask_hides_the_scheduled_count_in_every_row():
    b, n, seed = 256, 64, 3
    mask = mg.random_mask(b, n, generator=torch.Generator().manual_seed(seed))
    u = torch.rand(b, generator=torch.Generator().manual_seed(seed))  # the same first draw
    assert mask.dtype == torch.bool and mask.shape == (b, n)
    assert torch.equal(mask.sum(1), mg.mask_counts(u, n))
    # positions are spread out, not always the first ones
    share = mask.float().mean(0)
    assert (share > 0.3).all() and (share < 1).all()


# ----------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("steps", [1, 3, 8, 20])
def test_decoding_with_n_steps_fills_every_token(steps):
    model = tiny()
    out, history = model.generate(5, steps=steps, seed=0, return_history=True)
    assert out.shape == (5, 4, 4) and out.dtype == torch.long
    assert (out >= 0).all() and (out < model.cfg.vocab_size).all()  # no [MASK] left
    assert len(history) == steps and torch.equal(history[-1], out)
    masked = [int((h == model.mask_id).sum()) for h in history]
    assert masked == sorted(masked, reverse=True) and masked[-1] == 0


def test_cosine_decoding_reveals_tokens_on_schedule():
    model, steps, n = tiny(grid=(8, 8)), 8, 64
    _, history = model.generate(3, steps=steps, seed=1, return_history=True)
    for t, grid in enumerate(history[:-1]):
        want = max(1, math.floor(math.cos(math.pi / 2 * (t + 1) / steps) * n))
        assert ((grid == model.mask_id).sum((1, 2)) == want).all(), t


def test_decoding_is_deterministic_by_seed():
    model = tiny()
    a, b = model.generate(4, seed=7), model.generate(4, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, model.generate(4, seed=8))
    greedy = model.generate(4, temperature=0.0, choice_temperature=0.0)
    assert torch.equal(greedy, model.generate(4, temperature=0.0, choice_temperature=0.0))


def test_inpainting_never_changes_given_tokens():
    model = tiny(grid=(8, 8))
    given = torch.randint(0, 16, (6, 8, 8), generator=torch.Generator().manual_seed(0))
    region = torch.zeros(8, 8, dtype=torch.bool)
    region[2:6, 3:7] = True  # inpaint a block
    for steps in (1, 4, 8):
        out = model.inpaint(given, region, steps=steps, seed=0)
        assert torch.equal(out[:, ~region], given[:, ~region])
        assert (out[:, region] < 16).all()
    # outpainting, with a different region per row
    per_row = torch.zeros(6, 8, 8, dtype=torch.bool)
    for i in range(6):
        per_row[i, :, i + 1 :] = True
    out, history = model.inpaint(given, per_row, steps=5, seed=0, return_history=True)
    assert torch.equal(out[~per_row], given[~per_row])
    assert all(torch.equal(h[~per_row], given[~per_row]) for h in history)
    assert not (out == model.mask_id).any()


def test_inpainting_with_nothing_to_generate_returns_the_input():
    model = tiny()
    given = torch.randint(0, 16, (2, 4, 4))
    out = model.inpaint(given, torch.zeros(4, 4, dtype=torch.bool), steps=4)
    assert torch.equal(out, given)


# ----------------------------------------------------------------------------- learning


def test_loss_falls_below_threshold_on_a_tiny_task():
    """Every grid repeats one random token: seeing any one position gives away the rest."""
    torch.manual_seed(0)
    vocab, grid = 8, (4, 4)
    data = torch.randint(0, vocab, (512, 1, 1)).expand(-1, *grid).contiguous()
    dataset = tk.TokenDataset(data)
    model = tiny(vocab=vocab, grid=grid, dim=32, depth=2)
    cfg = make_config(TrainConfig, "smoke", steps=150, batch_size=32, lr=3e-3, warmup_steps=10)
    model = train(model, dataset, lambda m, b: mg.maskgit_loss(m, b["tokens"]), cfg, progress=False)
    model = model.model
    x = data[:64].reshape(64, -1)
    half = torch.zeros_like(x, dtype=torch.bool)
    half[:, ::2] = True
    with torch.no_grad():
        logits = model(torch.where(half, torch.full_like(x, model.mask_id), x))
    loss = torch.nn.functional.cross_entropy(logits[half], x[half])
    assert loss < 0.3, float(loss)  # chance: log(8) = 2.08
    # and decoding from nothing then yields constant grids
    out = model.generate(16, steps=4, temperature=0.0, choice_temperature=0.0)
    assert (out == out[:, :1, :1]).float().mean() > 0.95


# ----------------------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_errors():
    model = tiny()
    ok = torch.zeros(2, 4, 4, dtype=torch.long)
    region = torch.ones(4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"\(B, 4, 4\)"):
        model.inpaint(torch.zeros(2, 16, dtype=torch.long), region)
    with pytest.raises(ValueError, match="generate must be shaped"):
        model.inpaint(ok, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        model.inpaint(ok, torch.ones(4, 4))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        model.inpaint(ok + 99, ~region)
    with pytest.raises(ValueError, match="schedule"):
        model.generate(1, schedule="zigzag")
    with pytest.raises(ValueError, match="steps"):
        model.generate(1, steps=0)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(1, temperature=-1.0)
    with pytest.raises(ValueError, match="seq_len"):
        mg.MaskGIT(CoreConfig(vocab_size=4, seq_len=10, dim=8, depth=1, heads=2), (4, 4))
    with pytest.raises(ValueError, match="token ids"):
        model(torch.full((1, 16), 99, dtype=torch.long))
    with pytest.raises(ValueError, match="no tokenizer bound"):
        make_config(mgr.Config, "smoke")  # vocab and grid come from the tokenizer the zoo binds
    with pytest.raises(ValueError, match="mask_schedule"):
        make_config(mgr.Config, "smoke", mask_schedule="zigzag", tokens=tk.TokenGrid(9, 8, 8))


# ----------------------------------------------------------------------------- the recipe


def test_oracle_tokenizer_round_trips_tile_kinds():
    from hitchhiker.world import read_tiles
    from hitchhiker.world.dataset import LEARNING_WORLD, frames_to_tensor, record

    rec = record("val", 1, 8, world=LEARNING_WORLD, progress=False)
    tok = tk.OracleTokenizer()
    tokens = tk.encode_frames(tok, rec.frames[0])
    assert tokens.shape == (9, 8, 8) and torch.equal(tokens, torch.from_numpy(rec.tiles[0]).long())
    frames = tk.decode_tokens(tok, tokens)
    assert frames.shape == (9, 64, 64, 3) and frames.dtype == np.uint8
    assert (
        read_tiles(frames).kinds == rec.tiles[0]
    ).mean() > 0.97  # the centre cell lacks the explorer
    assert frames_to_tensor(frames).shape == (9, 3, 64, 64)


def test_recipe_fits_and_evaluates_in_smoke_mode():
    cfg, deps = zoo.prepare("maskgit", "smoke", tokenizer="oracle")
    assert set(deps) == {"tokenizer"}
    assert (cfg.tokens.vocab_size, cfg.tokens.grid_h, cfg.tokens.grid_w) == (9, 8, 8)  # bound
    model = mgr.fit(cfg, deps, progress=False)
    assert model.losses[-1] < model.losses[0]
    figures = zoo.evaluate("maskgit", model, cfg)
    for k in ("confident_share", "kind_tv", "test_loss", "ms_per_image_b1", "ms_per_image_b16"):
        assert np.isfinite(figures[f"stage1.maskgit.{k}"]), k
    assert 0 <= figures["stage1.maskgit.confident_share"] <= 1
    assert 0 <= figures["stage1.maskgit.kind_tv"] <= 1


def test_sample_quality_of_real_views_is_perfect():
    from hitchhiker.world.dataset import LEARNING_WORLD, record

    rec = record("val", 1, 8, world=LEARNING_WORLD, progress=False)
    q = tk.sample_quality(rec.frames[0], rec.tiles[0])
    assert q == {"confident_share": 1.0, "kind_tv": 0.0}


def test_a_tokenizer_that_loses_tiles_is_flagged():
    from hitchhiker.world.dataset import LEARNING_WORLD, record

    rec = record("val", 1, 8, world=LEARNING_WORLD, progress=False)
    tok = tk.OracleTokenizer()
    tokens = tk.encode_frames(tok, rec.frames[0])
    assert tk.check_tokenizer(tok, tokens, rec.tiles[0]) > 0.97  # only the explorer's cell is lost
    with pytest.warns(UserWarning, match="round-trips only"):
        assert tk.check_tokenizer(tok, torch.zeros_like(tokens), rec.tiles[0]) < 0.5
