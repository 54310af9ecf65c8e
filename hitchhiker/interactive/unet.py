"""A small U-Net denoiser for the diffusion engine (GameNGen, DIAMOND), sized for a laptop CPU.

The network F of EDM (:mod:`.edm`) for next-frame prediction: its input is the noisy next frame,
already scaled by c_in, with the last W real frames concatenated along the channels (GameNGen and
DIAMOND both condition on the past this way: the past is just more input channels, aligned pixel
for pixel with the frame being drawn, which is exactly what a scrolling view needs). Everything that
is a number rather than a picture — the noise level c_noise, the action taken and the W - 1 before
it, and the level of noise added to the context frames — is embedded into one vector e that steers
every residual block through *adaptive group norm* (DIAMOND, after Dhariwal & Nichol 2021):

    AdaGN(h, e) = GroupNorm(h) * (1 + scale(e)) + shift(e)

so the action changes the features everywhere, at every resolution.

Speed: the frame is folded by pixel-unshuffle (a factor u: each u x u pixel block becomes u^2 * 3
channels) before the first convolution, so the U-Net proper runs at 64/u pixels and below
(residual blocks, GroupNorm, nearest upsampling, skip connections by concatenation), and the last
convolution unfolds u^2 * 3 channels back into the 64 x 64 frame. The world is drawn in 8 x 8 tiles
that always sit on the 8-pixel grid, so a fold of 2 or 4 loses nothing the network needs.

The same network denoises the Stage I tokenizer's latents instead of pixels (``in_channels`` = the
latent width D, an 8 x 8 grid, ``unshuffle`` = 1): the diffusion engine's default, as GameNGen
denoises Stable Diffusion's latents (:mod:`.diffusion_recipe`).

Shapes: B batch, W context frames, A actions, C channels (3 pixel colours, or D latent channels),
H = W_px = 64 pixels (8 latent cells), u unshuffle factor, E embedding width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hitchhiker.interactive.edm import fourier_level


def _groups(channels: int) -> int:
    """GroupNorm groups: 8 channels per group where possible."""
    for g in (channels // 8, 4, 2, 1):
        if g >= 1 and channels % g == 0:
            return g
    return 1


class AdaGroupNorm(nn.Module):
    """GroupNorm without its own affine, scaled and shifted by a projection of the embedding."""

    def __init__(self, channels: int, emb_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels, affine=False)
        self.proj = nn.Linear(emb_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)  # start as plain GroupNorm
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(emb)[:, :, None, None].chunk(2, dim=1)
        return self.norm(h) * (1 + scale) + shift


class ResBlock(nn.Module):
    """AdaGN -> SiLU -> conv3x3 -> AdaGN -> SiLU -> conv3x3, plus the (1x1-projected) input."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1 = AdaGroupNorm(c_in, emb_dim)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = AdaGroupNorm(c_out, emb_dim)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x, emb)))
        h = self.conv2(F.silu(self.norm2(h, emb)))
        return self.skip(x) + h


