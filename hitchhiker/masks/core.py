"""The one transformer core of the course: blocks, a KV cache, and a masked-token model.

Every sequence model of the road is built on this file, with no copies:

* Stage I: MAE's encoder and decoder (:mod:`.mae`), the masked text model (:mod:`.text`), MaskGIT
  and its autoregressive baseline (:mod:`.maskgit`, :mod:`.autoregressive`);
* Stage II: the unified model over [caption tokens | view tokens];
* Stage III: the dynamics model (attention within a frame, causal across frames, via ``attn_mask``).

A block is the pre-norm transformer block of GPT-2 / ViT:

    x = x + Attn(LN(x))          Attn(Q, K, V) = softmax(Q K^T / sqrt(d_head) + mask) V
    x = x + MLP(LN(x))           MLP = Linear(D, 4D) -> GELU -> Linear(4D, D)

Attention runs through ``torch.nn.functional.scaled_dot_product_attention``, which picks a fused
kernel (flash / memory-efficient) where the device has one. Bidirectional by default (BERT, MAE,
MaskGIT see the whole sequence); ``is_causal=True`` makes it autoregressive (GPT), and an explicit
boolean ``attn_mask`` (True = may attend) expresses anything in between.

Where a token sits is told by a learned absolute position embedding, and optionally also by
*rotary* position embedding on part of each head (RoPE: Su et al., "RoFormer", 2021; partial
rotation as in GPT-NeoX). RoPE turns the first r of a head's d dims, pair by pair, by the angle
m * theta_j of the token's position m (theta_j = 10000^(-2j / r)), in queries and keys alike, so

    <R(m) q, R(n) k> = <q, R(n - m) k>

depends on the offset n - m alone: "look four tokens to my right" is one pattern wherever the
query sits. The unrotated d - r dims still match by content and absolute position. Stage II needs
both (``rotary`` in :class:`CoreConfig`; 0 turns it off, as in every model before it).

:class:`MaskedTokenModel` wraps the core for discrete tokens: a token embedding with two extra
rows — a learned ``[MASK]`` token (``mask_id = vocab_size``) and a ``[BOS]`` token
(``bos_id = vocab_size + 1``) for autoregressive use — plus learned position and modality
embeddings, and a head that scores the ``vocab_size`` real tokens.

Shapes: B batch, N sequence length (tokens), D model width, h heads, d = D / h head width,
V vocabulary size, M number of modalities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class KVCache:
    """Keys and values of earlier positions, one (k, v) pair per layer: (B, h, N_past, d) each.

    Autoregressive sampling feeds one new token per step; with the cache each step costs O(N)
    attention instead of recomputing the whole prefix (O(N^2) per step).

    A *frozen* cache is read but never grown: parallel decoders (MaskGIT-style dynamics) compute
    the context once, freeze it, and let every decoding step attend to it without appending the
    still-changing tokens of the frame being decoded.
    """

    def __init__(self) -> None:
        self.layers: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        self.frozen = False

    def __len__(self) -> int:
        """Number of cached positions."""
        return 0 if not self.layers or self.layers[0] is None else self.layers[0][0].shape[2]

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's (k, v) for ``layer``; return all keys and values so far."""
        while len(self.layers) <= layer:
            self.layers.append(None)
        old = self.layers[layer]
        if old is not None:
            k, v = torch.cat([old[0], k], dim=2), torch.cat([old[1], v], dim=2)
        if not self.frozen:
            self.layers[layer] = (k, v)
        return k, v


def rotary_dims(head_dim: int, rotary: float) -> int:
    """r: how many of a head's ``head_dim`` dims RoPE turns (an even number; 0 when off)."""
    if not 0.0 <= rotary <= 1.0:
        raise ValueError(
            f"rotary is the share of each head that RoPE turns, in [0, 1]; got {rotary}"
        )
    return 2 * int(head_dim * rotary / 2)


