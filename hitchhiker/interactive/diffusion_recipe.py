"""The diffusion world model's recipe (GameNGen, DIAMOND): the next frame denoised from pure noise,
in 1-4 steps, conditioned on the last W frames and actions. Config, build, fit and evaluate live
here; the engine that plays it, :class:`~.diffusion_engine.DiffusionEngine`, in
:mod:`.diffusion_engine`.

Valevski et al. 2024, "Diffusion Models Are Real-Time Game Engines" (GameNGen,
https://arxiv.org/abs/2408.14837); Alonso et al. 2024, "Diffusion for World Modeling: Visual
Details Matter in Atari" (DIAMOND, https://arxiv.org/abs/2405.12399). The world model is a
conditional denoiser

    D(y; s | z[t-W+1..t], a[t-W+1..t]) ~ z[t+1],      y = z[t+1] + s * n

trained with EDM's noise levels, input scaling and sampler (:mod:`.edm`) on a small U-Net
(:mod:`.unet`), without EDM's skip path (``x_prediction``): D is the network's own estimate of the
clean change, D(y; s) = s_d * F(c_in * y; s). To play, draw pure noise at s_max and denoise it in
``decode_steps`` steps into the next frame; append that frame to the context, drop the oldest,
repeat.

**Pixels or latents** (``space``). DIAMOND denoises pixels; GameNGen denoises the latents of Stable
Diffusion's autoencoder, and latent diffusion with a VQ autoencoder (Rombach et al. 2022,
https://arxiv.org/abs/2112.10752) leaves the quantiser to the decoder. Here z is either the
64 x 64 x 3 frame ("pixels") or the Stage I tokenizer's latents ("tokens", the default): each 8 x 8
tile's code vector, D = 16 numbers on an 8 x 8 grid. A denoised latent is snapped to the nearest
code (:meth:`DiffusionModel.nearest`) and painted by the tokenizer's decoder, so every frame is
made of real tiles and the next step reads a clean past. In pixels a small CPU-trained network
must paint every tile to within ~5 grey levels of a real one, and does not: at the ``cpu`` preset
its frames drift into fuzzy land the tile reader no longer recognises (notebook 05 and the
benchmark's "diffusion_pixels" rows measure it, and ``docs/diffusion-drift.md`` tells how the
engine was taken apart). Pixels are also why x-prediction: the pixel U-Net folds each 8 x 8 tile
into its channels, so it cannot cancel the noise EDM's c_skip * y would pass into every frame.

**What is diffused** (``residual``, on by default) is the change from the last context frame,
x = z[t+1] - z[t] (taken from the clean frame, not the noised one the network sees), and the frame
is z[t] + x: a still world (noop, a blocked move) is the zero
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

Pixels live in [-1, 1] inside the model, latents are the codes times :data:`LATENT_SCALE` (both
with s_d = 0.5); frames enter and leave the engine as uint8. Each generated frame is rounded to
uint8 (pixels) or snapped to its tokens (latents) before it joins the context, so ``step`` and
``rollout`` see exactly the frames the player sees.

Shapes: B batch, W context frames, T imagined steps, C channels (3 colours or D latent widths),
H = W_px = 64 pixels or 8 latent cells, K codes, A = 6 actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from hitchhiker.interactive.diffusion_engine import DiffusionEngine, to_model_space
from hitchhiker.interactive.edm import EDM
from hitchhiker.interactive.rollout import evaluate_engine
from hitchhiker.interactive.truth import truth_set
from hitchhiker.interactive.unet import DenoiserUNet
from hitchhiker.recipe import Deps, Need
from hitchhiker.tokens import TokenGrid, encode_frames, tokenizer_needs
from hitchhiker.train import TrainConfig, train
from hitchhiker.world import ACTION_NAMES, Action
from hitchhiker.world.dataset import LEARNING_WORLD, DataConfig, TrajectoryDataset, record


@dataclass
class Config:
    """A diffusion engine: its U-Net, EDM constants, augmentation, data and training."""

    STORED_BEFORE: ClassVar[dict[str, Any]] = {"x_prediction": False, "space": "pixels"}
    """Files shipped before x-prediction were trained with EDM's skip path, and before latents on
    pixels: they load as such."""
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
    space: str = "tokens"
    """What is denoised: "tokens", the Stage I tokenizer's latents (each 8 x 8 tile's code vector,
    D numbers on an 8 x 8 grid), snapped to the nearest code and painted by the tokenizer's
    decoder, as GameNGen denoises Stable Diffusion's latents and latent diffusion with a VQ
    autoencoder quantises in its decoder; or "pixels", the 64 x 64 x 3 frame itself, as DIAMOND
    does (see "Pixels or latents" in the module docstring)."""
    tokenizer: str = "shipped"
    """Which tokenizer (``space="tokens"``): "shipped" or a preset to train one at. It must have a
    codebook (the ground-truth "oracle" stand-in has none)."""
    tokens: TokenGrid = field(default_factory=TokenGrid)
    """The tokenizer's vocabulary and grid, bound by the zoo from the tokenizer it hands in."""
    latent_dim: int = 0
    """D, the width of the tokenizer's code vectors (bound with the tokenizer; 0 for pixels)."""
    context: int = 4
    """Context window W: real (or imagined) frames the denoiser sees besides the noisy one."""
    channels: tuple[int, ...] = (80, 112)
    """U-Net widths, one per resolution (64/u, 64/2u, ...)."""
    blocks: int = 1
    """Residual blocks per resolution, on the way down and on the way up."""
    emb_dim: int = 128
    """Width of the conditioning embedding (noise level, actions, context-noise level)."""
    unshuffle: int = 8
    """Pixel-unshuffle factor u (pixels only): the U-Net runs at 64/u pixels (8: one position per
    world tile). Latents already sit one per tile, on the 8 x 8 grid."""
    sigma_data: float = 0.5
    """EDM s_d: standard deviation of the pixels in [-1, 1]."""
    x_prediction: bool = True
    """The network predicts the clean change itself (EDM without its skip path: c_skip = 0,
    c_out = s_d). With EDM's skip, D(y; s) = c_skip y + c_out F lets c_skip(s) * s of the input
    noise through unless F cancels it pixel by pixel, which the pixel U-Net cannot: it folds each
    8 x 8 tile (192 noisy values, 960 with the context) into 80 channels. The leak (0.094 at the
    sampler's last level 0.1; the tile reader tolerates RMS 0.04) was left in every frame and,
    through the residual, piled up frame after frame: the static of issue 17
    (docs/diffusion-drift.md)."""
    p_mean: float = -0.4
    """Mean of ln(sigma) of the training noise (DIAMOND's value)."""
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
        default_factory=lambda: DataConfig(episodes=384, episode_steps=48, eval_episodes=64)
    )
    """Recorded play: training episodes, and the held-out (test) episodes of the figures (64, each
    figure with its 95% interval: about 1 to 3 points for the headline accuracies, wider for the
    tile error of long rollouts, whose worlds diverge each their own way)."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=6000, batch_size=32, lr=2e-3, weight_decay=0.01)
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
            "space": self.space in ("tokens", "pixels"),
            "tokenizer": self.space == "pixels" or self.tokenizer != "oracle",
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
    "pixels": {"space": "pixels", "name": "diffusion_pixels", "train": {"steps": 3000}},
}
"""Config overrides of the zoo's variants "diffusion_noaug" (the drift experiment's control) and
"diffusion_pixels" (DIAMOND's pixel space, for the comparison of notebook 05: half the steps, as
each costs about twice a latent step on a CPU, so both train for similar minutes)."""

LATENT_SCALE = 2.0
"""The tokenizer's codes are unit vectors in D dimensions (D = 16: each coordinate's standard
deviation ~ 1/4); times 2 their coordinates have the standard deviation s_d = 0.5 that EDM's
preconditioning assumes, as pixels in [-1, 1] do."""


def needs(values: dict[str, Any]) -> dict[str, Need]:
    """The tokenizer whose latents are denoised (none for pixels)."""
    return tokenizer_needs(values) if values["space"] == "tokens" else {}


def bind(values: dict[str, Any], deps: Deps) -> dict[str, Any]:
    """The tokenizer's vocabulary, grid and code width (nothing for pixels)."""
    if values["space"] != "tokens":
        return {}
    tokenizer = deps["tokenizer"]
    if not hasattr(tokenizer, "quantizer"):
        raise ValueError(
            f"the diffusion engine denoises a tokenizer's code vectors; {type(tokenizer).__name__} "
            "has no codebook (use the shipped tokenizer, or space='pixels')"
        )
    return {"tokens": TokenGrid.of(tokenizer), "latent_dim": int(tokenizer.quantizer.dim)}


