"""MAE: exact masking, an encoder blind to hidden patches, a loss that falls, clear errors, probes."""

import math

import numpy as np
import pytest
import torch

from hitchhiker.config import config_from_dict, config_to_dict, make_config
from hitchhiker.masks import mae, mae_recipe
from hitchhiker.masks.probe import (
    kind_shares,
    probe_accuracy,
    probe_r2,
    region_kinds,
    standing_on,
)
from hitchhiker.world.dataset import LEARNING_WORLD, FrameDataset, record, views

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides) -> mae.MAE:
    cfg = make_config(mae_recipe.Config, "smoke", **overrides)
    return mae_recipe.build(cfg)


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9])
def test_masking_ratio_is_exact(ratio):
    mask = mae.random_mask(32, 64, ratio, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (32, 64) and mask.dtype == torch.bool
    assert (mask.sum(1) == round(ratio * 64)).all()
    if 0 < ratio:
        assert len({tuple(r.tolist()) for r in mask}) > 1  # each view gets its own mask


def test_patchify_is_one_patch_per_tile_and_inverts():
    x = torch.rand(2, 3, 64, 64)
    p = mae.patchify(x, 8)
    assert p.shape == (2, 64, 192)
    # patch 9 is tile (row 1, col 1): pixels 8..15 x 8..15, channels last inside the patch
    assert torch.equal(p[0, 9].view(8, 8, 3), x[0, :, 8:16, 8:16].permute(1, 2, 0))
    assert torch.equal(mae.unpatchify(p, 8), x)


def test_encoder_ignores_the_content_of_masked_patches():
    torch.manual_seed(0)
    model = tiny().eval()
    x = torch.rand(4, 3, 64, 64)
    mask = mae.random_mask(4, 64, 0.75, generator=torch.Generator().manual_seed(1))
    noisy = mae.patchify(x, 8).clone()
    noisy[mask] = torch.rand_like(noisy[mask])  # rewrite every hidden patch
    y = mae.unpatchify(noisy, 8)
    assert not torch.equal(x, y)
    with torch.no_grad():
        a, b = model.encode(x, mask), model.encode(y, mask)
    assert a.shape == (4, 16, model.cfg.dim)
    assert torch.equal(a, b)
    # ... while a visible patch does change it
    visible = mae.patchify(x, 8).clone()
    first = (~mask[0]).nonzero()[0, 0]
    visible[0, first] += 0.5
    with torch.no_grad():
        c = model.encode(mae.unpatchify(visible, 8), mask)
    assert not torch.allclose(a[0], c[0])


def test_reconstruction_keeps_visible_pixels_and_lies_in_unit_range():
    model = tiny().eval()
    x = torch.rand(3, 3, 64, 64)
    mask = mae.random_mask(3, 64, 0.5, generator=torch.Generator().manual_seed(2))
    out = model.reconstruct(x, mask)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    keep = ~mask
    assert torch.equal(mae.patchify(out, 8)[keep], mae.patchify(x, 8)[keep])


@pytest.mark.parametrize("norm_pix", [False, True])
def test_loss_falls_on_a_tiny_task(norm_pix):
    """A tiny MAE on 16 real views: the masked-patch loss falls far within 150 steps (raw pixels:
    to under a quarter; normalised patches, whose mean and contrast are gone, below 60%)."""
    from hitchhiker.train import TrainConfig, train

    rec = record("train", 1, 15, world=LEARNING_WORLD, progress=False)
    data = FrameDataset(rec)
    model = tiny(norm_pix_loss=norm_pix, depth=2, decoder_depth=1, dim=48, heads=4)
    batch = {"frame": torch.stack([data[i]["frame"] for i in range(16)])}
    torch.manual_seed(0)
    with torch.no_grad():
        before = mae.mae_loss(model, batch)[0].item()
    cfg = TrainConfig(steps=150, batch_size=16, lr=2e-3, warmup_steps=10, checkpoint_every=0)
    result = train(model, data, mae.mae_loss, cfg, progress=False, live_plot=False)
    after = float(np.mean(result.losses[-10:]))
    assert after < (0.6 if norm_pix else 0.25) * before, (before, after)
    if not norm_pix:
        assert after < 0.03, after  # pixels in [0, 1]: 0.03 MSE is about 15 dB on hidden patches
        psnr = mae.masked_psnr(result.model, batch["frame"], 0.75)
        assert math.isfinite(psnr) and psnr > 14


def test_bad_inputs_raise_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        model(torch.rand(3, 64, 64))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    x = torch.rand(2, 3, 64, 64)
    with pytest.raises(ValueError, match="bool"):
        model(x, mask=torch.zeros(2, 10, dtype=torch.bool))
    uneven = torch.zeros(2, 64, dtype=torch.bool)
    uneven[0, :3] = True
    with pytest.raises(ValueError, match="same number"):
        model(x, mask=uneven)
    with pytest.raises(ValueError, match="mask ratio"):
        mae.random_mask(2, 64, 1.0)
    with pytest.raises(ValueError, match="multiple"):
        make_config(mae_recipe.Config, "smoke", patch_size=7)
    with pytest.raises(ValueError, match="multiple"):
        mae.patchify(torch.rand(1, 3, 60, 60), 8)


def test_probes_read_linear_labels_and_not_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 16, generator=g, dtype=torch.float64)
    w = torch.randn(16, 4, generator=g, dtype=torch.float64)
    labels = (x @ w).argmax(1).numpy()
    assert probe_accuracy(x[:400], labels[:400], x[400:], labels[400:]) > 0.9
    noise = np.random.default_rng(0).integers(0, 4, 600)
    assert probe_accuracy(x[:400], noise[:400], x[400:], noise[400:]) < 0.45
    y = (x @ w).numpy()
    assert probe_r2(x[:400], y[:400], x[400:], y[400:]) > 0.99


