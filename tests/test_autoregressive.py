"""The autoregressive baseline: cached and uncached samplers agree token for token, the model is
causal, its loss falls on a tiny task, bad input raises, and the recipe runs end to end."""

import dataclasses

import numpy as np
import pytest
import torch

from hitchhiker import tokens, zoo
from hitchhiker.config import make_config
from hitchhiker.masks import autoregressive as ar
from hitchhiker.masks import autoregressive_recipe as arr
from hitchhiker.masks import maskgit_recipe as mgr
from hitchhiker.masks.core import CoreConfig, KVCache
from hitchhiker.recipe import Need
from hitchhiker.train import TrainConfig, train


def tiny(vocab=16, grid=(4, 4), dim=32, depth=2, seed=0) -> ar.AutoregressiveModel:
    torch.manual_seed(seed)
    cfg = CoreConfig(vocab_size=vocab, seq_len=grid[0] * grid[1], dim=dim, depth=depth, heads=4)
    return ar.AutoregressiveModel(cfg, grid).eval()


@pytest.mark.parametrize("grid", [(4, 4), (8, 8)])
@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
def test_cached_and_uncached_samplers_give_identical_tokens(grid, temperature):
    model = tiny(grid=grid)
    with torch.no_grad():  # make the untrained model's distribution less flat: more at stake
        model.head.weight.mul_(20)
    cached = ar.ar_sample(model, 4, temperature=temperature, seed=3, use_cache=True)
    uncached = ar.ar_sample(model, 4, temperature=temperature, seed=3, use_cache=False)
    assert cached.shape == (4, *grid) and cached.dtype == torch.long
    assert torch.equal(cached, uncached)
    assert (cached >= 0).all() and (cached < 16).all()
    if temperature > 0:
        assert not torch.equal(cached, ar.ar_sample(model, 4, temperature=temperature, seed=4))


def test_cached_logits_match_the_full_causal_pass():
    model = tiny().double()
    x = torch.randint(0, 16, (3, 16))
    full = model(ar.shifted_input(model, x), is_causal=True)
    cache, inp = KVCache(), ar.shifted_input(model, x)
    steps = [model(inp[:, i : i + 1], is_causal=True, cache=cache, start=i) for i in range(16)]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-10)
    assert len(cache) == 16


def test_the_model_is_causal():
    model = tiny()
    x = torch.randint(0, 16, (2, 16))
    y = x.clone()
    y[:, 9:] = (y[:, 9:] + 1) % 16  # change tokens 9.. : predictions of tokens 0..9 must not move
    with torch.no_grad():
        a = model(ar.shifted_input(model, x), is_causal=True)
        b = model(ar.shifted_input(model, y), is_causal=True)
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-6)
    assert not torch.allclose(a[:, 10:], b[:, 10:], atol=1e-3)


def test_loss_falls_below_threshold_on_a_tiny_task():
    """Grids count up from a random start, x_i = (s + i) mod V: only the first token is a guess."""
    torch.manual_seed(0)
    vocab, grid = 8, (4, 4)
    start = torch.randint(0, vocab, (512, 1))
    data = ((start + torch.arange(16)) % vocab).reshape(512, *grid)
    model = tiny(vocab=vocab, grid=grid)
    cfg = make_config(TrainConfig, "smoke", steps=150, batch_size=32, lr=3e-3, warmup_steps=10)
    model = train(
        model,
        tokens.TokenDataset(data),
        lambda m, b: ar.ar_loss(m, b["tokens"]),
        cfg,
        progress=False,
    ).model
    loss, _ = ar.ar_loss(model, data[:128])
    assert loss < 0.35, float(loss)  # floor log(8) / 16 = 0.13; chance log(8) = 2.08
    out = model.generate(32, temperature=0.0).reshape(32, -1)
    assert ((out[:, 1:] - out[:, :-1]) % vocab == 1).float().mean() > 0.95


def test_bad_inputs_raise_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        ar.ar_loss(model, torch.full((2, 16), 16))
    with pytest.raises(ValueError, match="n must be"):
        ar.ar_sample(model, 0)
    with pytest.raises(ValueError, match="temperature"):
        ar.ar_sample(model, 1, temperature=-0.5)
    with pytest.raises(ValueError, match="seq_len"):
        ar.AutoregressiveModel(
            CoreConfig(vocab_size=4, seq_len=15, dim=8, depth=1, heads=2), (4, 4)
        )
    with pytest.raises(ValueError, match="exceeds seq_len"):
        model(torch.zeros(1, 17, dtype=torch.long), is_causal=True)


def test_recipe_fits_evaluates_and_races_maskgit():
    cfg, deps = zoo.prepare("ar", "smoke", tokenizer="oracle")
    assert set(deps) == {"tokenizer"}  # only the shipped tokenizer's MaskGIT is raced by default
    model = arr.fit(cfg, deps, progress=False)
    assert model.losses[-1] < model.losses[0]
    maskgit = mgr.build(zoo.config_for("maskgit", "smoke", tokenizer="oracle")).eval()
    figures = arr.evaluate(model, cfg, {**deps, "maskgit": maskgit})
    for k in ("confident_share", "kind_tv", "test_loss", "ms_per_image_b16", "maskgit_speedup_b1"):
        assert np.isfinite(figures[f"stage1.ar.{k}"]), k
    assert figures["stage1.ar.maskgit_speedup_b16"] > 0


def test_the_ar_baseline_races_the_shipped_maskgit_of_its_own_tokenizer_only():
    assert arr.needs({"tokenizer": "shipped"})["maskgit"] == Need("maskgit")
    assert "maskgit" not in arr.needs({"tokenizer": "oracle"})
    cfg = make_config(arr.Config, "smoke", tokens=tokens.TokenGrid(9, 8, 8, "abc"))
    maskgit = mgr.build(make_config(mgr.Config, "smoke", tokens=cfg.tokens))
    assert arr.maskgit_to_race(cfg, {"maskgit": maskgit}) is maskgit  # handed in: raced
    maskgit.shipped_config = dataclasses.replace(cfg, tokens=tokens.TokenGrid(9, 8, 8, "other"))
    assert arr.maskgit_to_race(cfg, {"maskgit": maskgit}) is None  # shipped on other tokens
    assert arr.maskgit_to_race(cfg, {}) is None
