"""EDM: the denoiser's preconditioning, its training noise and its few-step sampler (Karras et al.
2022, "Elucidating the Design Space of Diffusion-Based Generative Models",
https://arxiv.org/abs/2206.00364), as DIAMOND (Alonso et al. 2024, https://arxiv.org/abs/2405.12399)
uses it for a world model.

A diffusion model learns to undo Gaussian noise of any level s (sigma): given y = x + s * n,
n ~ N(0, I), the *denoiser* D(y; s) estimates the clean x. EDM does not ask the raw network F to output
x directly; it wraps F so that its input and its target both have unit variance at every level:

    D(y; s) = c_skip(s) * y + c_out(s) * F(c_in(s) * y; c_noise(s))

    c_skip  = s_d^2 / (s^2 + s_d^2)          keep the input where little noise was added
    c_out   = s * s_d / sqrt(s^2 + s_d^2)    scale of what F must supply
    c_in    = 1 / sqrt(s^2 + s_d^2)          unit-variance input
    c_noise = ln(s) / 4                      what F is told about the level

with s_d the standard deviation of the data (0.5 for pixels in [-1, 1]). As s -> 0, c_skip -> 1 and
c_out -> 0, so D(y) -> y: a clean input passes through, whatever F does. Training draws the level
log-normally, ln s ~ N(P_mean, P_std^2), and weights the squared error by lambda(s) =
(s^2 + s_d^2) / (s * s_d)^2 = 1 / c_out^2, which is the same as regressing F on its own target:

    lambda(s) * ||D(y; s) - x||^2 = ||F(c_in y; c_noise) - (x - c_skip y) / c_out||^2.

Sampling walks a decreasing schedule s_0 = s_max > s_1 > ... > s_{n-1} = s_min, then s_n = 0 (Karras'
schedule, rho = 7, spends its steps near the clean end); each Euler step follows the probability
flow ODE dx/ds = (x - D(x; s)) / s, optionally corrected by Heun's second evaluation. With one step
the sample is D(s_max * n; s_max): the network's best guess in one call. Two to four steps buy
sharper detail where the future is uncertain (new land, wandering sheep), at one call each.

Shapes: B batch, C channels, H x W pixels; sigma is a (B,) tensor or a float.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""D(y (B, C, H, W), sigma (B,)) -> x estimate (B, C, H, W)."""


