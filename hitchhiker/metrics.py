"""Metrics every stage reports: PSNR, SSIM, tile accuracy, frame validity, error-versus-horizon.

Pixels first. PSNR compares two images through their mean squared error,

    PSNR = 10 * log10(MAX^2 / MSE),        MAX = 1 for images in [0, 1],

and SSIM (Wang et al., 2004, "Image quality assessment: from error visibility to structural
similarity") compares local means, variances and covariance under an 11x11 Gaussian window:

    SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))

with C1 = (0.01)^2 and C2 = (0.03)^2. Both need no downloaded network, so they run anywhere.

Then the world. Because the course owns its simulator, it can also say *what* a frame shows: the
ground-truth reader (:func:`hitchhiker.world.read_tiles`) recovers the tile grid of any frame, real
or generated. Tile accuracy compares that grid with the truth; frame validity says how many cells of
a generated frame look like some real tile at all. These are the exact metrics later stages quote.

Finally, world models are judged over rollouts: an error measured at each step of many rollouts
becomes an error-versus-horizon curve (:func:`horizon_curve`); a mean over held-out episodes carries
its 95% interval (:func:`mean_interval`), and so does a ratio of two policies' means on the same
episodes (:func:`ratio_interval`).

Shapes: images are (..., H, W, 3) numpy arrays (uint8, or float in [0, 1]) or torch tensors
(..., 3, H, W) in [0, 1]; R x C is the tile grid of a view; N rollouts, T steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hitchhiker.world import reader

__all__ = [
    "to_float_chw",
    "psnr",
    "ssim",
    "tile_accuracy",
    "frame_validity",
    "HorizonCurve",
    "horizon_curve",
    "plot_horizon",
]


def to_float_chw(images) -> torch.Tensor:
    """Any image batch -> float32 torch tensor (..., 3, H, W) in [0, 1].

    Accepts numpy or torch, uint8 (0..255) or float (0..1), channels last (..., H, W, 3) or first
    (..., 3, H, W). Channels-last is assumed when the last axis has size 3.
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.ndim < 3:
        raise ValueError(
            f"expected images shaped (..., H, W, 3) or (..., 3, H, W); got {tuple(x.shape)}"
        )
    if x.shape[-1] == 3:
        x = x.movedim(-1, -3)
    elif x.shape[-3] != 3:
        raise ValueError(
            f"expected 3 colour channels first or last, (..., 3, H, W) or (..., H, W, 3); got {tuple(x.shape)}"
        )
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    return x.float()


