"""The diffusion engine: EDM's formulas, one-step sampling, the engine interface, and a tiny model
that learns to answer actions (it beats copying the last frame, and the true action beats a wrong one).
"""

import math

import numpy as np
import pytest
import torch

from hitchhiker.config import config_from_dict, make_config
from hitchhiker.interactive import diffusion_recipe as diffusion
from hitchhiker.interactive.diffusion_engine import DiffusionEngine
from hitchhiker.interactive.edm import EDM, euler_step, ode_slope
from hitchhiker.interactive.unet import DenoiserUNet
from hitchhiker.play import PlayController
from hitchhiker.world import Action, SimulatorEngine
from hitchhiker.world.dataset import LEARNING_WORLD, TrajectoryDataset, record

pytestmark = pytest.mark.usefixtures("one_thread")


def smoke_cfg(**overrides) -> diffusion.Config:
    """A pixel-space config (DIAMOND's space): the EDM and U-Net tests need no tokenizer."""
    return make_config(diffusion.Config, "smoke", **{"space": "pixels", **overrides})


# ----------------------------------------------------------------------------- EDM


@pytest.mark.parametrize("sigma", [0.002, 0.1, 0.5, 1.0, 5.0, 80.0])
def test_preconditioning_matches_the_formulas(sigma):
    edm = EDM(sigma_data=0.5)
    c_skip, c_out, c_in, c_noise = (float(c) for c in edm.precondition(torch.tensor(sigma)))
    sd = 0.5
    assert c_skip == pytest.approx(sd**2 / (sigma**2 + sd**2), rel=1e-6)
    assert c_out == pytest.approx(sigma * sd / math.sqrt(sigma**2 + sd**2), rel=1e-6)
    assert c_in == pytest.approx(1 / math.sqrt(sigma**2 + sd**2), rel=1e-6)
    assert c_noise == pytest.approx(math.log(sigma) / 4, rel=1e-6, abs=1e-7)
    weight = float(edm.loss_weight(torch.tensor(sigma)))
    assert weight == pytest.approx((sigma**2 + sd**2) / (sigma * sd) ** 2, rel=1e-6)
    assert weight == pytest.approx(1 / c_out**2, rel=1e-5)


def test_loss_equals_weighted_denoising_error():
    """||F - (x - c_skip y) / c_out||^2 is lambda(s) ||D(y; s) - x||^2 for any network F."""
    edm = EDM()
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def net(x, c_noise):
        return conv(x) * (1 + c_noise[:, None, None, None])

    x, sigma = torch.rand(4, 3, 8, 8) * 2 - 1, torch.tensor([0.01, 0.3, 1.0, 4.0])
    torch.manual_seed(1)
    loss = edm.loss(net, x, sigma)
    torch.manual_seed(1)
    y = x + sigma[:, None, None, None] * torch.randn_like(x)
    d = edm.denoise(net, y, sigma)
    weighted = edm.loss_weight(sigma) * (d - x).pow(2).flatten(1).mean(1)
    assert torch.allclose(loss, weighted, rtol=1e-4)
    # pixel weights: the explorer's tile (view cell (4, 4), pixels 4..5 of 8 here) counts k times
    pw = diffusion.explorer_weights(smoke_cfg(explorer_weight=5.0), size=8)
    assert pw.sum() == 64 - 1 + 5 and pw[0, 0, 4, 4] == 5 and pw[0, 0, 3, 4] == 1
    assert diffusion.explorer_weights(smoke_cfg(explorer_weight=1.0)) is None
    torch.manual_seed(1)
    loss_w = edm.loss(net, x, sigma, pixel_weight=pw)
    weighted_w = edm.loss_weight(sigma) * ((d - x).pow(2) * pw).flatten(1).mean(1)
    assert torch.allclose(loss_w, weighted_w, rtol=1e-4)


