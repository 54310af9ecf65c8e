"""The image tokenizer: shapes and errors, the EMA codebook and its restarts, FSQ, a brief training
that round-trips real views, and the notebook helpers."""

from functools import lru_cache

import numpy as np
import pytest
import torch

from hitchhiker import zoo
from hitchhiker.checkpoint import save_weights
from hitchhiker.config import config_from_dict, config_to_dict, make_config
from hitchhiker.masks import show_tokens
from hitchhiker.masks import tokenizer as T
from hitchhiker.masks import tokenizer_recipe as TR
from hitchhiker.masks.quantizers import EMAVectorQuantizer, FiniteScalarQuantizer
from hitchhiker.world.dataset import LEARNING_WORLD, frames_to_tensor, record
from hitchhiker.world.tiles import NUM_KINDS


@pytest.fixture(autouse=True)
def _two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield
    torch.set_num_threads(threads)


def small_cfg(train: dict | None = None, **overrides) -> TR.Config:
    """A smoke tokenizer on 4 + 4 short episodes per policy; ``train`` changes only the trainer
    settings it names."""
    data = {"episodes": 4, "episode_steps": 32, "eval_episodes": 2, "eval_steps": 32}
    optim = {"steps": 40, "batch_size": 16, "warmup_steps": 4, **(train or {})}
    return make_config(
        TR.Config, "smoke", **{"hidden": 64, "data": data, **overrides, "train": optim}
    )


@lru_cache(maxsize=1)
def trained() -> tuple[T.Tokenizer, TR.Config]:
    """A tokenizer trained for a few seconds on 4 + 4 short episodes (200 steps as a plain
    autoencoder, then 300 quantised)."""
    optim = {"steps": 500, "lr": 3e-3, "warmup_steps": 20}
    cfg = small_cfg(hidden=128, dead_after=25, vq_warmup=200, train=optim)
    torch.manual_seed(0)
    return TR.fit(cfg, {}, progress=False), cfg


def test_shapes_and_dtypes_for_both_quantizers():
    x = torch.rand(3, 3, 64, 64)
    for quantizer, size in (("vq", 128), ("fsq", 200)):
        model = TR.build(small_cfg(quantizer=quantizer)).eval()
        assert model.grid == (8, 8) and model.codebook_size == size
        tokens = model.encode(x)
        assert tokens.shape == (3, 8, 8) and tokens.dtype == torch.int64
        assert 0 <= tokens.min() and tokens.max() < size
        frames = model.decode(tokens)
        assert frames.shape == (3, 3, 64, 64) and frames.dtype == torch.float32
        assert 0 <= frames.min() and frames.max() <= 1
        recon, terms = model(x)
        assert recon.shape == x.shape
        assert {"loss", "recon", "commit", "usage", "perplexity"} <= set(terms)
    fine = TR.build(small_cfg(patch=4)).eval()
    assert fine.grid == (16, 16) and fine.encode(x).shape == (3, 16, 16)