def _pair(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = to_float_chw(a), to_float_chw(b)
    if x.shape != y.shape:
        raise ValueError(
            f"images must have the same shape; got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return x, y


def psnr(a, b, reduce: bool = True) -> float | torch.Tensor:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (per image, then averaged).

    Identical images have infinite PSNR; we clip the MSE at 1e-10 (100 dB) so averages stay finite.
    """
    x, y = _pair(a, b)
    mse = (x - y).pow(2).flatten(-3).mean(-1).clamp_min(1e-10)
    out = 10 * torch.log10(1.0 / mse)
    return out.mean().item() if reduce else out


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]  # (size, size)


def ssim(a, b, reduce: bool = True, window: int = 11) -> float | torch.Tensor:
    """Structural similarity (Wang et al. 2004), Gaussian window, mean over pixels and channels.

    Small images (our views are 64x64) make the window's border matter; we use 'valid' filtering
    like the reference implementation, so the window must fit: H, W >= ``window``.
    """
    x, y = _pair(a, b)
    if min(x.shape[-2:]) < window:
        raise ValueError(f"SSIM needs images at least {window}x{window}; got {tuple(x.shape[-2:])}")
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:])
    y = y.reshape(-1, *y.shape[-3:])
    c = x.shape[1]
    w = _gaussian_window(window).to(x)[None, None].expand(c, 1, window, window)
    blur = lambda t: F.conv2d(t, w, groups=c)  # depthwise: each channel alone
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    out = s.flatten(1).mean(1).reshape(lead)
    return out.mean().item() if reduce else out


def tile_accuracy(frames, true_tiles) -> float:
    """Share of view cells whose kind, read from ``frames`` by the ground-truth reader, is the truth.

    ``true_tiles`` is (..., R, C) as given by ``info["tiles"]``.
    """
    return reader.tile_accuracy(frames, true_tiles)


def frame_validity(frames) -> float:
    """Mean share of cells that look like some real tile (1.0 on every real frame)."""
    return float(np.mean(reader.frame_validity(frames)))


def mean_interval(values) -> tuple[float, float]:
    """(mean, half-width of its 95% interval) of per-episode values, NaNs left out:
    mean +- 1.96 s / sqrt(E), s the episodes' sample standard deviation (NaN from fewer than 2).

    The unit is the episode (a walk, a held-out world), not the cell or the frame: cells of one
    episode share its world and its rollout, so they are not independent draws."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return float(v.mean()), float(half)


def ratio_interval(num, den) -> tuple[float, float]:
    """(R, half-width of its 95% interval) of a ratio of means R = mean(num) / mean(den), where
    ``num`` and ``den`` are per-episode values (E,) measured on the *same* episodes (two policies
    judged on the same held-out worlds).

    The delta method: near R, mean(num) - R mean(den) is the mean of d_i = num_i - R den_i, so

        R_hat - R ~ mean(d) / mean(den),     half = 1.96 s_d / (sqrt(E) mean(den)),

    s_d the sample standard deviation of d. Pairing matters: a world that is easy for both policies
    moves num and den together, and d subtracts that shared part out. The normal approximation asks
    for mean(den) well away from 0 (its own interval should not reach 0); with mean(den) <= 0 the
    ratio is undefined and this raises.
    """
    x = np.asarray(num, dtype=float).ravel()
    y = np.asarray(den, dtype=float).ravel()
    if x.shape != y.shape or len(x) < 2:
        raise ValueError(
            "ratio_interval takes paired per-episode values, two arrays of the same length >= 2; "
            f"got {len(x)} and {len(y)}"
        )
    if y.mean() <= 0:
        raise ValueError(f"the denominator's mean must be > 0; got {y.mean()}")
    r = x.mean() / y.mean()
    d = x - r * y
    return float(r), float(1.96 * d.std(ddof=1) / (np.sqrt(len(d)) * y.mean()))


@dataclass
class HorizonCurve:
    """An error-versus-rollout-horizon curve: mean and a 95% interval at each step."""

    steps: np.ndarray
    """(T,) the horizon, 1-based: the error after 1, 2, ... T model steps."""
    mean: np.ndarray
    """(T,) mean error over rollouts at each horizon."""
    low: np.ndarray
    """(T,) lower end of the 95% interval of the mean (normal approximation)."""
    high: np.ndarray
    """(T,) upper end of the 95% interval of the mean."""
    label: str = ""
    """Legend label when plotted."""

    def at(self, step: int) -> float:
        """Mean error at horizon ``step`` (1-based)."""
        if not 1 <= step <= len(self.steps):
            raise ValueError(f"horizon {step} outside 1..{len(self.steps)}")
        return float(self.mean[step - 1])


def horizon_curve(errors, label: str = "") -> HorizonCurve:
    """(N rollouts, T steps) per-step errors -> :class:`HorizonCurve`.

    Rollouts of unequal length may be given as NaN-padded rows; each step averages what it has.
    """
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim == 1:
        e = e[None]
    if e.ndim != 2 or e.shape[1] == 0:
        raise ValueError(f"expected errors shaped (N rollouts, T steps); got {e.shape}")
    n = np.sum(~np.isnan(e), axis=0)
    if np.any(n == 0):
        raise ValueError("every horizon step needs at least one rollout with a value")
    mean = np.nanmean(e, axis=0)
    sem = np.where(n > 1, np.nanstd(e, axis=0, ddof=0) / np.sqrt(np.maximum(n - 1, 1)), 0.0)
    half = 1.96 * sem
    steps = np.arange(1, e.shape[1] + 1)
    return HorizonCurve(steps, mean, mean - half, mean + half, label)


def plot_horizon(curves, ax=None, ylabel: str = "error", log: bool = False):
    """Draw one or more :class:`HorizonCurve` with their intervals; returns the axes."""
    import matplotlib.pyplot as plt  # lazy: matplotlib is heavy, and only notebooks draw

    if isinstance(curves, HorizonCurve):
        curves = [curves]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for c in curves:
        (line,) = ax.plot(c.steps, c.mean, label=c.label or None)
        ax.fill_between(c.steps, c.low, c.high, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("rollout step")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    if any(c.label for c in curves):
        ax.legend()
    ax.grid(alpha=0.3)
    return ax