@dataclass(frozen=True)
class EDM:
    """The constants of EDM's preconditioning, training noise and sampling schedule."""

    sigma_data: float = 0.5
    """s_d: standard deviation of the clean data (pixels in [-1, 1])."""
    p_mean: float = -0.4
    """Mean of ln(sigma) when training (DIAMOND's value)."""
    p_std: float = 1.2
    """Standard deviation of ln(sigma) when training."""
    sigma_min: float = 2e-3
    """Smallest nonzero level of the sampling schedule."""
    sigma_max: float = 5.0
    """Level the sampler starts from (pure noise at this scale)."""
    rho: float = 7.0
    """Curvature of Karras' schedule (larger: more steps near the clean end)."""
    skip: bool = True
    """EDM's skip path c_skip * y. False: c_skip = 0 and c_out = s_d at every level, so D is the
    network's own estimate of the clean x ("x-prediction") and no input noise reaches the output
    unless the network paints it. A network that cannot represent every pixel of its input (one
    that folds the frame, like :mod:`.unet`) cannot cancel the noise the skip lets through, which
    then leaves c_skip(s) * s of noise in every sample (see :meth:`skip_leak`)."""

    def __post_init__(self):
        if not (0 < self.sigma_min < self.sigma_max and self.sigma_data > 0 and self.p_std > 0):
            raise ValueError(
                f"need 0 < sigma_min < sigma_max, sigma_data > 0, p_std > 0; got {self}"
            )

    # --- preconditioning

    def precondition(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(c_skip, c_out, c_in, c_noise), each shaped like ``sigma``."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        sd2 = self.sigma_data**2
        total = sigma**2 + sd2
        c_in = 1.0 / total.sqrt()
        if not self.skip:
            c_skip = torch.zeros_like(sigma)
            c_out = torch.full_like(sigma, self.sigma_data)
            return c_skip, c_out, c_in, sigma.log() / 4
        c_skip = sd2 / total
        c_out = sigma * self.sigma_data / total.sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """lambda(s) = 1 / c_out^2: (s^2 + s_d^2) / (s * s_d)^2 with the skip, 1 / s_d^2 without."""
        if not self.skip:
            return torch.full_like(torch.as_tensor(sigma, dtype=torch.float32), self.sigma_data**-2)
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def skip_leak(self, sigma) -> float:
        """Noise (standard deviation) the skip path c_skip * y carries into D(y; s) when the network
        cannot cancel any of it: c_skip(s) * s = s * s_d^2 / (s^2 + s_d^2) (0 without the skip)."""
        s = float(sigma)
        return s * self.sigma_data**2 / (s**2 + self.sigma_data**2) if self.skip else 0.0

    def denoise(self, net: Callable, y: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        """D(y; s) = c_skip y + c_out F(c_in y; c_noise, **cond), for a raw network ``net``."""
        c_skip, c_out, c_in, c_noise = (c.to(y.device) for c in self.precondition(sigma))
        f = net(c_in[:, None, None, None] * y, c_noise, **cond).float()
        return c_skip[:, None, None, None] * y + c_out[:, None, None, None] * f

    # --- training

    def sample_sigma(self, batch: int, device=None, generator=None) -> torch.Tensor:
        """(B,) training levels, ln s ~ N(P_mean, P_std^2)."""
        z = torch.randn(batch, generator=generator, device=device)
        return (self.p_mean + self.p_std * z).exp()

    def loss(
        self,
        net: Callable,
        x: torch.Tensor,
        sigma: torch.Tensor,
        pixel_weight: torch.Tensor | None = None,
        **cond,
    ) -> torch.Tensor:
        """(B,) per-sample EDM loss: ||F(c_in y) - (x - c_skip y) / c_out||^2 averaged over pixels,
        which equals lambda(s) * ||D(y; s) - x||^2 (see the module docstring). ``pixel_weight``
        (broadcastable to x) weighs each pixel's squared error, e.g. to stress a small sprite."""
        y = x + sigma[:, None, None, None] * torch.randn_like(x)
        c_skip, c_out, c_in, c_noise = (c[:, None, None, None] for c in self.precondition(sigma))
        f = net(c_in * y, c_noise.flatten(), **cond).float()
        target = (x - c_skip * y) / c_out
        err = (f - target).pow(2)
        if pixel_weight is not None:
            err = err * pixel_weight
        return err.flatten(1).mean(1)

    # --- sampling

    def sigmas(self, steps: int, sigma_min: float | None = None) -> torch.Tensor:
        """(steps + 1,) Karras schedule: ``steps`` levels from sigma_max down to sigma_min, then 0.

        One step is [sigma_max, 0]: a single call of the denoiser.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        lo = self.sigma_min if sigma_min is None else sigma_min
        if not 0 < lo <= self.sigma_max:
            raise ValueError(f"sigma_min must lie in (0, {self.sigma_max}]; got {lo}")
        if steps == 1:
            return torch.tensor([self.sigma_max, 0.0])
        ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
        hi_r, lo_r = self.sigma_max ** (1 / self.rho), lo ** (1 / self.rho)
        levels = (hi_r + ramp * (lo_r - hi_r)) ** self.rho
        return torch.cat([levels, torch.zeros(1, dtype=torch.float64)]).float()

    @torch.no_grad()
    def sample(
        self,
        denoiser: Denoiser,
        shape: tuple[int, ...],
        steps: int = 2,
        heun: bool = False,
        sigma_min: float | None = None,
        generator: torch.Generator | None = None,
        device=None,
    ) -> torch.Tensor:
        """A sample of shape ``shape`` = (B, C, H, W) by ``steps`` Euler (or Heun) steps of the ODE.

        ``denoiser(y, sigma (B,))`` is D itself (preconditioning included). Heun adds a second
        evaluation on every step except the last (to 0), as in EDM's Algorithm 1.
        """
        levels = self.sigmas(steps, sigma_min).tolist()
        noise = torch.randn(shape, generator=generator).to(device)  # a CPU generator: any device
        x = noise * levels[0]
        b = shape[0]
        for s, s_next in zip(levels[:-1], levels[1:]):
            denoised = denoiser(x, torch.full((b,), s, device=x.device))
            x_next = euler_step(x, denoised, s, s_next)
            if heun and s_next > 0:
                d = ode_slope(x, denoised, s)
                d2 = ode_slope(
                    x_next, denoiser(x_next, torch.full((b,), s_next, device=x.device)), s_next
                )
                x_next = x + (s_next - s) * 0.5 * (d + d2)
            x = x_next
        return x


def ode_slope(x: torch.Tensor, denoised: torch.Tensor, sigma: float) -> torch.Tensor:
    """dx/ds = (x - D(x; s)) / s: the probability flow ODE's slope at level s, from the denoiser's
    answer ``denoised`` = D(x; s): the noise D sees in x, per unit of level (x = D + s * slope)."""
    return (x - denoised) / sigma


def euler_step(
    x: torch.Tensor, denoised: torch.Tensor, sigma: float, sigma_next: float
) -> torch.Tensor:
    """One Euler step of the ODE from level ``sigma`` down to ``sigma_next`` (EDM's Algorithm 1
    without Heun's correction):

        x_next = x + (s_next - s) * (x - D(x; s)) / s

    ``denoised`` = D(x; s), same shape as x (B, C, H, W). To s_next = 0 the step lands on D(x; s)
    (up to rounding): the sampler's last step returns the denoiser's answer."""
    return x + (sigma_next - sigma) * ode_slope(x, denoised, sigma)


def fourier_level(value: torch.Tensor, dim: int, max_period: float = 100.0) -> torch.Tensor:
    """(B,) scalars -> (B, dim) sinusoidal features, the usual way a network reads a noise level."""
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=value.device) / half)
    angles = value.float()[:, None] * freqs[None] * 2 * math.pi
    return torch.cat([angles.cos(), angles.sin()], dim=1)
