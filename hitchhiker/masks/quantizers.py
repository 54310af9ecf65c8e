"""Two ways to turn a continuous latent vector into one discrete token: VQ (EMA) and FSQ.

**VQ** (van den Oord et al., "Neural Discrete Representation Learning", 2017) keeps a codebook of
K vectors e_k and replaces each encoder output z by its nearest code,

    k* = argmin_k ||z - e_k||^2,    z_q = e_{k*}.

The argmin has no gradient, so the *straight-through estimator* copies the decoder's gradient from
z_q to z: ``z_q = z + (e_k* - z).detach()``. A *commitment loss* ``beta ||z - sg(e_k*)||^2`` keeps
the encoder near its codes. The codebook itself is not learned by gradient but as an exponential
moving average of the vectors assigned to each code (the paper's appendix; Razavi et al. 2019) --
online k-means, with decay gamma:

    N_k <- gamma N_k + (1 - gamma) n_k            n_k = how many z chose k in this batch
    m_k <- gamma m_k + (1 - gamma) sum_{z -> k} z
    e_k  = m_k / N~_k,   N~_k = (N_k + eps) / (sum_j N_j + K eps) * sum_j N_j   (Laplace smoothing)

Laplace smoothing keeps a code that lost all its vectors from dividing by zero. Such a *dead* code
is useless, and a codebook where half the codes are dead wastes half its capacity, so a code
unused for ``dead_after`` training steps is *restarted*: moved onto a random recent encoder output
(Dhariwal et al., Jukebox, 2020). We draw that output with probability proportional to its
quantisation error, as k-means++ seeds: the vectors the codebook explains worst -- two kinds of
tile squeezed into one code -- are where a new code helps most. ``dead_after=0`` turns restarts
off, to watch codes die (notebook 02 trains such a tokenizer beside the shipped one).

**FSQ** (Mentzer et al., "Finite Scalar Quantization: VQ-VAE Made Simple", 2023) needs no
codebook at all: the encoder emits d = len(levels) numbers, each squashed into a bounded range and
rounded to one of L_i levels,

    z_i -> round(tanh(z_i) * (L_i - 1) / 2)        (with a half-step shift for even L_i),

so the implicit codebook is the grid of prod(L_i) points. Rounding is straight-through too. There
is nothing to collapse, no EMA, no commitment loss, no restarts.

Shapes: B batch, D latent channels, h x w token grid, K codebook size, d = len(levels).
Latents are channels-first (B, D, h, w) as a conv encoder makes them; tokens are (B, h, w) int64.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@torch.no_grad()
def kmeans_pp(flat: torch.Tensor, n: int, nearest: torch.Tensor) -> torch.Tensor:
    """Draw ``n`` of the (M, D) vectors ``flat``, k-means++ style (Arthur & Vassilvitskii 2007).

    ``nearest`` (M,) is each vector's squared distance to the codes it already has; each draw has
    probability proportional to it, and then counts as a code too. So a well-served vector (or a
    copy of one just drawn) is almost never drawn: no duplicate codes.
    """
    nearest = nearest.clone()
    picks = []
    for _ in range(n):
        i = torch.multinomial(nearest + 1e-12 * nearest.max().clamp_min(1e-12), 1)
        picks.append(flat[i])
        nearest = torch.minimum(nearest, (flat - flat[i]).pow(2).sum(1))
    return torch.cat(picks)


class EMAVectorQuantizer(nn.Module):
    """Nearest-neighbour VQ with an EMA codebook, Laplace smoothing and dead-code restarts."""

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        decay: float = 0.99,
        commitment: float = 0.25,
        dead_after: int = 100,
        eps: float = 1e-5,
        normalise: bool = True,
    ):
        super().__init__()
        if codebook_size < 2 or dim < 1:
            raise ValueError(f"need codebook_size >= 2 and dim >= 1, got {codebook_size}, {dim}")
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.codebook_size, self.dim = codebook_size, dim
        self.decay, self.commitment, self.dead_after, self.eps = decay, commitment, dead_after, eps
        self.normalise = normalise
        # Buffers, not parameters: the optimizer never touches them, the EMA does.
        self.register_buffer("codebook", torch.randn(codebook_size, dim))
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.int64))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.int64))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.int64))

    @property
    def num_codes(self) -> int:
        return self.codebook_size

    def _flat(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> (B*h*w, D) in float32 (distances in fp16 would tie codes), on the unit
        sphere when ``normalise``."""
        flat = z.movedim(1, -1).reshape(-1, self.dim).float()
        return F.normalize(flat, dim=1) if self.normalise else flat

    def nearest(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Index of the nearest code and the squared distance to it, for (M, D) vectors."""
        # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2, one matmul for all pairs.
        d = (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * flat @ self.codebook.t()
            + self.codebook.pow(2).sum(1)[None]
        )
        dist_min, idx = d.min(dim=1)
        return idx, dist_min.clamp_min(0)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Tokens (B, h, w) int64 of latents (B, D, h, w)."""
        b, _, h, w = z.shape
        return self.nearest(self._flat(z))[0].view(b, h, w)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Latents (B, D, h, w) of tokens (B, h, w)."""
        return self.codebook[tokens].movedim(-1, 1)

    def forward(
        self, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(z_q straight-through (B, D, h, w), tokens (B, h, w), loss terms and statistics)."""
        b, _, h, w = z.shape
        flat = self._flat(z)
        if self.training and not bool(self.initialised):
            self._init_from(flat)
        idx, err = self.nearest(flat)
        quantised = self.codebook[idx]
        if self.training:
            self._ema_update(flat, idx, err)
        commit = (flat - quantised.detach()).pow(2).mean()
        z_q = flat + (quantised - flat).detach()  # straight-through: forward e_k, backward identity
        counts = torch.bincount(idx, minlength=self.codebook_size).float()
        p = counts / counts.sum()
        terms = {
            "commit": self.commitment * commit,
            "perplexity": torch.exp(-(p * torch.log(p + 1e-10)).sum()).detach(),
            "usage": (counts > 0).float().mean(),
        }
        z_q = z_q.view(b, h, w, self.dim).movedim(-1, 1).to(z.dtype)
        return z_q, idx.view(b, h, w), terms

    def bypass(self, z: torch.Tensor) -> torch.Tensor:
        """The latents as the decoder would see them, unquantised (for an autoencoder warm-up)."""
        b, _, h, w = z.shape
        return self._flat(z).view(b, h, w, self.dim).movedim(-1, 1).to(z.dtype)

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        """Data-dependent start: k-means++ seeding on the first quantised batch, so the codes spread
        over all kinds of tile instead of crowding on the most common one."""
        first = flat[torch.randint(len(flat), (1,), device=flat.device)]
        rest = kmeans_pp(flat, self.codebook_size - 1, (flat - first).pow(2).sum(1))
        codes = torch.cat([first, rest])
        if _distributed():
            dist.broadcast(codes, 0)
        self.codebook.copy_(codes)
        self.ema_sum.copy_(codes)
        self.ema_count.fill_(1.0)
        self.initialised.fill_(1)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor, err: torch.Tensor) -> None:
        onehot_counts = torch.bincount(idx, minlength=self.codebook_size).float()
        sums = torch.zeros_like(self.ema_sum).index_add_(0, idx, flat)
        if _distributed():  # every rank must hold the same codebook
            dist.all_reduce(onehot_counts)
            dist.all_reduce(sums)
        g = self.decay
        self.ema_count.mul_(g).add_(onehot_counts, alpha=1 - g)
        self.ema_sum.mul_(g).add_(sums, alpha=1 - g)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + self.codebook_size * self.eps) * total
        codes = self.ema_sum / smoothed[:, None]
        self.codebook.copy_(F.normalize(codes, dim=1) if self.normalise else codes)
        self.unused_steps.add_(1).masked_fill_(onehot_counts > 0, 0)
        self._restart_dead(flat, err)

    @torch.no_grad()
    def _restart_dead(self, flat: torch.Tensor, err: torch.Tensor) -> None:
        if self.dead_after <= 0:  # restarts off: a dead code stays dead
            return
        dead = (self.unused_steps >= self.dead_after).nonzero().squeeze(1)
        if len(dead) == 0:
            return
        # k-means++ seeding: badly explained vectors are likelier to get a code of their own, and two
        # restarted codes never land on the same vector.
        fresh = kmeans_pp(flat, len(dead), err)
        if _distributed():
            dist.broadcast(fresh, 0)
        self.codebook[dead] = fresh
        self.ema_sum[dead] = fresh
        self.ema_count[dead] = 1.0
        self.unused_steps[dead] = 0
        self.restarts.add_(len(dead))