class DiffusionModel(nn.Module):
    """The EDM-wrapped U-Net: ``forward`` is the raw network F, ``next_frame`` samples D's chain.

    In token space it also holds the tokenizer's codebook (K, D), scaled by :data:`LATENT_SCALE`:
    :meth:`latents` turns tokens into the vectors it denoises, :meth:`nearest` snaps a denoised
    vector back to a token. The pixels of a token are the tokenizer's to paint (the engine's job).
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.edm = cfg.edm()
        tokens = cfg.space == "tokens"
        if tokens:
            cfg.tokens.require("the token-space diffusion model")
            if cfg.latent_dim < 1:
                raise ValueError(
                    f"latent_dim must be bound from the tokenizer; got {cfg.latent_dim}"
                )
            codes = torch.zeros(cfg.tokens.vocab_size, cfg.latent_dim)
            self.register_buffer("codebook", codes)  # filled by set_codebook, stored with weights
        self.channels = cfg.latent_dim if tokens else 3
        self.net = DenoiserUNet(
            cfg.context,
            len(ACTION_NAMES),
            cfg.channels,
            cfg.blocks,
            cfg.emb_dim,
            1 if tokens else cfg.unshuffle,
            in_channels=self.channels,
        )

    def set_codebook(self, tokenizer) -> None:
        """Copy ``tokenizer``'s code vectors (scaled) into the model: the space it denoises."""
        cfg = self.cfg
        cfg.tokens.check(tokenizer, "the diffusion model")
        ids = torch.arange(cfg.tokens.vocab_size, device=tokenizer.device)
        codes = tokenizer.quantizer.embed(ids[:, None, None])[:, :, 0, 0].float()
        self.codebook.copy_(LATENT_SCALE * codes.to(self.codebook.device))

    def latents(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (..., h, w) int64 -> their scaled code vectors (..., D, h, w)."""
        return self.codebook[tokens].movedim(-1, -3)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, D, h, w) -> the token of the nearest code at every cell (B, h, w): the
        quantiser of a VQ autoencoder, which latent diffusion leaves to the decoder."""
        b, d, h, w = z.shape
        flat = z.movedim(1, -1).reshape(-1, d).float()
        dist = torch.cdist(flat, self.codebook.float())
        return dist.argmin(1).view(b, h, w)

    def forward(self, x, c_noise, context, actions, context_level):
        """F(c_in * y; c_noise, context (B, W, C, H, W), actions (B, W), context_level (B,))."""
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
        """(B, C, H, W) in model space: a sample of the frame after ``context`` (B, W, C, H, W)
        under ``actions`` (B, W) (the W - 1 between the context frames, then the one now).
        Pixels come out in [-1, 1]; latents unsnapped (:meth:`nearest` snaps them)."""
        cfg = self.cfg
        b = context.shape[0]
        level = cfg.play_context_noise if context_level is None else context_level
        levels = torch.full((b,), float(level), device=context.device)
        x = self.edm.sample(
            self.denoiser(context, actions, levels),
            (b, *context.shape[-3:]),
            steps=cfg.decode_steps if steps is None else steps,
            heun=cfg.heun,
            generator=generator,
            device=context.device,
        )
        return x + context[:, -1] if cfg.residual else x


# ----------------------------------------------------------------------------- training


class TokenWindows(Dataset):
    """Windows of W + 1 consecutive frames of recorded episodes, as tokens.

    Item: {"tokens": (W + 1, h, w) int64, "actions": (W,) int64} (the actions between them)."""

    def __init__(self, tokens: torch.Tensor, actions, length: int):
        e, t1 = tokens.shape[:2]
        if not 2 <= length <= t1:
            raise ValueError(f"window length must lie in [2, {t1}]; got {length}")
        self.tokens, self.actions = tokens, torch.as_tensor(actions).long()
        self.length, self.starts = length, t1 - length + 1

    def __len__(self) -> int:
        return len(self.tokens) * self.starts

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        e, s = divmod(i, self.starts)
        return {
            "tokens": self.tokens[e, s : s + self.length],
            "actions": self.actions[e, s : s + self.length - 1],
        }


def prepare_batch(batch: dict, cfg: Config, generator=None) -> dict[str, torch.Tensor]:
    """A window of W + 1 frames -> clean target, clean last context frame, padded and noised
    context, actions and noise level, all in model space.

    ``batch["frames"]`` are pixels (uint8, or float in [0, 1] channel-first); ``batch["latents"]``
    (B, W + 1, D, h, w) are already in model space. Padding (share ``pad_prob``): the first k
    context frames become copies of frame k, their actions noop, k ~ U{1..W-1}. Context noise:
    l ~ U(0, context_noise) per window.
    """
    frames = batch["latents"] if "latents" in batch else to_model_space(batch["frames"])
    actions = batch["actions"]
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
    last = context[:, -1]  # the clean last frame, before the noise: what the residual is taken from
    context = context + level[:, None, None, None, None] * noise
    return {
        "target": target,
        "last": last,
        "context": context,
        "actions": actions,
        "context_level": level,
    }


def explorer_weights(cfg: Config, size: int = 64, device=None) -> torch.Tensor | None:
    """(1, 1, size, size) weights of a frame's pixels or latent cells: ``explorer_weight`` on
    view cell (4, 4), 1 elsewhere."""
    if cfg.explorer_weight == 1.0:
        return None
    tile = size // 8
    w = torch.ones(1, 1, size, size, device=device)
    w[..., 4 * tile : 5 * tile, 4 * tile : 5 * tile] = cfg.explorer_weight
    return w


def diffusion_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
    """EDM loss of the next frame given a (padded, noised) context: the trainer's ``loss_fn``."""
    inner = model.module if hasattr(model, "module") else model
    if "tokens" in batch:
        batch = {"latents": inner.latents(batch["tokens"]), "actions": batch["actions"]}
    p = prepare_batch(batch, inner.cfg)
    sigma = inner.edm.sample_sigma(p["target"].shape[0], device=p["target"].device)
    # The change is taken from the *clean* last frame: from the noised one, the network would
    # have to predict the context noise it was given, cell by cell, besides the change.
    target = p["target"] - p["last"] if inner.cfg.residual else p["target"]
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
    """Record training episodes and train the denoiser on windows of W + 1 frames: pixels, or
    the tokenizer's tokens (``deps["tokenizer"]``, encoded once), whose code vectors it denoises."""
    rec = record(
        "train",
        cfg.data.episodes,
        cfg.data.episode_steps,
        cfg.data.policy,
        world=LEARNING_WORLD,
        progress=progress,
    )
    model = build(cfg)
    if cfg.space == "tokens":
        tokenizer = deps["tokenizer"]
        model.set_codebook(tokenizer)
        flat = rec.frames.reshape(-1, *rec.frames.shape[2:])
        grid = (cfg.tokens.grid_h, cfg.tokens.grid_w)
        tokens = encode_frames(tokenizer, flat).view(*rec.frames.shape[:2], *grid)
        data = TokenWindows(tokens, rec.actions, cfg.context + 1)
    else:
        data = TrajectoryDataset(rec, cfg.context + 1)
    result = train(model, data, diffusion_loss, cfg.train, run_dir, progress=progress)
    model.losses = result.losses
    model.train_seconds = result.seconds
    return result.model.eval()


def engine_of(model: DiffusionModel, deps: Deps, decode_steps=None, seed: int = 0, **kw):
    """The engine that plays ``model``, with the tokenizer it needs in token space
    (``deps["tokenizer"]``, e.g. ``zoo.dependencies("diffusion", cfg)``)."""
    tokenizer = deps.get("tokenizer") if model.cfg.space == "tokens" else None
    return DiffusionEngine(model, decode_steps, seed, tokenizer=tokenizer, **kw)


def evaluate(model: DiffusionModel, cfg: Config, deps: Deps) -> dict[str, float]:
    """Every Stage III figure of the engine on held-out episodes ("stage3.<name>.<figure>")."""
    h, seed = cfg.eval_horizon, cfg.train.seed
    truth = truth_set("test", cfg.data.eval_episodes, cfg.eval_context, h)
    engine = engine_of(model, deps, cfg.decode_steps, seed)
    horizons = (min(16, h), min(32, h), h)
    return evaluate_engine(engine, truth, f"stage3.{cfg.name}", horizons=horizons, seed=seed)