def test_probe_labels_are_exact_ground_truth():
    tiles = np.zeros((2, 8, 8), dtype=np.int8)
    tiles[0, 4, 4] = 3
    tiles[1, :4, :4] = 5  # the north-west region
    assert standing_on(tiles).tolist() == [3, 0]
    shares = kind_shares(tiles)
    assert np.allclose(shares.sum(1), 1) and shares[1, 5] == 16 / 64
    assert region_kinds(tiles)[1].tolist() == [5, 0, 0, 0, 0, 0, 0, 0]


def test_recipe_smoke_fit_and_evaluate():
    cfg = make_config(mae_recipe.Config, "smoke")
    model = mae_recipe.fit(cfg, {}, progress=False)
    figures = mae_recipe.evaluate(model, cfg, {})
    expected = {"stage1.mae.masked_psnr_75"}
    for suffix in ("", "_random", "_majority"):
        expected |= {f"stage1.mae.probe_{k}{suffix}" for k in ("acc", "center_acc")}
    expected |= {"stage1.mae.probe_r2", "stage1.mae.probe_r2_random"}
    assert set(figures) == expected
    assert all(math.isfinite(v) for v in figures.values())
    assert all(0 <= figures[k] <= 1 for k in expected if "acc" in k)


def test_shipped_mae_rebuilds_hidden_patches_of_held_out_views():
    from hitchhiker import zoo

    if not zoo.path_of("mae").is_file():
        pytest.skip("no shipped MAE yet (python -m hitchhiker.zoo train mae --preset cpu)")
    model = zoo.load("mae")
    images, _ = views(record("test", 2, 15, world=LEARNING_WORLD, progress=False))
    assert mae.masked_psnr(model, images, 0.75) > 16.0  # an untrained one scores ~10 dB


def test_a_stored_flat_config_keeps_the_episode_length_apart_from_the_optimiser_steps():
    """Files stored before the configs were nested say ``steps`` for the episode length."""
    old = {"dim": 32, "steps": 48, "train_steps": 12, "eval_steps": 16, "episodes": 4, "seed": 3}
    cfg = config_from_dict(mae_recipe.Config, {**old, "lr": 0.5, "probe_steps": 8})
    assert (cfg.data.episode_steps, cfg.data.eval_steps, cfg.data.episodes) == (48, 16, 4)
    assert (cfg.train.steps, cfg.train.lr, cfg.train.seed, cfg.probe_steps) == (12, 0.5, 3, 8)
    stored = config_to_dict(cfg)  # today's shape comes back as it is
    assert config_to_dict(config_from_dict(mae_recipe.Config, stored)) == stored