def rotary_angles(positions: torch.Tensor, dims: int, base: float = 10000.0):
    """(cos, sin), each (N, r / 2), of the angles m * theta_j for positions m (N,)."""
    theta = base ** (-torch.arange(0, dims, 2, device=positions.device).float() / dims)
    angles = positions.float()[:, None] * theta[None, :]
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn the first r dims of x (B, h, N, d) pair by pair (halves of r, as in GPT-NeoX)."""
    half = cos.shape[-1]
    x1, x2, rest = x[..., :half], x[..., half : 2 * half], x[..., 2 * half :]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], -1)


class Attention(nn.Module):
    """Multi-head self-attention on the fused SDPA kernel, optionally with partial RoPE."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} must be divisible by the number of heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x,
        attn_mask=None,
        is_causal=False,
        cache: KVCache | None = None,
        layer: int = 0,
        angles: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        """``angles``: RoPE's (cos, sin) of the N tokens' positions, each (N, r / 2); None: no
        RoPE (the core passes them, see :meth:`TransformerCore.angles`)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if angles is not None:  # keys enter the cache already turned, at their own positions
            q, k = rotate(q, *angles), rotate(k, *angles)
        if cache is not None:
            old = cache.layers[layer] if len(cache.layers) > layer else None
            past = 0 if old is None else old[0].shape[2]
            k, v = cache.update(layer, k, v)
            if (
                is_causal and past
            ):  # new queries see every cached key and the causal part of the new
                attn_mask = torch.ones(n, past + n, dtype=torch.bool, device=x.device).tril(past)
                is_causal = False
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.proj(y.transpose(1, 2).reshape(b, n, d))

    def remember(self, x, cache: KVCache, layer: int, angles=None) -> None:
        """Only append x's keys and values to ``cache`` (what positions whose output nobody reads
        leave for later queries): the query, the attention and the projection are skipped."""
        b, n, d = x.shape
        _, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if angles is not None:
            k = rotate(k, *angles)
        cache.update(layer, k, v)


class Block(nn.Module):
    """Pre-norm transformer block: attention then MLP, each added back to the residual stream."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, x, attn_mask=None, is_causal=False, cache=None, layer=0, angles=None):
        x = x + self.attn(self.norm1(x), attn_mask, is_causal, cache, layer, angles)
        return x + self.mlp(self.norm2(x))


