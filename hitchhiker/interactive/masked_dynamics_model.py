"""Masked dynamics (Genie, MineWorld): the next frame's tokens from the last frames and an action.

Bruce et al., "Genie: Generative Interactive Environments" (ICML 2024); Guo et al., "MineWorld"
(2025). The Stage I tokenizer turns each 64x64 frame into an h x w grid of codes; this model reads
the tokens of the last W frames plus the (hidden) tokens of the next one and fills the hidden ones
in, MaskGIT style, conditioned on the action that leads to that frame:

    p(z[t+1] | z[t-W+1..t], a[t-W+1..t])        z: a frame's N = h * w tokens,  a: an action

One sequence holds the F = W + 1 frames, frame after frame (F * N tokens). A token's embedding is

    e = tok(z) + pos(cell) + time(frame slot) + act(action that led to this frame)

with a learned spatial position (N cells, the core's position table, started from 2-D sine-cosine
features so that heads copying from a neighbouring cell are easy to find), a frame-time embedding (the
core's modality table, one row per slot) and an action embedding (the world's 6 actions, or the
latent actions of :mod:`.latent_action_model`, plus a "none" row for the first slot, whose action lies
outside the window). Attention is *block-causal*: bidirectional within a frame, causal across
frames (frame i attends to frames j <= i), so the context never sees the frame being predicted
and a frame's keys and values do not depend on what follows it — the property that lets the
engine (:mod:`.masked_dynamics_engine`) run the context once per frame into a frozen ``KVCache``.

The recipe that trains it (data, objective, augmentations, config) is :mod:`.masked_dynamics_recipe`.

Shapes: B batch, F = W + 1 frames per window, h x w token grid, N = h * w tokens per frame,
V codebook size, A actions (+ 1 "none"), D model width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hitchhiker.masks.core import CoreConfig, KVCache, MaskedTokenModel


def block_causal_mask(frames: int, tokens: int, device=None) -> torch.Tensor:
    """(F N, F N) bool, True = may attend: within a frame all, across frames only to the past."""
    frame = torch.arange(frames * tokens, device=device) // tokens
    return frame[None, :] <= frame[:, None]


def teacher_forcing_mask(frames: int, tokens: int, device=None) -> torch.Tensor:
    """The training mask of [clean slots 0..F-2 | hidden slots 1..F-1] ((2F-2) N square, bool).

    Clean frames attend block-causally among themselves; the hidden copy of slot j attends to the
    clean slots < j and to itself: for j = F-1 exactly what the engine computes.
    """
    c = torch.arange(frames - 1, device=device)
    clean_rows = torch.cat([c[None] <= c[:, None], torch.zeros_like(c[None] <= c[:, None])], 1)
    hidden_rows = torch.cat([c[None] <= c[:, None], torch.eye(frames - 1, device=device).bool()], 1)
    blocks = torch.cat([clean_rows, hidden_rows])
    return blocks.repeat_interleave(tokens, 0).repeat_interleave(tokens, 1)


def grid_sincos(h: int, w: int, dim: int) -> torch.Tensor:
    """(h w, dim) 2-D sine-cosine positions (MAE): half the channels for the row, half the column.

    A start for the learned spatial table: "the cell one row up" is then a fixed rotation of these
    features, so attention heads that copy from a shifted cell are easy to find.
    """
    quarter = dim // 4
    freq = 1.0 / 100 ** (torch.arange(quarter) / max(1, quarter))

    def axis(pos):
        angle = pos[:, None].float() * freq[None]
        return torch.cat([angle.sin(), angle.cos()], 1)

    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    out = torch.cat([axis(rows.flatten()), axis(cols.flatten())], 1)
    return F.pad(out, (0, dim - out.shape[1]))


class DynamicsModel(MaskedTokenModel):
    """Token ids of F frames (B, F, N) and their actions (B, F) -> logits (B, F, N, V).

    The core's position table (``seq_len = N``) is the spatial position, its modality table
    (``modalities = F``) the frame-time embedding; ``act`` adds the action. ``actions[:, s]`` is the
    action that led to the frame in slot s; ``none_action`` (= number of actions) marks a slot
    whose action is unknown (the first of a window).
    """

    def __init__(self, cfg: CoreConfig, actions: int, context: int, grid: tuple[int, int]):
        if cfg.modalities != context + 1:
            raise ValueError(f"modalities must be context + 1 = {context + 1} (one per frame slot)")
        if grid[0] * grid[1] != cfg.seq_len:
            raise ValueError(f"grid {grid} holds {grid[0] * grid[1]} tokens, not {cfg.seq_len}")
        super().__init__(cfg)
        self.context, self.num_actions, self.none_action = context, actions, actions
        self.grid = tuple(grid)
        self.act = nn.Embedding(actions + 1, cfg.dim)
        nn.init.normal_(self.act.weight, std=0.02)
        with torch.no_grad():
            self.pos.copy_(0.1 * grid_sincos(*grid, cfg.dim)[None])
        self._masks: dict[tuple, torch.Tensor] = {}

    def _mask(self, kind: str, frames: int, device) -> torch.Tensor:
        key = (kind, frames, str(device))  # built once per size and device
        if key not in self._masks:
            build = block_causal_mask if kind == "causal" else teacher_forcing_mask
            self._masks[key] = build(frames, self.cfg.seq_len, device)
        return self._masks[key]

    def embed(self, tokens, actions, slots) -> torch.Tensor:
        """(B, F N, D): token + spatial position + frame time (``slots`` (F,)) + action."""
        b, f, n = tokens.shape
        x = self.tok(tokens) + self.pos[:, None] + self.modality(slots)[None, :, None]
        return (x + self.act(actions)[:, :, None]).view(b, f * n, -1)

    def hidden(self, tokens, actions, slot: int = 0, cache: KVCache | None = None, add=None):
        """Core output (B, F N, D) of frames sitting in slots ``slot .. slot + F - 1``.

        With a ``cache`` holding the earlier slots, the new frames attend to all of them (they are
        all in the past) and block-causally among themselves. ``add`` (B, F N, D), if given, is
        added to the frames' embeddings (Stage IV's memory writes what it remembers there).
        """
        b, f, n = self._check(tokens, actions, slot)
        x = self.embed(tokens, actions, torch.arange(slot, slot + f, device=tokens.device))
        if add is not None:
            x = x + add
        past = len(cache) if cache is not None else 0
        mask = None
        if f > 1:
            mask = self._mask("causal", f, tokens.device)
            if past:
                mask = torch.cat([mask.new_ones(f * n, past), mask], dim=1)
        return self.core(x, attn_mask=mask, cache=cache)

    def fill_context(self, tokens, actions, cache: KVCache) -> torch.Tensor:
        """Fill an empty ``cache`` with the W context frames (B, W, N) and return the core output
        (B, N, D) of the last one: the numbers of ``hidden(tokens, actions, 0, cache)``, computed
        frame by frame. Frame s, when it arrives, attends to exactly the frames 0..s the cache
        holds (block-causal without a mask: a dense kernel), and the frames before the last only
        leave their keys and values in the last block (nobody reads their output); on a 2-core
        CPU this is about a fifth faster than the masked pass (the dream's imagined steps)."""
        b, w, n = self._check(tokens, actions, 0)
        if len(cache) or cache.frozen:
            raise ValueError("fill_context fills an empty KV cache that is not frozen")
        x = self.embed(tokens, actions, torch.arange(w, device=tokens.device)).view(b, w, n, -1)
        for s in range(w):
            out = self.core(x[:, s], cache=cache, keys_only=s < w - 1)
        return out

    def forward(self, tokens, actions, slot=0, cache=None, hide=None, targets=None):
        """Logits (B, F, N, V) of every frame; or, in training with ``hide`` (B, F-1, N) bool,
        logits (B, F-1, N, V) of slots 1..F-1, each predicted from the context frames ``tokens``
        before it, with its ``hide`` positions of ``targets`` (default ``tokens[:, 1:]``) masked:
        every frame of the window is a target in one pass."""
        b, f, n = tokens.shape
        if hide is None:
            return self.head(self.hidden(tokens, actions, slot, cache)).view(b, f, n, -1)
        self._check(tokens, actions, 0)
        if hide.shape != (b, f - 1, n) or hide.dtype != torch.bool:
            raise ValueError(f"hide must be bool {(b, f - 1, n)}; got {tuple(hide.shape)}")
        slots = torch.arange(f, device=tokens.device)
        targets = tokens[:, 1:] if targets is None else targets
        hidden = torch.where(hide, self.mask_id, targets)
        x = torch.cat(
            [
                self.embed(tokens[:, :-1], actions[:, :-1], slots[:-1]),
                self.embed(hidden, actions[:, 1:], slots[1:]),
            ],
            1,
        )
        y = self.core(x, attn_mask=self._mask("teacher", f, tokens.device))
        return self.head(y[:, (f - 1) * n :]).view(b, f - 1, n, -1)

    def _check(self, tokens, actions, slot):
        if tokens.ndim != 3 or tokens.shape[2] != self.cfg.seq_len:
            raise ValueError(
                f"expected token ids (B, F, {self.cfg.seq_len}); got {tuple(tokens.shape)}"
            )
        b, f, n = tokens.shape
        if actions.shape != (b, f):
            raise ValueError(f"expected actions shaped {(b, f)}; got {tuple(actions.shape)}")
        if slot < 0 or slot + f > self.context + 1:
            raise ValueError(f"frames in slots {slot}..{slot + f - 1} exceed {self.context + 1}")
        if int(tokens.min()) < 0 or int(tokens.max()) > self.mask_id:
            raise ValueError(f"token ids must lie in [0, {self.mask_id}] ([MASK] = {self.mask_id})")
        if int(actions.min()) < 0 or int(actions.max()) > self.none_action:
            raise ValueError(f"actions must lie in [0, {self.none_action}] (none = last)")
        return b, f, n