def test_bad_inputs_raise_clear_errors():
    model = TR.build(small_cfg()).eval()
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        model.encode(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="shape"):
        model.encode(torch.rand(3, 64, 64))
    with pytest.raises(TypeError, match="float"):
        model.encode(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch tensor"):
        model.encode(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 128\)"):
        model.decode(torch.full((1, 8, 8), 128))
    with pytest.raises(ValueError, match=r"\[0, 128\)"):
        model.decode(torch.full((1, 8, 8), -1))
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        model.decode(torch.zeros(1, 4, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="integer"):
        model.decode(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="'vq' or 'fsq'"):
        small_cfg(quantizer="kmeans")
    with pytest.raises(ValueError, match="multiple of patch"):
        small_cfg(patch=7)
    with pytest.raises(ValueError, match="levels"):
        FiniteScalarQuantizer((8, 1))


# ----------------------------------------------------------------------------- VQ with EMA


def two_clusters(n=256, seed=0):
    """(n, 2, 1, 1) latents around (+3, 0) and (-3, 0), half each."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0]]).repeat(n // 2, 1)
    return (centres + 0.1 * torch.randn(n, 2, generator=g))[:, :, None, None]


def test_ema_codebook_moves_to_cluster_means_with_laplace_smoothing():
    vq = EMAVectorQuantizer(3, 2, decay=0.9, dead_after=10_000, normalise=False).train()
    vq.initialised.fill_(1)
    start = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [50.0, 50.0]])  # code 2 is never chosen
    vq.codebook.copy_(start)
    vq.ema_sum.copy_(start)
    z = two_clusters()
    for _ in range(100):
        vq(z)
    means = torch.stack([z[0::2, :, 0, 0].mean(0), z[1::2, :, 0, 0].mean(0)])
    torch.testing.assert_close(vq.codebook[:2], means, atol=1e-3, rtol=0)
    # the unused code's count decayed to ~0, yet smoothing kept its vector finite
    assert vq.ema_count[2] < 1e-4 and torch.isfinite(vq.codebook).all()
    assert int(vq.restarts) == 0 and int(vq.unused_steps[2]) == 100
    # eval mode freezes the codebook
    frozen = vq.codebook.clone()
    vq.eval()(z + 1.0)
    assert torch.equal(vq.codebook, frozen)


def far_codes_vq(dead_after: int) -> EMAVectorQuantizer:
    """Three codes far away from the data: only code 0 is used at first, and both clusters share it."""
    vq = EMAVectorQuantizer(4, 2, decay=0.9, dead_after=dead_after, normalise=False).train()
    vq.initialised.fill_(1)
    start = torch.tensor([[0.0, 0.0], [90.0, 90.0], [-90.0, 90.0], [90.0, -90.0]])
    vq.codebook.copy_(start)
    vq.ema_sum.copy_(start)
    return vq


def test_dead_code_is_restarted_and_usage_rises():
    vq = far_codes_vq(dead_after=5)
    z = two_clusters()
    used_before = vq.indices(z).unique().numel()
    for _ in range(30):
        vq(z)
    assert used_before == 1
    assert int(vq.restarts) >= 3
    # restarted codes sit on real encoder outputs and now serve the two clusters apart
    assert vq.indices(z).unique().numel() >= 2
    err = (z[:, :, 0, 0] - vq.codebook[vq.indices(z).flatten()]).pow(2).sum(1).mean()
    assert err < 0.1  # one code per cluster: error is the cluster spread, not the 9.0 of sharing


def test_dead_after_zero_turns_restarts_off():
    """The switch notebook 02 uses to show dead codes: the same start, no restarts, codes stay dead."""
    vq = far_codes_vq(dead_after=0)
    z = two_clusters()
    for _ in range(30):
        vq(z)
    assert int(vq.restarts) == 0 and vq.indices(z).unique().tolist() == [0]


def test_vq_straight_through_and_commitment_gradients():
    vq = EMAVectorQuantizer(
        8, 4, normalise=False
    ).eval()  # eval: the codebook stays put during the forward
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    z_q, tokens, terms = vq(z)
    torch.testing.assert_close(z_q.detach(), vq.embed(tokens))  # forward: the nearest code
    assert torch.equal(tokens, vq.indices(z.detach()))
    z_q.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))  # backward: identity (straight-through)
    z.grad = None
    vq(z)[2]["commit"].backward()
    expected = 2 * vq.commitment * (z - z_q).detach() / z.numel()
    torch.testing.assert_close(z.grad, expected)  # commitment pulls z toward its code


# ----------------------------------------------------------------------------- FSQ


def test_fsq_levels_indices_determinism_and_gradients():
    levels = (8, 5, 3)
    fsq = FiniteScalarQuantizer(levels)
    assert fsq.codebook_size == 120
    z = torch.linspace(-6, 6, 2001)[None, None, :, None].repeat(1, 3, 1, 1)  # (1, 3, 2001, 1)
    q = fsq.quantise(z.movedim(1, -1))
    for i, n in enumerate(levels):
        values = q[..., i].unique()
        assert len(values) == n  # a wide sweep hits exactly L_i levels...
        scaled = values * (n // 2)
        torch.testing.assert_close(scaled, scaled.round())  # ...on the integer grid
        assert values.min() == -1.0 and values.max() <= 1.0
    # every id <-> grid point, both ways, and deterministic
    ids = torch.arange(fsq.codebook_size)
    assert torch.equal(fsq.codes_to_indices(fsq.indices_to_codes(ids)), ids)
    x = torch.randn(4, 3, 5, 5)
    assert torch.equal(fsq.indices(x), fsq.indices(x.clone()))
    torch.testing.assert_close(fsq.embed(fsq.indices(x)), fsq(x)[0])
    # rounding is straight-through: gradients reach the latents
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    fsq(z)[0].sum().backward()
    assert z.grad is not None and (z.grad != 0).float().mean() > 0.9


# ----------------------------------------------------------------------------- trained on the world


def held_out(cfg):
    rec = record("test", 2, 32, "random", world=LEARNING_WORLD, progress=False)
    return rec.frames.reshape(-1, 64, 64, 3), rec.tiles.reshape(-1, 8, 8)


def test_brief_training_round_trips_real_views():
    from hitchhiker.metrics import psnr, tile_accuracy

    model, cfg = trained()
    frames, tiles = held_out(cfg)
    tokens, recon = T.reconstruct(model, frames)
    assert tile_accuracy(recon, tiles) >= 0.9
    assert psnr(recon, frames_to_tensor(frames)) >= 20
    figures = TR.evaluate(model, cfg, {})
    assert set(figures) == {
        f"stage1.tokenizer.{k}"
        for k in ("psnr", "tile_accuracy", "heading_accuracy", "codebook_usage", "perplexity")
    }
    assert figures["stage1.tokenizer.tile_accuracy"] >= 0.9
    assert int(model.quantizer.restarts) > 0  # the data-driven init leaves duplicates: restarted


def test_untrained_tokenizer_does_not_round_trip():
    from hitchhiker.metrics import tile_accuracy

    cfg = small_cfg()
    frames, tiles = held_out(cfg)
    _, recon = T.reconstruct(TR.build(cfg), frames)
    assert tile_accuracy(recon, tiles) < 0.5


def test_fsq_variant_learns_too():
    cfg = small_cfg(quantizer="fsq", train={"steps": 150, "lr": 3e-3, "warmup_steps": 20})
    frames, _ = held_out(cfg)
    x = frames_to_tensor(frames)
    torch.manual_seed(0)
    before = (T.reconstruct(TR.build(cfg), frames)[1] - x).pow(2).mean()
    torch.manual_seed(0)
    model = TR.fit(cfg, {}, progress=False)
    after = (T.reconstruct(model, frames)[1] - x).pow(2).mean()
    assert after < 0.25 * before  # held-out reconstruction error falls fourfold in 150 steps
    tokens = model.encode(x)
    assert tokens.max() < 200 and tokens.unique().numel() >= 8  # many grid points in use


def test_code_usage_and_meaning():
    model, cfg = trained()
    frames, tiles = held_out(cfg)
    usage = T.code_usage(model, frames)
    assert usage.shape == (model.codebook_size,) and usage.sum() == frames.shape[0] * 64
    meaning = T.code_meaning(model, frames, tiles)
    assert meaning.shape == (model.codebook_size, NUM_KINDS)
    np.testing.assert_array_equal(meaning.sum(1), usage)
    # a trained code stands for one kind: the majority kind explains nearly every use
    assert meaning.max(1).sum() / meaning.sum() >= 0.95
    with pytest.raises(ValueError, match="tiles must be"):
        T.code_meaning(model, frames, tiles[:3])
    fig = show_tokens.show_codebook(model, usage)
    assert fig.axes
    show_tokens.plot_code_usage(usage)
    show_tokens.plot_code_meaning(meaning)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_shipped_format_round_trips_in_half_precision(tmp_path):
    model, cfg = trained()
    path = tmp_path / "tokenizer.safetensors"
    meta = {"recipe": "tokenizer", "preset": "smoke", "config": config_to_dict(cfg)}
    save_weights(path, model, metadata=meta, half=True)
    loaded = zoo.load("tokenizer", path)
    frames, _ = held_out(cfg)
    x = frames_to_tensor(frames)
    same = (loaded.encode(x) == model.encode(x)).float().mean()
    assert same >= 0.99  # fp16 storage may flip a near-tie, nothing more
    assert loaded.codebook_size == model.codebook_size and loaded.grid == model.grid


def test_the_explorer_tile_weighs_more_and_the_loss_keeps_its_scale():
    model = TR.build(small_cfg(explorer_weight=16.0))
    w = model.pixel_weights(torch.zeros(1, 3, 64, 64))
    assert w.shape == (1, 1, 64, 64) and torch.isclose(w.mean(), torch.tensor(1.0))
    centre, corner = w[0, 0, 32:40, 32:40], w[0, 0, :8, :8]
    assert torch.allclose(centre, 16 * corner) and (w[0, 0] == corner[0, 0]).sum() == 64 * 64 - 64


def test_the_shipped_tokenizer_keeps_the_explorers_heading():
    """Stage II's captions ("facing north") and Stage III's actions turn on the heading: the
    shipped tokenizer must carry it through a round trip, not only the tile kinds."""
    from hitchhiker import zoo
    from hitchhiker.tokens import decode_tokens, encode_frames
    from hitchhiker.world import read_tiles
    from hitchhiker.world.dataset import LEARNING_WORLD, record

    tok = zoo.load("tokenizer")
    rec = record("val", 4, 32, "random", world=LEARNING_WORLD, progress=False)
    frames = rec.frames.reshape(-1, 64, 64, 3)
    reading = read_tiles(decode_tokens(tok, encode_frames(tok, frames)))
    assert (reading.kinds == rec.tiles.reshape(-1, 8, 8)).mean() == 1.0
    assert (reading.heading == rec.headings.reshape(-1)).mean() >= 0.95


def test_a_stored_flat_config_moves_policies_and_test_episodes_into_the_data():
    old = {"policies": ["random", "explorer"], "test_episodes": 3, "test_steps": 20, "steps": 40}
    cfg = config_from_dict(TR.Config, {**old, "episode_steps": 24, "hidden": 64})
    assert TR.policies_of(cfg.data) == ("random", "explorer")
    assert (cfg.data.eval_episodes, cfg.data.eval_steps, cfg.data.episode_steps) == (3, 20, 24)
    assert (cfg.train.steps, cfg.train.weight_decay, cfg.hidden) == (40, 0.0, 64)
    assert TR.policies_of(small_cfg(data={"policy": "random"}).data) == ("random",)
