"""The diffusion world model's recipe (GameNGen, DIAMOND): the next frame denoised from pure noise,
in 1-4 steps, conditioned on the last W frames and actions. Config, build, fit and evaluate live
here; the engine that plays it, :class:`~.diffusion_engine.DiffusionEngine`, in
:mod:`.diffusion_engine`.

Valevski et al. 2024, "Diffusion Models Are Real-Time Game Engines" (GameNGen,
https://arxiv.org/abs/2408.14837); Alonso et al. 2024, "Diffusion for World Modeling: Visual
Details Matter in Atari" (DIAMOND, https://arxiv.org/abs/2405.12399). The world model is a
conditional denoiser

    D(y; s | o[t-W+1..t], a[t-W+1..t]) ~ o[t+1],      y = o[t+1] + s * n

trained with EDM's noise levels, input scaling and sampler (:mod:`.edm`) on a small pixel-space
U-Net (:mod:`.unet`), but without EDM's skip path (``x_prediction``): D is the network's own
estimate of the clean change, D(y; s) = s_d * F(c_in * y; s). The U-Net folds each 8 x 8 tile into
its channels, so it cannot cancel pixel noise that EDM's c_skip * y would pass into every frame. To play, draw pure noise at s_max and denoise it in ``decode_steps`` steps into the
next frame; append that frame to the context, drop the oldest, repeat.

**What is diffused** (``residual``, on by default) is the change from the last context frame,
x = o[t+1] - o[t], and the frame is o[t] + x: a still world (noop, a blocked move) is the zero
change, so a small network trained for minutes spends its capacity on what moves, not on
re-painting every grass texture. With ``residual=False`` it is the frame itself, as in DIAMOND.

**Drift and context noise** (GameNGen). In training the context frames are real; in play they are
the model's own, slightly wrong, outputs, and small errors compound frame after frame (exposure
bias). GameNGen's cure: corrupt the context with Gaussian noise of a random level
l ~ U(0, context_noise) and tell the network l, so it learns to *repair* a damaged past rather than
copy it:

    context' = context + l * n,   n ~ N(0, I),   the network sees (context', l)

At play time the context is clean (l = 0, or a small fixed ``play_context_noise``). The zoo ships
the model twice, with and without this augmentation ("diffusion", "diffusion_noaug"), for the drift
experiment of notebook 05.

**The explorer's tile.** The explorer is one tile of 64, yet its sprite carries the heading and
so all of action following; an unweighted pixel loss lets a small network blur it. Its tile's
squared error is weighted ``explorer_weight`` times (as the tokenizer and the masked dynamics do).

**Short contexts.** A reset starts from ONE real frame, repeated W times with noop actions, so a
share ``pad_prob`` of training windows is padded the same way.

Pixels live in [-1, 1] inside the model (s_d = 0.5); frames enter and leave the engine as uint8.
Each generated frame is rounded to uint8 before it joins the context, so ``step`` and ``rollout``
see exactly the frames the player sees.

Shapes: B batch, W context frames, T imagined steps, H = W_px = 64 pixels, A = 6 actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from hitchhiker.interactive.diffusion_engine import DiffusionEngine, to_model_space
from hitchhiker.interactive.edm import EDM
from hitchhiker.interactive.rollout import evaluate_engine
from hitchhiker.interactive.truth import truth_set
from hitchhiker.interactive.unet import DenoiserUNet
from hitchhiker.recipe import Deps
from hitchhiker.train import TrainConfig, train
from hitchhiker.world import ACTION_NAMES, Action
from hitchhiker.world.dataset import LEARNING_WORLD, DataConfig, TrajectoryDataset, record


@dataclass
class Config:
    """A diffusion engine: its U-Net, EDM constants, augmentation, data and training."""

    STORED_BEFORE: ClassVar[dict[str, Any]] = {"x_prediction": False}
    """Files shipped before x-prediction were trained with EDM's skip path: they load as such."""
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "channels": (16, 32),
            "emb_dim": 32,
            "eval_horizon": 16,
            "data": {"episodes": 4, "episode_steps": 24, "eval_episodes": 2},
            "train": {"steps": 12, "batch_size": 8, "warmup_steps": 2, "checkpoint_every": 0},
        },
        "cpu": {},
        "gpu": {
            "channels": (128, 192, 256),
            "blocks": 2,
            "data": {"episodes": 1024},
            "train": {"steps": 20000, "batch_size": 64},
        },
        "large": {
            "channels": (192, 256, 384),
            "blocks": 2,
            "data": {"episodes": 2048},
            "train": {"steps": 40000, "batch_size": 128},
        },
    }

    name: str = "diffusion"
    """Model name: figures read "stage3.<name>.<figure>" (each variant sets its own)."""
    context: int = 4
    """Context window W: real (or imagined) frames the denoiser sees besides the noisy one."""
    channels: tuple[int, ...] = (80, 112)
    """U-Net widths, one per resolution (64/u, 64/2u, ...)."""
    blocks: int = 1
    """Residual blocks per resolution, on the way down and on the way up."""
    emb_dim: int = 128
    """Width of the conditioning embedding (noise level, actions, context-noise level)."""
    unshuffle: int = 8
    """Pixel-unshuffle factor u: the U-Net runs at 64/u pixels (8: one position per world tile)."""
    sigma_data: float = 0.5
    """EDM s_d: standard deviation of the pixels in [-1, 1]."""
    x_prediction: bool = True
    """The network predicts the clean change itself (EDM without its skip path: c_skip = 0,
    c_out = s_d). With EDM's skip, D(y; s) = c_skip y + c_out F lets c_skip(s) * s of the input
    noise through unless F cancels it pixel by pixel, which this U-Net cannot: it folds each 8 x 8
    tile (192 noisy values, 960 with the context) into 80 channels. The leak (0.094 at the
    sampler's last level 0.1; the tile reader tolerates RMS 0.04) was left in every frame and,
    through the residual, piled up frame after frame: the static of issue 17
    (docs/diffusion-drift.md)."""
    p_mean: float = 0.4
    """Mean of ln(sigma) of the training noise. Higher than DIAMOND's -0.4: with 1-2 sampling
    steps the first call, at sigma_max, decides the frame (heading, scroll), so training leans
    on high levels (measured: action following 0.51 -> 0.77 after 600 steps)."""
    p_std: float = 1.2
    """Standard deviation of ln(sigma) of the training noise."""
    sigma_min: float = 0.1
    """Last nonzero level of the sampling schedule (with 2 steps: s_max -> sigma_min -> 0)."""
    sigma_max: float = 5.0
    """First level of the sampling schedule."""
    rho: float = 7.0
    """Curvature of Karras' sampling schedule."""
    decode_steps: int = 2
    """Default denoising steps per frame of the engine (1-4)."""
    heun: bool = False
    """Heun's second-order correction in the sampler (one more network call per step)."""
    residual: bool = True
    """Diffuse the change x[t+1] - x[t] from the last context frame instead of the frame itself:
    a still world is then the zero change, and the network spends itself on what moves."""
    context_noise: float = 0.3
    """Largest Gaussian noise level added to the context in training (l ~ U(0, this); 0: off)."""
    play_context_noise: float = 0.0
    """Noise level the engine claims for its context at play time (0: a clean context)."""
    explorer_weight: float = 20.0
    """Loss weight of the explorer's tile (view cell (4, 4)) against 1 elsewhere: its heading is 1
    of the 64 tiles and the whole of action following (the tokenizer and masked dynamics do alike)."""
    pad_prob: float = 0.15
    """Share of training windows whose context is padded (first frame repeated, noop actions)."""
    data: DataConfig = field(
        default_factory=lambda: DataConfig(episodes=384, episode_steps=48, eval_episodes=16)
    )
    """Recorded play: training episodes, and the held-out (test) episodes of the figures."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=3000, batch_size=32, lr=2e-3, weight_decay=0.01)
    )
    """Optimisation: windows per step, learning rate, device and precision, and the seed of the
    weights, the data order and the training noise."""
    eval_context: int = 4
    """Real frames the engine gets before each evaluated rollout."""
    eval_horizon: int = 64
    """Longest evaluated rollout (error-versus-horizon curve)."""

    def __post_init__(self):
        checks = {
            "context": self.context >= 1,
            "channels": len(self.channels) >= 1 and min(self.channels) >= 4,
            "unshuffle": self.unshuffle in (1, 2, 4, 8),
            "decode_steps": 1 <= self.decode_steps <= 64,
            "context_noise": self.context_noise >= 0,
            "play_context_noise": self.play_context_noise >= 0,
            "pad_prob": 0 <= self.pad_prob <= 1,
            "explorer_weight": self.explorer_weight > 0,
        }
        bad = [f"{k}={getattr(self, k)!r}" for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid diffusion Config values: {', '.join(bad)}")

    def edm(self) -> EDM:
        """The EDM constants of this config."""
        return EDM(
            self.sigma_data,
            self.p_mean,
            self.p_std,
            self.sigma_min,
            self.sigma_max,
            self.rho,
            skip=not self.x_prediction,
        )


VARIANTS: dict[str, dict[str, Any]] = {
    "no_context_noise": {"context_noise": 0.0, "name": "diffusion_noaug"},
}
"""Config overrides of the zoo's variant "diffusion_noaug" (the drift experiment's control)."""


class DiffusionModel(nn.Module):
    """The EDM-wrapped U-Net: ``forward`` is the raw network F, ``next_frame`` samples D's chain."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.edm = cfg.edm()
        self.net = DenoiserUNet(
            cfg.context, len(ACTION_NAMES), cfg.channels, cfg.blocks, cfg.emb_dim, cfg.unshuffle
        )

    def forward(self, x, c_noise, context, actions, context_level):
        """F(c_in * y; c_noise, context (B, W, 3, H, W), actions (B, W), context_level (B,))."""
        return self.net(x, c_noise, context, actions, context_level)

    def denoiser(self, context, actions, context_level):
        """D(y, sigma) for fixed conditioning: what :meth:`EDM.sample` calls."""
        cond = {"context": context, "actions": actions, "context_level": context_level}
        return lambda y, sigma: self.edm.denoise(self, y, sigma, **cond)

    @torch.no_grad()
    def next_frame(
        self,
        context: torch.Tensor,
        actions: torch.Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        context_level: float | None = None,
    ) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1]: a sample of the frame after ``context`` (B, W, 3, H, W) in
        [-1, 1] under ``actions`` (B, W) (the W - 1 between the context frames, then the one now)."""
        cfg = self.cfg
        b = context.shape[0]
        level = cfg.play_context_noise if context_level is None else context_level
        levels = torch.full((b,), float(level), device=context.device)
        x = self.edm.sample(
            self.denoiser(context, actions, levels),
            (b, 3, *context.shape[-2:]),
            steps=cfg.decode_steps if steps is None else steps,
            heun=cfg.heun,
            generator=generator,
            device=context.device,
        )
        return x + context[:, -1] if cfg.residual else x


# ----------------------------------------------------------------------------- training


def prepare_batch(batch: dict, cfg: Config, generator=None) -> dict[str, torch.Tensor]:
    """A window of W + 1 frames -> (clean target, padded and noised context, actions, level).

    Padding (share ``pad_prob``): the first k context frames become copies of frame k, their
    actions noop, k ~ U{1..W-1}. Context noise: l ~ U(0, context_noise) per window.
    """
    frames, actions = to_model_space(batch["frames"]), batch["actions"]
    b, w = frames.shape[0], cfg.context
    if frames.shape[1] != w + 1 or actions.shape != (b, w):
        raise ValueError(
            f"expected windows of W + 1 = {w + 1} frames and W actions; got frames "
            f"{tuple(frames.shape)} and actions {tuple(actions.shape)}"
        )
    dev = frames.device
    context, target = frames[:, :w], frames[:, w]
    if w > 1 and cfg.pad_prob > 0:
        padded = torch.rand(b, generator=generator).to(dev) < cfg.pad_prob
        k = torch.randint(1, w, (b,), generator=generator).to(dev) * padded  # 0: not padded
        slots = torch.arange(w, device=dev)[None]
        idx = torch.maximum(slots, k[:, None])  # (B, W): slot j shows frame max(j, k)
        context = context.gather(1, idx[:, :, None, None, None].expand_as(context))
        actions = torch.where(slots < k[:, None], int(Action.NOOP), actions)
    level = torch.rand(b, generator=generator).to(dev) * cfg.context_noise
    noise = torch.randn(context.shape, generator=generator).to(dev)
    context = context + level[:, None, None, None, None] * noise
    return {"target": target, "context": context, "actions": actions, "context_level": level}


def explorer_weights(cfg: Config, size: int = 64, device=None) -> torch.Tensor | None:
    """(1, 1, size, size) pixel weights: ``explorer_weight`` on view cell (4, 4), 1 elsewhere."""
    if cfg.explorer_weight == 1.0:
        return None
    tile = size // 8
    w = torch.ones(1, 1, size, size, device=device)
    w[..., 4 * tile : 5 * tile, 4 * tile : 5 * tile] = cfg.explorer_weight
    return w


def diffusion_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
    """EDM loss of the next frame given a (padded, noised) context: the trainer's ``loss_fn``."""
    inner = model.module if hasattr(model, "module") else model
    p = prepare_batch(batch, inner.cfg)
    sigma = inner.edm.sample_sigma(p["target"].shape[0], device=p["target"].device)
    target = p["target"] - p["context"][:, -1] if inner.cfg.residual else p["target"]
    per_sample = inner.edm.loss(
        model,
        target,
        sigma,
        pixel_weight=explorer_weights(inner.cfg, target.shape[-1], target.device),
        context=p["context"],
        actions=p["actions"],
        context_level=p["context_level"],
    )
    loss = per_sample.mean()
    high = sigma > 1.0  # the part that decides the first (and with 1 step the only) call
    metrics = {"loss_high_sigma": (per_sample * high).sum() / high.sum().clamp_min(1)}
    return loss, metrics