class DenoiserUNet(nn.Module):
    """F(c_in * y; c_noise, context, actions, context_level) -> (B, 3, H, W), EDM's raw network.

    ``channels[i]`` is the width at resolution (64 / u) / 2^i; ``blocks`` residual blocks per level
    on the way down and on the way up, one in the middle.
    """

    def __init__(
        self,
        context: int = 4,
        num_actions: int = 6,
        channels: tuple[int, ...] = (64, 64, 96),
        blocks: int = 1,
        emb_dim: int = 128,
        unshuffle: int = 2,
        in_channels: int = 3,
    ):
        super().__init__()
        if context < 1 or num_actions < 1 or blocks < 1 or not channels or in_channels < 1:
            raise ValueError(
                f"need context, num_actions, blocks, in_channels >= 1 and some channels; got "
                f"{context=}, {num_actions=}, {blocks=}, {in_channels=}, {channels=}"
            )
        self.context, self.num_actions, self.unshuffle = context, num_actions, unshuffle
        self.in_channels = in_channels
        self.emb_dim = emb_dim
        # One embedding row per (slot, action): the action taken now is slot W - 1.
        self.action_emb = nn.Embedding(context * num_actions, emb_dim)
        self.emb_mlp = nn.Sequential(
            nn.Linear(3 * emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        folded = in_channels * (context + 1) * unshuffle**2
        self.stem = nn.Conv2d(folded, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, c = [], channels[0]
        for i, ch in enumerate(channels):
            for _ in range(blocks):
                self.down.append(ResBlock(c, ch, emb_dim))
                c = ch
                skips.append(c)
            if i < len(channels) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(c, c, emb_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, ch in reversed(list(enumerate(channels))):
            for _ in range(blocks):
                self.up.append(ResBlock(c + skips.pop(), ch, emb_dim))
                c = ch
            if i > 0:
                self.upsample.append(nn.Conv2d(c, channels[i - 1], 3, padding=1))
                c = channels[i - 1]
        self.out_norm = nn.GroupNorm(_groups(c), c)
        self.out = nn.Conv2d(c, in_channels * unshuffle**2, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.levels, self.blocks = len(channels), blocks

    def embed(
        self, c_noise: torch.Tensor, actions: torch.Tensor, context_level: torch.Tensor
    ) -> torch.Tensor:
        """(B, E): the noise level, the last W actions and the context noise level, in one vector."""
        if actions.ndim != 2 or actions.shape[1] != self.context:
            raise ValueError(
                f"actions must be (B, {self.context}) int64 (the last action last); "
                f"got {tuple(actions.shape)}"
            )
        if actions.min() < 0 or actions.max() >= self.num_actions:
            raise ValueError(f"actions must lie in [0, {self.num_actions}); got {actions.tolist()}")
        slots = torch.arange(self.context, device=actions.device) * self.num_actions
        act = self.action_emb(actions + slots).sum(1)
        parts = [
            fourier_level(c_noise, self.emb_dim),
            act,
            fourier_level(context_level * 4, self.emb_dim),
        ]
        return self.emb_mlp(torch.cat(parts, dim=1))

    def forward(
        self,
        x: torch.Tensor,
        c_noise: torch.Tensor,
        context: torch.Tensor,
        actions: torch.Tensor,
        context_level: torch.Tensor,
    ) -> torch.Tensor:
        """x (B, C, H, W) scaled noisy frame, c_noise (B,), context (B, W, C, H, W) in model space
        (noised when training), actions (B, W) int64, context_level (B,) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        if c != self.in_channels or context.shape != (b, self.context, c, h, w):
            raise ValueError(
                f"expected a frame (B, {self.in_channels}, H, W) and its context (B, W, C, H, W) = "
                f"({b}, {self.context}, {self.in_channels}, {h}, {w}); got {tuple(x.shape)} and "
                f"{tuple(context.shape)}"
            )
        emb = self.embed(c_noise, actions, context_level)
        frames = torch.cat([x, context.reshape(b, -1, h, w)], dim=1)
        hid = self.stem(F.pixel_unshuffle(frames, self.unshuffle))
        skips, k = [], 0
        for level in range(self.levels):
            for _ in range(self.blocks):
                hid = self.down[k](hid, emb)
                skips.append(hid)
                k += 1
            if level < self.levels - 1:
                hid = self.downsample[level](hid)
        hid = self.mid(hid, emb)
        k = 0
        for level in range(self.levels):
            for _ in range(self.blocks):
                hid = self.up[k](torch.cat([hid, skips.pop()], dim=1), emb)
                k += 1
            if level < self.levels - 1:
                hid = F.interpolate(hid, scale_factor=2.0, mode="nearest")
                hid = self.upsample[level](hid)
        out = self.out(F.silu(self.out_norm(hid)))
        return F.pixel_shuffle(out, self.unshuffle)