class TransformerCore(nn.Module):
    """A stack of blocks and a final LayerNorm: (B, N, D) -> (B, N, D)."""

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        rotary: float = 0.0,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.rotary_dims = rotary_dims(dim // heads, rotary)
        self._angles: tuple[torch.Tensor, torch.Tensor] | None = None  # a table, not weights
        self.norm = nn.LayerNorm(dim)
        self.apply(init_weights)

    def forward(
        self,
        x,
        attn_mask=None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        start: int = 0,
        keys_only: bool = False,
    ):
        """``start``: position of the first of the N tokens (what RoPE turns by; cached decoding
        passes the number of cached positions). ``keys_only``: the tokens only fill ``cache``
        (the last block stores their keys and values and stops; returns None): a cached context
        whose outputs nobody reads skips the last block's attention and MLP."""
        if x.ndim != 3:
            raise ValueError(f"expected (B, N, D) activations; got {tuple(x.shape)}")
        if keys_only and (cache is None or cache.frozen):
            raise ValueError("keys_only fills a KV cache: pass one that is not frozen")
        angles = self.angles(start, x.shape[1], x.device) if self.rotary_dims else None
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            if keys_only and i == last:
                block.attn.remember(block.norm1(x), cache, i, angles)
                return None
            x = block(x, attn_mask, is_causal, cache, i, angles)
        return self.norm(x)

    def angles(self, start: int, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE's (cos, sin) for positions start .. start + n - 1, cut from a table that is built
        once (and grown when needed), so cached decoding does not recompute it every token."""
        table = self._angles
        if table is None or table[0].device != torch.device(device) or len(table[0]) < start + n:
            size = max(start + n, 2 * len(table[0]) if table is not None else 256)
            table = rotary_angles(torch.arange(size, device=device), self.rotary_dims)
            self._angles = table
        return table[0][start : start + n], table[1][start : start + n]


def init_weights(m: nn.Module) -> None:
    # GPT-2 / ViT style: small normal weights, zero biases, unit LayerNorm.
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


@dataclass
class CoreConfig:
    """Size of a masked-token model."""

    vocab_size: int = 64
    """Number of real token ids (the [MASK] and [BOS] ids come after them)."""
    seq_len: int = 64
    """Longest sequence the position embedding covers, N."""
    dim: int = 128
    """Model width D."""
    depth: int = 4
    """Number of transformer blocks."""
    heads: int = 4
    """Attention heads h (dim must be divisible by heads)."""
    mlp_ratio: float = 4.0
    """Hidden width of each MLP as a multiple of dim."""
    dropout: float = 0.0
    """Dropout in attention and MLP while training."""
    modalities: int = 1
    """Number of modality embeddings M (Stage II: text and image)."""
    rotary: float = 0.0
    """Share of each head's dims turned by rotary position embedding (0: none; learned absolute
    positions only)."""


class MaskedTokenModel(nn.Module):
    """Token ids (B, N) -> logits (B, N, V): the masked (or, with is_causal, autoregressive) model."""

    def __init__(self, cfg: CoreConfig):
        super().__init__()
        self.cfg = cfg
        self.mask_id, self.bos_id = cfg.vocab_size, cfg.vocab_size + 1
        self.tok = nn.Embedding(cfg.vocab_size + 2, cfg.dim)
        self.pos = nn.Parameter(torch.zeros(1, cfg.seq_len, cfg.dim))
        self.modality = nn.Embedding(cfg.modalities, cfg.dim)
        self.core = TransformerCore(
            cfg.dim, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.dropout, cfg.rotary
        )
        self.head = nn.Linear(cfg.dim, cfg.vocab_size)
        nn.init.normal_(self.pos, std=0.02)
        self.apply(init_weights)

    def forward(
        self, tokens, modality=None, attn_mask=None, is_causal=False, cache=None, start: int = 0
    ):
        """``tokens`` (B, N) ids in [0, V + 2); ``modality`` (N,) or (B, N) ids; ``start``: position of
        the first token (for cached autoregressive decoding)."""
        if tokens.ndim != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"expected integer token ids shaped (B, N); got {tuple(tokens.shape)} {tokens.dtype}"
            )
        n = tokens.shape[1]
        if start + n > self.cfg.seq_len:
            raise ValueError(f"sequence of {start + n} tokens exceeds seq_len={self.cfg.seq_len}")
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= self.cfg.vocab_size + 2:
            raise ValueError(
                f"token ids must lie in [0, {self.cfg.vocab_size + 2}) (vocab {self.cfg.vocab_size}, then "
                f"[MASK]={self.mask_id}, [BOS]={self.bos_id}); got min {lo}, max {hi}"
            )
        x = self.tok(tokens) + self.pos[:, start : start + n]
        if modality is None:
            modality = torch.zeros(n, dtype=torch.long, device=tokens.device)
        x = x + self.modality(modality)
        return self.head(self.core(x, attn_mask, is_causal, cache, start))


class TokenGridModel(MaskedTokenModel):
    """A :class:`MaskedTokenModel` over an h x w grid of image tokens (read in raster order).

    MaskGIT and its autoregressive baseline both read and write whole token grids; they differ only
    in how they decode (:mod:`.maskgit`, :mod:`.autoregressive`).
    """

    def __init__(self, cfg: CoreConfig, grid: tuple[int, int]):
        h, w = grid
        if h * w != cfg.seq_len:
            raise ValueError(f"grid {h}x{w} holds {h * w} tokens but seq_len is {cfg.seq_len}")
        super().__init__(cfg)
        self.grid = (h, w)