def build(cfg: Config) -> DiffusionModel:
    """The untrained diffusion model of ``cfg`` (seeded by ``cfg.train.seed``)."""
    torch.manual_seed(cfg.train.seed)
    return DiffusionModel(cfg)


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> DiffusionModel:
    """Record training episodes and train the denoiser on windows of W + 1 frames (a pixel model:
    it depends on no other model, ``deps`` is ignored)."""
    rec = record(
        "train",
        cfg.data.episodes,
        cfg.data.episode_steps,
        cfg.data.policy,
        world=LEARNING_WORLD,
        progress=progress,
    )
    model = build(cfg)
    data = TrajectoryDataset(rec, cfg.context + 1)
    result = train(model, data, diffusion_loss, cfg.train, run_dir, progress=progress)
    model.losses = result.losses
    model.train_seconds = result.seconds
    return result.model.eval()


def evaluate(model: DiffusionModel, cfg: Config, deps: Deps) -> dict[str, float]:
    """Every Stage III figure of the engine on held-out episodes ("stage3.<name>.<figure>");
    ``deps`` is ignored (no dependencies)."""
    h, seed = cfg.eval_horizon, cfg.train.seed
    truth = truth_set("test", cfg.data.eval_episodes, cfg.eval_context, h)
    engine = DiffusionEngine(model, cfg.decode_steps, seed)
    horizons = (min(16, h), min(32, h), h)
    return evaluate_engine(engine, truth, f"stage3.{cfg.name}", horizons=horizons, seed=seed)