class FiniteScalarQuantizer(nn.Module):
    """FSQ: round each of d bounded latent channels to L_i levels; the code is the grid point."""

    def __init__(self, levels: tuple[int, ...]):
        super().__init__()
        levels = tuple(int(v) for v in levels)
        if len(levels) < 1 or any(v < 2 for v in levels):
            raise ValueError(f"FSQ levels must be integers >= 2, got {levels}")
        self.levels, self.dim = levels, len(levels)
        self.codebook_size = math.prod(levels)
        lv = torch.tensor(levels, dtype=torch.float32)
        basis = torch.cumprod(torch.tensor((1,) + levels[:-1]), 0)
        self.register_buffer("_levels", lv, persistent=False)
        self.register_buffer("_basis", basis.to(torch.int64), persistent=False)

    @property
    def num_codes(self) -> int:
        return self.codebook_size

    def _shape(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d, h, w) -> (..., d) with the level axis last, as float32."""
        if z.shape[1] != self.dim:
            raise ValueError(
                f"FSQ with levels {self.levels} needs {self.dim} channels, got {z.shape}"
            )
        return z.movedim(1, -1).float()

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash channels-last latents into (-(L-1)/2, (L-1)/2), shifted half a step if L is even.

        An even L has no level at 0, so the range is offset by 0.5 to land on L integer points.
        """
        half = (self._levels - 1) * (1 - 1e-3) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def quantise(self, z: torch.Tensor) -> torch.Tensor:
        """Channels-last latents -> levels scaled to [-1, 1], rounding straight-through."""
        bounded = self.bound(z)
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        return rounded / (self._levels // 2)

    def codes_to_indices(self, q: torch.Tensor) -> torch.Tensor:
        """Scaled levels (..., d) -> token ids (...): mixed-radix digits q_i + L_i // 2."""
        digits = torch.round(q * (self._levels // 2) + self._levels // 2).to(torch.int64)
        return (digits * self._basis).sum(-1)

    def indices_to_codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (...) -> scaled levels (..., d)."""
        digits = (tokens[..., None] // self._basis) % self._levels.to(torch.int64)
        return (digits - self._levels // 2) / (self._levels // 2)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        return self.codes_to_indices(self.quantise(self._shape(z)))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.indices_to_codes(tokens).movedim(-1, 1)

    def forward(
        self, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        q = self.quantise(self._shape(z))
        idx = self.codes_to_indices(q.detach())
        counts = torch.bincount(idx.flatten(), minlength=self.codebook_size).float()
        p = counts / counts.sum()
        terms = {
            "commit": z.new_zeros((), dtype=torch.float32),
            "perplexity": torch.exp(-(p * torch.log(p + 1e-10)).sum()),
            "usage": (counts > 0).float().mean(),
        }
        return q.movedim(-1, 1).to(z.dtype), idx, terms
