"""Latent actions (Genie): discover a small set of discrete actions from unlabelled play.

Bruce et al., "Genie: Generative Interactive Environments" (ICML 2024), section 2.1; the idea goes
back to ILPO (Edwards et al. 2019) and LAPO (Schmidt & Jiang 2024). Video from the internet has
frames but no action labels. A *latent action model* (LAM) infers them: an encoder looks at frame
t and frame t+1 and names the transition with one code from a codebook of K codes (K about the
number of real actions); a decoder must then predict frame t+1 from frame t and that code alone.
Both work on Stage I token grids z (h x w codes of the image tokenizer):

    a~_t = VQ(u),  u = W Enc([q | E z_t + E' z_t+1])_q       one of K codes per transition
    loss = - 1/N sum_i log p(z_t+1,i | Dec(E'' z_t + P e_a~))_i  +  beta ||u - sg(e_a~)||^2

(the encoder reads one token per cell, both frames' codes of that cell embedded and added, and a
learned query q whose output is projected onto the unit sphere, u; e_a~ is the chosen code; the
decoder adds the code to every token of frame t, as Genie does. The EMA vector quantiser and its
straight-through gradient are Stage I's, :mod:`hitchhiker.masks.quantizers`; for the first
``bypass_steps`` the decoder reads u unquantised, a warm-up that keeps the codebook from collapsing
onto one code.) Why do the codes come to mean actions? The decoder already
sees frame t, so what it cannot guess is *what changed*: the view scrolled one tile up, down, left
or right, a tree was cut, nothing happened. log2 K bits say exactly which, and are far too few for
the row of land a scroll reveals: that row is unpredictable from frame t, and no code helps with it.
Widen the bottleneck (4 codes of 64 per transition: :data:`.latent_action_recipe.VARIANTS`
``"leaky"``) and the encoder passes more than the action through it: the reconstruction loss drops (a little, and mostly
on the training maps), and the codes stop meaning actions: one action is spread over hundreds of
codes, each meaning "this action *and* this detail of frame t+1". That is Genie's warning, shown on
purpose in notebook 04.

This module holds the model, its loss and its inference helpers (the latent action of every
transition of recorded episodes). The recipe that trains and scores it (Config with presets,
VARIANTS, build, fit, evaluate) is :mod:`.latent_action_recipe`; :mod:`.action_agreement` scores the
codes against the true actions.

Shapes: B batch, h x w token grid, N = h * w tokens per frame, D model width, d code width,
K codes, k codes per transition (``action_tokens``), E episodes, T steps, V token vocabulary.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hitchhiker.devices import device_of
from hitchhiker.masks.core import TransformerCore, init_weights
from hitchhiker.masks.quantizers import EMAVectorQuantizer
from hitchhiker.tokens import encode_frames

# ----------------------------------------------------------------------------- the model


class GridPosition(nn.Module):
    """Position embeddings of F frames of h x w tokens: frame[f] + row[r] + col[c] -> (F*h*w, D).

    Factorised on purpose: a scroll by one tile is one step along one axis, the same step at every
    cell, which a row/column embedding states outright and a table of F*h*w free vectors must learn
    cell by cell from far more data.
    """

    def __init__(self, frames: int, h: int, w: int, dim: int):
        super().__init__()
        self.frame = nn.Parameter(torch.randn(frames, 1, 1, dim) * 0.02)
        self.row = nn.Parameter(torch.randn(1, h, 1, dim) * 0.02)
        self.col = nn.Parameter(torch.randn(1, 1, w, dim) * 0.02)

    def forward(self) -> torch.Tensor:
        return (self.frame + self.row + self.col).flatten(0, 2)


class LatentActionModel(nn.Module):
    """Encoder (z_t, z_t+1) -> k latent codes of K; decoder (z_t + codes) -> logits of z_t+1."""

    def __init__(self, cfg):
        """``cfg``: the recipe's :class:`~.latent_action_recipe.Config` (it checks the codebook
        and is bound to its tokenizer when built)."""
        super().__init__()
        cfg.tokens.require("the latent action model")
        self.cfg = cfg
        vocab, h, w = cfg.tokens.vocab_size, cfg.tokens.grid_h, cfg.tokens.grid_w
        self.grid = (h, w)
        k, d = cfg.action_tokens, cfg.dim
        self.frame_tokens, self.num_codes = h * w, cfg.codes**k
        # Encoder: [k queries | one token per cell: z_t and z_t+1 of that cell, embedded and added].
        self.enc_tok = nn.Embedding(vocab, d)
        self.enc_next = nn.Embedding(vocab, d)
        self.enc_pos = GridPosition(1, h, w, d)
        self.queries = nn.Parameter(torch.randn(1, k, d) * 0.02)
        self.encoder = TransformerCore(d, cfg.depth, cfg.heads, dropout=cfg.dropout)
        self.to_latent = nn.Linear(d, cfg.code_dim)
        self.quantizer = EMAVectorQuantizer(
            cfg.codes, cfg.code_dim, cfg.vq_decay, cfg.commitment, cfg.dead_after
        )
        # Training forwards so far (a buffer: saved with the weights and in trainer checkpoints).
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.int64))
        # Decoder: z_t with the k latent actions added at every position -> logits of z_t+1.
        self.dec_tok = nn.Embedding(vocab, d)
        self.dec_pos = GridPosition(1, h, w, d)
        self.from_latent = nn.Linear(k * cfg.code_dim, d)
        self.decoder = TransformerCore(d, cfg.decoder_depth, cfg.heads, dropout=cfg.dropout)
        self.head = nn.Linear(d, vocab)
        for m in (
            self.enc_tok,
            self.enc_next,
            self.to_latent,
            self.dec_tok,
            self.from_latent,
            self.head,
        ):
            init_weights(m)

    def _flat(self, tokens: torch.Tensor, what: str) -> torch.Tensor:
        """Token grids (B, h, w) or flat (B, N) -> (B, N) int64, checked."""
        n, v = self.frame_tokens, self.cfg.tokens.vocab_size
        if tokens.dtype not in (torch.int64, torch.int32) or tokens.ndim not in (2, 3):
            raise ValueError(
                f"{what} must be integer token ids shaped (B, {self.grid[0]}, {self.grid[1]}) or "
                f"(B, {n}); got {tokens.dtype} {tuple(tokens.shape)}"
            )
        flat = tokens.reshape(tokens.shape[0], -1).long()
        if flat.shape[1] != n:
            raise ValueError(f"{what} must hold {n} tokens per frame; got {tuple(tokens.shape)}")
        if flat.numel() and (flat.min() < 0 or flat.max() >= v):
            raise ValueError(f"{what} ids must lie in [0, {v}); got [{flat.min()}, {flat.max()}]")
        return flat

    def encode(self, tokens_t: torch.Tensor, tokens_t1: torch.Tensor) -> torch.Tensor:
        """Continuous latent actions (B, d, 1, k) before quantisation."""
        a, b = self._flat(tokens_t, "tokens_t"), self._flat(tokens_t1, "tokens_t1")
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"batch sizes differ: tokens_t {a.shape[0]}, tokens_t1 {b.shape[0]}")
        q = self.queries.expand(a.shape[0], -1, -1)
        # One token per cell (not 2N tokens, one per frame) halves the sequence; whether a cell
        # changed, and into what its neighbour was, is then one attention hop away.
        cells = self.enc_tok(a) + self.enc_next(b) + self.enc_pos()
        x = torch.cat([q, cells], 1)
        k = self.cfg.action_tokens
        u = self.to_latent(self.encoder(x)[:, :k])  # (B, k, d): read out at the queries only
        return u.transpose(1, 2)[:, :, None]  # the quantiser's (B, d, h=1, w=k) layout

    def decode(self, tokens_t: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """Logits (B, N, V) of frame t+1 from frame t and quantised latent actions (B, d, 1, k)."""
        a = self._flat(tokens_t, "tokens_t")
        # Genie's conditioning: the action is added to every token of frame t, so each position
        # knows at once where its next token comes from (a prepended action token would first have
        # to be found by attention: slower to learn, and easier to ignore).
        act = self.from_latent(latent.flatten(1))[:, None]  # (B, 1, D)
        return self.head(self.decoder(self.dec_tok(a) + self.dec_pos() + act))

    def forward(self, tokens_t: torch.Tensor, tokens_t1: torch.Tensor):
        """(logits (B, N, V) of frame t+1, codes (B, k), VQ terms): one training pass.

        For the first ``bypass_steps`` training passes the decoder reads the latent unquantised.
        Quantised from the start, the codes are seeded on latents of an untrained encoder, which
        barely differ, and the decoder learns to ignore a code that never varies: one code wins
        and nothing moves it. After the warm-up the latents already vary with what changed between
        the frames, and the codebook is seeded (k-means++) on them.
        """
        u = self.encode(tokens_t, tokens_t1)
        if self.training:
            self.trained_steps += 1
            if int(self.trained_steps) <= self.cfg.bypass_steps:
                codes = self.quantizer.indices(u)
                terms = {"commit": u.new_zeros(()), "perplexity": u.new_zeros(())}
                return self.decode(tokens_t, self.quantizer.bypass(u)), codes[:, 0], terms
        latent, codes, terms = self.quantizer(u)
        return self.decode(tokens_t, latent), codes[:, 0], terms

    def code_id(self, codes: torch.Tensor) -> torch.Tensor:
        """k codes (B, k) -> one transition id (B,) in [0, K^k): mixed radix, first code lowest."""
        radix = self.cfg.codes ** torch.arange(codes.shape[1], device=codes.device)
        return (codes * radix).sum(1)

    def codes_of(self, ids: torch.Tensor) -> torch.Tensor:
        """Transition ids (B,) -> their k codes (B, k); the inverse of :meth:`code_id`."""
        ids = torch.as_tensor(ids, dtype=torch.int64, device=self.queries.device).reshape(-1)
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.num_codes):
            raise ValueError(f"latent action ids must lie in [0, {self.num_codes}); got {ids}")
        radix = self.cfg.codes ** torch.arange(self.cfg.action_tokens, device=ids.device)
        return (ids[:, None] // radix) % self.cfg.codes

    @torch.no_grad()
    def infer(self, tokens_t: torch.Tensor, tokens_t1: torch.Tensor) -> torch.Tensor:
        """The latent action of each transition: ids (B,) in [0, num_codes)."""
        codes = self.quantizer.indices(self.encode(tokens_t, tokens_t1))[:, 0]
        return self.code_id(codes)

    @torch.no_grad()
    def predict(self, tokens_t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, N, V) of the next frame under chosen latent actions ``ids`` (B,) or one int."""
        a = self._flat(tokens_t, "tokens_t")
        codes = self.codes_of(ids)
        if len(codes) == 1:
            codes = codes.expand(a.shape[0], -1)
        if len(codes) != a.shape[0]:
            raise ValueError(f"got {len(codes)} latent actions for {a.shape[0]} frames")
        latent = self.quantizer.embed(codes[:, None])  # (B, d, 1, k)
        return self.decode(a, latent)