def test_no_noise_gives_back_the_input():
    """With EDM's skip, s -> 0: c_skip -> 1 and c_out -> 0, so D(x; s) -> x whatever the (random)
    network does. (The engine's x-prediction gives this up on purpose: its D is always the
    network's own painting; see the last test.)"""
    cfg = smoke_cfg(x_prediction=False)
    torch.manual_seed(0)
    model = diffusion.build(cfg).eval()
    for p in model.parameters():  # a random network, not the zero-initialised output layer
        torch.nn.init.normal_(p, std=0.05)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    ctx = torch.rand(2, cfg.context, 3, 64, 64) * 2 - 1
    acts = torch.zeros(2, cfg.context, dtype=torch.long)
    level = torch.zeros(2)
    errors = []
    for s in (1e-1, 1e-2, 1e-3, 1e-4):
        with torch.no_grad():
            d = model.denoiser(ctx, acts, level)(x, torch.full((2,), s))
        errors.append(float((d - x).abs().max()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3


def test_schedule_and_one_step_sampling():
    edm = EDM(sigma_min=0.1, sigma_max=5.0)
    assert edm.sigmas(1).tolist() == [5.0, 0.0]
    two = edm.sigmas(2)
    assert two[0] == pytest.approx(5.0) and two[1] == pytest.approx(0.1) and two[2] == 0
    four = edm.sigmas(4)
    assert (four[:-1].diff() < 0).all() and four[-1] == 0
    with pytest.raises(ValueError, match="steps"):
        edm.sigmas(0)

    # one step = one call of D at s_max on pure noise, and that call's answer is the sample
    calls = []
    target = torch.full((2, 3, 4, 4), 0.25)

    def denoiser(y, sigma):
        calls.append(sigma.clone())
        return target + 0 * y

    out = edm.sample(denoiser, (2, 3, 4, 4), steps=1, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 1 and torch.allclose(calls[0], torch.full((2,), 5.0))
    assert torch.allclose(out, target)
    # an exact denoiser of a point mass is reached by Euler and Heun at any step count
    for steps in (1, 2, 3, 4):
        for heun in (False, True):
            out = edm.sample(denoiser, (2, 3, 4, 4), steps=steps, heun=heun)
            assert torch.allclose(out, target, atol=1e-5)


def test_euler_step_is_the_samplers_step():
    """``euler_step`` (notebook 05's exercise) is the step ``EDM.sample`` takes: walking the schedule
    by hand with it gives the sampler's output bit for bit; to level 0 it lands on D's answer."""
    edm = EDM(sigma_min=0.1)

    def denoiser(y, sigma):
        return torch.tanh(y) * 0.7 + 0.01 * sigma[:, None, None, None]

    want = edm.sample(denoiser, (2, 3, 4, 4), steps=3, generator=torch.Generator().manual_seed(1))
    levels = edm.sigmas(3).tolist()
    x = torch.randn((2, 3, 4, 4), generator=torch.Generator().manual_seed(1)) * levels[0]
    for s, s_next in zip(levels[:-1], levels[1:]):
        x = euler_step(x, denoiser(x, torch.full((2,), s)), s, s_next)
    assert torch.equal(x, want)
    y, d = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(euler_step(y, d, 0.7, 0.0), d)
    torch.testing.assert_close(ode_slope(y, d, 0.5), (y - d) / 0.5)


def test_sampling_a_gaussian_with_its_exact_denoiser():
    """Data N(0, s_d^2): D(y; s) = y s_d^2 / (s^2 + s_d^2) is exact; the ODE maps noise of scale
    s_max to samples of scale s_d (a many-step Heun solve, checked on the standard deviation)."""
    edm = EDM(sigma_min=0.002, sigma_max=80.0)
    sd = edm.sigma_data

    def denoiser(y, sigma):
        return y * sd**2 / (sigma[:, None, None, None] ** 2 + sd**2)

    gen = torch.Generator().manual_seed(0)
    out = edm.sample(denoiser, (64, 1, 16, 16), steps=32, heun=True, generator=gen)
    assert float(out.std()) == pytest.approx(sd, rel=0.05)


# ----------------------------------------------------------------------------- U-Net and data


def test_unet_shapes_and_bad_input():
    net = DenoiserUNet(context=3, num_actions=6, channels=(8, 16), emb_dim=16, unshuffle=2)
    x, ctx = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 3, 64, 64)
    acts, lvl = torch.zeros(2, 3, dtype=torch.long), torch.zeros(2)
    assert net(x, lvl, ctx, acts, lvl).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="context"):
        net(x, lvl, ctx[:, :2], acts, lvl)
    with pytest.raises(ValueError, match="actions"):
        net(x, lvl, ctx, acts[:, :2], lvl)
    with pytest.raises(ValueError, match="actions"):
        net(x, lvl, ctx, acts + 6, lvl)


def test_batches_pad_and_noise_the_context():
    cfg = smoke_cfg(pad_prob=1.0, context_noise=0.0)
    w = cfg.context
    torch.manual_seed(0)
    batch = {  # distinct frames and a non-noop action everywhere, so padding is visible
        "frames": torch.rand(64, w + 1, 3, 64, 64),
        "actions": torch.full((64, w), int(Action.UP)),
    }
    p = diffusion.prepare_batch(batch, cfg, torch.Generator().manual_seed(0))
    frames = batch["frames"] * 2 - 1
    assert torch.equal(p["target"], frames[:, -1])
    ks = []
    for b in range(64):  # every window padded: k leading slots repeat frame k, with noop
        k = int((p["actions"][b] == int(Action.NOOP)).sum())
        ks.append(k)
        assert 1 <= k < w and (p["actions"][b, k:] == int(Action.UP)).all()
        assert all(torch.equal(p["context"][b, j], frames[b, max(j, k)]) for j in range(w))
    assert set(ks) == set(range(1, w))
    noisy = diffusion.prepare_batch(batch, smoke_cfg(pad_prob=0.0, context_noise=0.5))
    assert torch.equal(noisy["actions"], batch["actions"])
    level = noisy["context_level"]
    assert ((level >= 0) & (level <= 0.5)).all() and level.std() > 0
    spread = (noisy["context"] - frames[:, :-1]).flatten(1).std(1)
    assert torch.allclose(spread, level, rtol=0.05, atol=0.005)  # the level told is the one added
    # the residual's base is the clean last frame: the context noise is not in the target
    assert torch.equal(noisy["last"], frames[:, -2])
    with pytest.raises(ValueError, match="W \\+ 1"):
        diffusion.prepare_batch({**batch, "frames": batch["frames"][:, :2]}, cfg)


def test_config_rejects_bad_values_and_has_the_variant():
    with pytest.raises(ValueError, match="decode_steps"):
        smoke_cfg(decode_steps=0)
    with pytest.raises(ValueError, match="unknown field"):
        smoke_cfg(no_such_field=1)
    assert diffusion.VARIANTS["no_context_noise"] == {
        "context_noise": 0.0,
        "name": "diffusion_noaug",
    }
    assert diffusion.VARIANTS["pixels"]["space"] == "pixels"
    with pytest.raises(ValueError, match="space"):
        smoke_cfg(space="voxels")
    with pytest.raises(ValueError, match="tokenizer"):
        make_config(diffusion.Config, "smoke", tokenizer="oracle")


# ----------------------------------------------------------------------------- the engine


TINY = {
    "channels": (24, 32),
    "emb_dim": 32,
    "data": {"episodes": 4, "episode_steps": 24},
    "train": {"steps": 300, "batch_size": 16, "lr": 2e-3, "warmup_steps": 10},
    "context_noise": 0.0,
    "pad_prob": 0.0,
}
"""The tiny engines' settings: trained in seconds on a tiny dataset, no augmentation."""


@pytest.fixture(scope="module")
def tiny():
    """A tiny engine trained on a tiny dataset (module-scoped: trained once, a few seconds)."""
    torch.set_num_threads(1)
    cfg = smoke_cfg(
        **TINY,
        decode_steps=1,
        p_mean=0.4,  # one-step sampling calls only sigma_max: train the high levels more
    )
    model = diffusion.fit(cfg, {}, progress=False)
    d = cfg.data
    rec = record("train", d.episodes, d.episode_steps, d.policy, world=LEARNING_WORLD)
    return model, cfg, rec


def test_engine_interface_and_consistency(tiny):
    model, cfg, _ = tiny
    engine = DiffusionEngine(model, decode_steps=2, seed=3)
    assert engine.actions == SimulatorEngine().actions and engine.context == cfg.context
    assert engine.name == "diffusion" and engine.decode_steps == 2
    first = engine.reset(2_000_001)
    assert np.array_equal(first, SimulatorEngine(LEARNING_WORLD).reset(2_000_001))
    stepped = [engine.step(a) for a in ("up", 2, Action.LEFT, "interact", "noop")]
    assert all(f.dtype == np.uint8 and f.shape == (64, 64, 3) for f in stepped)
    with pytest.raises(ValueError, match="unknown action"):
        engine.step("fly")
    # step() and a batched rollout from the same single real frame imagine the same frames
    acts = np.array([[1, 2, 3, 5, 0]])
    out = engine.rollout(first[None, None], np.zeros((1, 0), np.int64), acts)
    assert out.shape == (1, 5, 64, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out[0], np.stack(stepped))
    # batched and deterministic for a seed; a different seed samples differently
    ctx = np.repeat(first[None, None], 2, axis=0)
    a = engine.rollout(ctx, np.zeros((2, 0), np.int64), np.array([[1, 1], [4, 4]]))
    b = engine.rollout(ctx, np.zeros((2, 0), np.int64), np.array([[1, 1], [4, 4]]))
    assert a.shape == (2, 2, 64, 64, 3) and np.array_equal(a, b)
    engine.seed = 4
    none = np.zeros((2, 0), np.int64)
    assert not np.array_equal(a, engine.rollout(ctx, none, np.array([[1, 1], [4, 4]])))
    with pytest.raises(ValueError, match="context_actions"):
        engine.rollout(ctx, np.zeros((2, 3), np.int64), np.array([[1, 1], [4, 4]]))
    engine.decode_steps = 0
    with pytest.raises(ValueError, match="decode_steps"):
        engine.step("up")


def test_engine_drives_the_play_controller(tiny):
    model, _, _ = tiny
    ctrl = PlayController(DiffusionEngine(model), seed=2_000_002)
    start = ctrl.frame.copy()
    for name in ("right", "right", "down"):
        ctrl.press(name)
    assert ctrl.last_error is None and ctrl.steps == 3
    assert ctrl.frame.shape == (64, 64, 3) and not np.array_equal(ctrl.frame, start)
    ctrl.reset(2_000_002)
    assert np.array_equal(ctrl.frame, start) and ctrl.steps == 0


def _one_step_errors(model, rec, actions_override=None):
    """Mean squared error of one-step predictions vs the truth, on every window of ``rec``."""
    data = TrajectoryDataset(rec, model.cfg.context + 1)
    batch = {k: torch.stack([data[i][k] for i in range(len(data))]) for k in ("frames", "actions")}
    frames = batch["frames"] * 2 - 1
    acts = batch["actions"] if actions_override is None else actions_override(batch["actions"])
    gen = torch.Generator().manual_seed(0)
    pred = model.next_frame(frames[:, :-1], acts, steps=1, generator=gen)
    return (pred - frames[:, -1]).pow(2).flatten(1).mean(1), frames, batch["actions"]


def test_tiny_model_learns_and_follows_actions(tiny):
    model, _, rec = tiny
    err, frames, actions = _one_step_errors(model, rec)
    copy = (frames[:, -2] - frames[:, -1]).pow(2).flatten(1).mean(1)
    assert float(err.mean()) < 0.5 * float(copy.mean())  # far better than freezing the world
    # swap each move for its opposite: the prediction gets worse where the view scrolled
    opposite = torch.tensor([0, 2, 1, 4, 3, 5])
    swapped, _, _ = _one_step_errors(
        model, rec, lambda a: torch.cat([a[:, :-1], opposite[a[:, -1:]]], dim=1)
    )
    moved = copy > 0.05
    assert moved.sum() >= 10
    assert float(swapped[moved].mean()) > 1.3 * float(err[moved].mean())


# ----------------------------------------------------------------------------- token space


@pytest.fixture(scope="module")
def tiny_tokens():
    """A tiny engine that denoises the shipped tokenizer's latents (trained once, seconds)."""
    from hitchhiker import zoo

    torch.set_num_threads(1)
    cfg, deps = zoo.prepare("diffusion", "smoke", **TINY)
    assert cfg.space == "tokens" and cfg.latent_dim == deps["tokenizer"].quantizer.dim
    model = diffusion.fit(cfg, deps, progress=False)
    d = cfg.data
    rec = record("train", d.episodes, d.episode_steps, d.policy, world=LEARNING_WORLD)
    return model, cfg, deps, rec


def test_token_space_model_learns_and_its_frames_are_the_tokenizers(tiny_tokens):
    from hitchhiker.metrics import frame_validity
    from hitchhiker.tokens import encode_frames

    model, cfg, deps, rec = tiny_tokens
    tok = deps["tokenizer"]
    # the codebook it denoises is the tokenizer's, scaled; snapping a code gives its token back
    ids = torch.arange(cfg.tokens.vocab_size)
    codes = tok.quantizer.embed(ids[:, None, None])
    assert torch.allclose(model.latents(ids[:, None, None]), diffusion.LATENT_SCALE * codes)
    assert torch.equal(model.nearest(model.latents(ids.view(2, 8, 8))), ids.view(2, 8, 8))
    # one-step predictions from real windows: better than freezing the world, and the true
    # action beats its opposite where the view scrolled
    tokens = encode_frames(tok, rec.frames.reshape(-1, 64, 64, 3)).view(*rec.frames.shape[:2], 8, 8)
    data = diffusion.TokenWindows(tokens, rec.actions, cfg.context + 1)
    batch = {k: torch.stack([data[i][k] for i in range(len(data))]) for k in ("tokens", "actions")}
    ctx, truth, acts = (
        model.latents(batch["tokens"][:, :-1]),
        batch["tokens"][:, -1],
        batch["actions"],
    )

    def accuracy(actions):
        gen = torch.Generator().manual_seed(0)
        pred = model.nearest(model.next_frame(ctx, actions, steps=2, generator=gen))
        return (pred == truth).flatten(1).float().mean(1)

    moved = (batch["tokens"][:, -2] != truth).flatten(1).float().mean(1) > 0.3
    assert moved.sum() >= 10
    right = accuracy(acts)
    copy = (batch["tokens"][:, -2] == truth).flatten(1).float().mean(1)
    assert float(right[moved].mean()) > float(copy[moved].mean()) + 0.2
    opposite = torch.tensor([0, 2, 1, 4, 3, 5])
    swapped = accuracy(torch.cat([acts[:, :-1], opposite[acts[:, -1:]]], dim=1))
    assert float(right[moved].mean()) > float(swapped[moved].mean()) + 0.1
    # the engine's frames are the tokenizer's pictures: every cell looks like a real tile
    engine = diffusion.engine_of(model, deps, 2, seed=1)
    first = engine.reset(2_000_001)
    frames = np.stack([first] + [engine.step(a) for a in ("right", "right", "down", "up")])
    assert frame_validity(frames[1:]) > 0.9
    out = engine.rollout(first[None, None], np.zeros((1, 0), np.int64), np.array([[4, 4, 2, 1]]))
    assert np.array_equal(out[0], frames[1:])  # step() and a rollout imagine alike


def test_token_space_engine_needs_its_tokenizer(tiny_tokens):
    from hitchhiker.tokens import OracleTokenizer

    model, cfg, _, _ = tiny_tokens
    with pytest.raises(ValueError, match="tokenizer"):
        DiffusionEngine(model)
    with pytest.raises(ValueError, match="codebook"):
        diffusion.bind({"space": "tokens"}, {"tokenizer": OracleTokenizer()})
    with pytest.raises(ValueError, match="128-code"):
        DiffusionEngine(model, tokenizer=OracleTokenizer())


def test_smoke_fit_and_evaluate_names_the_figures():
    cfg = smoke_cfg(
        eval_horizon=4, name="diffusion_noaug", train={"steps": 2}, data={"eval_episodes": 1}
    )
    model = diffusion.fit(cfg, {}, progress=False)
    figures = diffusion.evaluate(model, cfg, {})
    for name in (
        "teacher_forced_tile_accuracy",
        "action_following_4",
        "seen_land_accuracy_4",
        "delta_psnr_4",
        "tile_error_h1",
        "fps_b1",
    ):
        assert f"stage3.diffusion_noaug.{name}" in figures
    assert all(np.isfinite(v) or np.isnan(v) for v in figures.values())


def test_a_flat_stored_config_migrates_into_the_nested_shape():
    # Files shipped before the configs were nested store one flat dict, device and precision too.
    flat = {"name": "diffusion", "channels": [80, 112], "episodes": 384, "episode_steps": 48,
            "policy": "random", "steps": 3000, "batch_size": 32, "lr": 2e-3, "weight_decay": 0.01,
            "warmup_steps": 100, "checkpoint_every": 500, "seed": 0, "device": None,
            "precision": None, "eval_episodes": 16}  # fmt: skip
    cfg = config_from_dict(diffusion.Config, flat)
    assert cfg.channels == (80, 112) and cfg.data.episodes == 384 and cfg.data.eval_episodes == 16
    assert (cfg.train.steps, cfg.train.weight_decay, cfg.train.device) == (3000, 0.01, None)


# ----------------------------------------------------------------------------- the drift's cause


def test_the_skip_path_leaks_noise_a_folding_network_cannot_cancel():
    """Issue 17: the engine dissolved into static because EDM's skip path c_skip * y carries
    c_skip(s) * s of the input noise into D(y; s) unless the network cancels it pixel by pixel,
    which a U-Net that folds each 8 x 8 tile into its channels (192 pixel values in, 80 channels
    through) cannot; through the residual the leak then piles up frame after frame. Without the
    skip (x-prediction) D is the network's own painting: no input noise reaches the frame."""
    still = torch.zeros(64, 3, 16, 16)  # a still world: the change to predict is zero

    def blind(x, c_noise):  # a network that sees no pixel noise: here it outputs nothing at all
        return torch.zeros_like(x)

    gen = torch.Generator().manual_seed(0)
    for sigma in (0.1, 0.5, 5.0):
        s = torch.full((64,), sigma)
        y = still + sigma * torch.randn(still.shape, generator=gen)
        leak = EDM(skip=True)
        assert float(leak.denoise(blind, y, s).std()) == pytest.approx(
            leak.skip_leak(sigma), rel=0.05
        )
        assert float(EDM(skip=False).denoise(blind, y, s).abs().max()) == 0.0
    # the sampler's output: with the skip, at least the last level's leak (sigma_min = 0.1: 0.096,
    # 12 grey levels, more than twice the tile reader's validity bound of RMS 0.02 in [0, 1], i.e.
    # 0.04 here); without it, exactly the painting, whatever the steps
    leaky, clean = (EDM(sigma_min=0.1, sigma_max=5.0, skip=skip) for skip in (True, False))
    for steps in (1, 2, 3):
        out = leaky.sample(lambda y, s: leaky.denoise(blind, y, s), still.shape, steps=steps)
        last = float(leaky.sigmas(steps)[-2])
        assert float(out.std()) > max(0.04, 0.95 * leaky.skip_leak(last))
        out = clean.sample(lambda y, s: clean.denoise(blind, y, s), still.shape, steps=steps)
        assert float(out.abs().max()) == 0.0
    # the engine's denoiser has no skip, and its loss weight is 1 / c_out^2 = 1 / s_d^2
    edm = diffusion.Config().edm()
    assert not edm.skip
    c_skip, c_out, _, _ = edm.precondition(torch.tensor([0.1, 1.0, 5.0]))
    assert torch.equal(c_skip, torch.zeros(3)) and torch.allclose(c_out, torch.full((3,), 0.5))
    assert torch.allclose(edm.loss_weight(torch.tensor([0.1, 5.0])), torch.full((2,), 4.0))