def lam_loss(model: LatentActionModel, tokens_t: torch.Tensor, tokens_t1: torch.Tensor):
    """Cross-entropy of every token of frame t+1, plus the commitment term: (loss, metrics)."""
    logits, _, terms = model(tokens_t, tokens_t1)
    target = tokens_t1.reshape(tokens_t1.shape[0], -1)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))
    acc = (logits.argmax(-1) == target).float().mean()
    metrics = {"ce": ce.detach(), "token_acc": acc.detach(), "perplexity": terms["perplexity"]}
    return ce + terms["commit"], metrics


@torch.no_grad()
def infer_tokens(model: LatentActionModel, tokens: torch.Tensor, batch: int = 512) -> np.ndarray:
    """Latent action ids (E, T) of every transition of episodes of token grids (E, T+1, h, w)."""
    model.eval()
    device = device_of(model)
    a = tokens[:, :-1].reshape(-1, *tokens.shape[2:])
    b = tokens[:, 1:].reshape(-1, *tokens.shape[2:])
    ids = [
        model.infer(a[i : i + batch].to(device), b[i : i + batch].to(device)).cpu()
        for i in range(0, len(a), batch)
    ]
    return torch.cat(ids).view(tokens.shape[0], -1).numpy()


def latent_actions_of(model, frames: np.ndarray, tokenizer) -> np.ndarray:
    """Latent action ids (E, T) of uint8 episodes (E, T+1, 64, 64, 3), tokenised by ``tokenizer``
    (the one the LAM was trained on)."""
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[1] < 2 or frames.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 episodes (E, T+1, H, W, 3); got {frames.dtype} {frames.shape}"
        )
    tokens = encode_frames(tokenizer, frames.reshape(-1, *frames.shape[2:]))
    return infer_tokens(model, tokens.view(*frames.shape[:2], *tokens.shape[1:]))
