"""Masked dynamics that reads a memory: past frames, retrieved by where they were seen.

WorldMem (Xiao et al., arXiv 2504.12369) keeps a bank of past frames with their poses and times and
lets the frame being generated attend to a few of them; Context-as-Memory (Yu et al., arXiv
2506.03141) retrieves the past frames whose view overlaps the one about to be generated. Both give
the retrieved frames a *relative* pose (WorldMem's relative pose beats an absolute one) and an age.
This module is that reader, on the one masked dynamics model of Stage III
(:mod:`hitchhiker.interactive.masked_dynamics_model`), which it extends and whose weights it starts
from: nothing of the dynamics is copied.

In a tile world a relative pose is exact. A memory frame stored at pose ``p_m`` and read for the
target view at pose ``p`` shows, at its cell (r, c), the map cell that the target view shows at

    (r, c) + (p_m - p)                                   (offset = p_m - p, in tiles)

so each memory frame is *warped* into the target view: its tokens moved by the offset, cells that
fall outside the view dropped, target cells it does not cover left as [MASK]. A memory token is then
embedded like a token of the frame being predicted, at the target cell it describes:

    e = tok(z) + mem_pos(cell) + age(bucket of t - t_m) + rel(offset) + mem_slot

``mem_pos`` starts as a copy of the dynamics' own spatial table, so "the memory token at my cell"
is, from the first step of fine-tuning, the same position a token already knows; ``rel`` embeds
the offset's row and column, ``age`` the log2 bucket of how long ago the frame was seen.

The same memory is also *written into the cell it describes* (the cell read): the frame being
predicted gets, at each target cell the memory covers, the embedding of the freshest remembered
token there and of its age,

    e_target(cell) += read_tok(z_fresh(cell)) + read_age(bucket of its age)

(both tables start at zero, so a fresh model is still Stage III's). Why both: attention alone must
learn to find, among M N memory tokens, the one whose position matches its own, and a tiny model
fine-tuned for a few hundred steps did not (a copy task with random tokens stayed at chance,
ln 16, after 600 steps); the warp already did the matching exactly, so the cell read hands the
answer to the cell that needs it, and attention is left to judge it (a sheep that moved, an edit).
Freshest first is the update rule: an edit seen later overwrites what was remembered.

Attention extends Stage III's block-causal mask with M memory frames in front:

    memory  -> memory                    (the memory frames read each other, nothing else)
    context -> context, block-causal     (exactly as without memory)
    target  -> memory + context + itself (only the frame being predicted reads the memory)

Only the last frame of the window is aligned with the retrieval, so only it reads the memory (in
training, the earlier hidden slots of the teacher-forced pass are predicted without it). With no
memory the model is the Stage III model, logit for logit.

Shapes: B batch, M memory frames, F = W + 1 frames per window, h x w token grid, N = h * w tokens
per frame, V codebook size, D model width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hitchhiker.interactive.masked_dynamics_model import (
    DynamicsModel,
    block_causal_mask,
    teacher_forcing_mask,
)
from hitchhiker.masks.core import CoreConfig, KVCache

AGE_BUCKETS = 9
"""Ages 1, 2-3, 4-7, ..., 128-255, and 256 or more share the last bucket."""


def age_bucket(age: torch.Tensor, buckets: int = AGE_BUCKETS) -> torch.Tensor:
    """floor(log2(age)) clamped to 0..buckets-1 (ages below 1 count as 1)."""
    a = age.long().clamp_min(1).float()
    return torch.log2(a).floor().long().clamp(0, buckets - 1)


@dataclass
class Memory:
    """M memory frames per batch element, already warped into the target view.

    Built from a frame bank's retrieval by :func:`warp_memory`; a slot with nothing in it holds
    only [MASK] tokens."""

    tokens: torch.Tensor
    """(B, M, N) token ids, [MASK] where the frame does not cover a target cell."""
    offset: torch.Tensor
    """(B, M, 2) long, stored pose minus target pose (row, col), in tiles."""
    age: torch.Tensor
    """(B, M) long, steps since the frame was seen (>= 1)."""

    @property
    def frames(self) -> int:
        return self.tokens.shape[1]


def warp_memory(tokens, offset, age, known, grid, mask_id) -> Memory:
    """Warp M stored frames into the target view.

    ``tokens`` (B, M, h, w) ids as stored, ``offset`` (B, M, 2) stored pose minus target pose,
    ``age`` (B, M), ``known`` (B, M, h, w) bool: the stored cells worth reading (fresh, and in a
    retrieved slot). Target cell (r, c) of frame m gets the stored token at (r, c) - offset.
    """
    tokens, offset = torch.as_tensor(tokens).long(), torch.as_tensor(offset).long()
    known = torch.as_tensor(known, dtype=torch.bool, device=tokens.device)
    b, m, h, w = tokens.shape
    if (h, w) != tuple(grid):
        raise ValueError(f"memory frames must be token grids {tuple(grid)}; got {(h, w)}")
    if offset.shape != (b, m, 2) or known.shape != tokens.shape:
        raise ValueError(
            f"expected offset (B, M, 2) = {(b, m, 2)} and known (B, M, h, w) = {(b, m, h, w)}; "
            f"got {tuple(offset.shape)} and {tuple(known.shape)}"
        )
    rows = torch.arange(h, device=tokens.device)[None, None, :, None] - offset[..., 0, None, None]
    cols = torch.arange(w, device=tokens.device)[None, None, None, :] - offset[..., 1, None, None]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # (B, M, h, w) target cells
    src = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).flatten(2)  # stored cell per target
    picked = tokens.flatten(2).gather(2, src)
    ok = inside.flatten(2) & known.flatten(2).gather(2, src)
    warped = torch.where(ok, picked, torch.full_like(picked, mask_id))
    age = torch.as_tensor(age, device=tokens.device).long().view(b, m)
    return Memory(warped, offset, age)


def memory_mask(memory: int, frames: int, tokens: int, device=None) -> torch.Tensor:
    """Training mask of [memory (M N) | clean slots 0..F-2 | hidden slots 1..F-1] (bool, square).

    The teacher-forcing mask of Stage III for the window, memory visible to the last hidden slot
    only, and memory frames reading each other."""
    window = teacher_forcing_mask(frames, tokens, device)
    mn, wn = memory * tokens, window.shape[0]
    out = torch.zeros(mn + wn, mn + wn, dtype=torch.bool, device=device)
    out[:mn, :mn] = True
    out[mn:, mn:] = window
    out[mn + wn - tokens :, :mn] = True  # the last hidden slot: the frame the memory was read for
    return out


def context_mask(memory: int, frames: int, tokens: int, device=None) -> torch.Tensor:
    """Mask of [memory | W context frames] for the engine's cache: memory reads memory, the context
    is block-causal and never reads the memory (as in training)."""
    mn = memory * tokens
    window = block_causal_mask(frames, tokens, device)
    out = torch.zeros(mn + window.shape[0], mn + window.shape[0], dtype=torch.bool, device=device)
    out[:mn, :mn] = True
    out[mn:, mn:] = window
    return out


class MemoryDynamicsModel(DynamicsModel):
    """The Stage III dynamics model plus a memory reader: (tokens, actions, memory) -> logits.

    ``memory_frames`` M is how many retrieved frames it reads (fewer, or none, also work);
    ``oldest_age`` the oldest memory it was trained to read (older ones read as that old).
    """

    def __init__(
        self,
        cfg: CoreConfig,
        actions: int,
        context: int,
        grid: tuple[int, int],
        memory_frames: int,
        age_buckets: int = AGE_BUCKETS,
        oldest_age: int | None = None,
    ):
        if memory_frames < 1:
            raise ValueError(f"memory_frames must be >= 1; got {memory_frames}")
        super().__init__(cfg, actions, context, grid)
        h, w = self.grid
        self.memory_frames, self.age_buckets = memory_frames, age_buckets
        if oldest_age is not None and oldest_age < 1:
            raise ValueError(f"oldest_age must be >= 1 step or None; got {oldest_age}")
        self.oldest_age = oldest_age
        """Ages beyond this read as this: the oldest memory training showed the model (its walks'
        length), so that an older one gets an age embedding that was trained, not a fresh one
        (measured: 24 walks at K = 256 read 0.72 of the memory-needing tiles right with ages up to
        255, 0.94 with them read as 95)."""
        self.mem_pos = nn.Parameter(self.pos.detach().clone())
        self.mem_age = nn.Embedding(age_buckets, cfg.dim)
        self.mem_row = nn.Embedding(2 * h + 1, cfg.dim)
        self.mem_col = nn.Embedding(2 * w + 1, cfg.dim)
        self.mem_slot = nn.Parameter(torch.zeros(cfg.dim))
        for table in (self.mem_age, self.mem_row, self.mem_col):
            nn.init.normal_(table.weight, std=0.02)
        self.read_tok = nn.Embedding(cfg.vocab_size + 1, cfg.dim)  # + [MASK]: nothing remembered
        self.read_age = nn.Embedding(age_buckets, cfg.dim)
        for table in (self.read_tok, self.read_age):
            nn.init.zeros_(table.weight)  # a fresh reader adds nothing: Stage III's model

    def start_from(self, dynamics: DynamicsModel) -> MemoryDynamicsModel:
        """Take every weight of a trained Stage III model; the memory's cells start as its cells."""
        missing, unexpected = self.load_state_dict(dynamics.state_dict(), strict=False)
        own = ("mem_", "read_")
        if unexpected or any(not k.startswith(own) for k in missing):
            raise ValueError(
                f"{type(dynamics).__name__} does not match this model's shape: missing "
                f"{[k for k in missing if not k.startswith(own)]}, unexpected {unexpected}"
            )
        with torch.no_grad():
            self.mem_pos.copy_(self.pos)
        return self

    def bucket_of(self, age: torch.Tensor) -> torch.Tensor:
        """The age bucket the model reads for ``age`` (steps), ages past ``oldest_age`` as it."""
        if self.oldest_age is not None:
            age = age.clamp_max(self.oldest_age)
        return age_bucket(age, self.age_buckets)

    def embed_memory(self, memory: Memory) -> torch.Tensor:
        """(B, M N, D): token + target cell + age + relative pose + the memory's slot vector."""
        b, m, n = memory.tokens.shape
        if n != self.cfg.seq_len or m > self.memory_frames:
            raise ValueError(
                f"expected at most {self.memory_frames} memory frames of {self.cfg.seq_len} "
                f"tokens; got {tuple(memory.tokens.shape)}"
            )
        h, w = self.grid
        off = memory.offset
        rel = self.mem_row((off[..., 0] + h).clamp(0, 2 * h)) + self.mem_col(
            (off[..., 1] + w).clamp(0, 2 * w)
        )
        frame = rel + self.mem_age(self.bucket_of(memory.age)) + self.mem_slot
        x = self.tok(memory.tokens) + self.mem_pos[:, None] + frame[:, :, None]
        return x.view(b, m * n, -1)

    def cell_read(self, memory: Memory) -> torch.Tensor:
        """(B, N, D): at each target cell, the freshest memory token there and its age, embedded
        (zero where no memory frame covers the cell)."""
        tokens = memory.tokens
        covered = tokens != self.mask_id  # (B, M, N)
        age = memory.age[:, :, None].expand_as(tokens).masked_fill(~covered, 2**62)
        fresh = age.argmin(1, keepdim=True)  # (B, 1, N): the freshest frame covering the cell
        token = tokens.gather(1, fresh)[:, 0]
        seen = age.gather(1, fresh)[:, 0].clamp_max(2**30)
        x = self.read_tok(token) + self.read_age(self.bucket_of(seen))
        return x * covered.any(1)[..., None]

    def remember(self, tokens, actions, memory: Memory | None, cache: KVCache) -> None:
        """Fill ``cache`` with the memory and the W context frames (slots 0..W-1): the engine then
        decodes the next frame against it (``forward(x, a, slot=W, cache=cache)``)."""
        if memory is None or memory.frames == 0:
            self.hidden(tokens, actions, 0, cache)
            return
        b, f, n = self._check(tokens, actions, 0)
        x = torch.cat(
            [
                self.embed_memory(memory),
                self.embed(tokens, actions, torch.arange(f, device=tokens.device)),
            ],
            1,
        )
        self.core(x, attn_mask=context_mask(memory.frames, f, n, tokens.device), cache=cache)

    def forward(self, tokens, actions, slot=0, cache=None, hide=None, targets=None, memory=None):
        """As :meth:`DynamicsModel.forward`; in training (``hide`` given) the last target slot also
        reads ``memory`` (retrieved for it). In play the context and memory went into ``cache``
        through :meth:`remember`, and the one frame being drawn reads ``memory``'s cells."""
        if memory is None or memory.frames == 0:
            return super().forward(tokens, actions, slot, cache, hide, targets)
        if hide is None:
            if cache is None or tokens.shape[1] != 1:
                raise ValueError(
                    "in play, pass one frame, with the memory and context put in a cache by "
                    "remember()"
                )
            b, f, n = tokens.shape
            add = self.cell_read(memory)
            return self.head(self.hidden(tokens, actions, slot, cache, add=add)).view(b, f, n, -1)
        b, f, n = self._check(tokens, actions, 0)
        if hide.shape != (b, f - 1, n) or hide.dtype != torch.bool:
            raise ValueError(f"hide must be bool {(b, f - 1, n)}; got {tuple(hide.shape)}")
        slots = torch.arange(f, device=tokens.device)
        targets = tokens[:, 1:] if targets is None else targets
        hidden = torch.where(hide, self.mask_id, targets)
        read = torch.zeros(b, (f - 1) * n, self.cfg.dim, device=tokens.device)
        read[:, -n:] = self.cell_read(memory)  # the last hidden slot: the frame read for
        x = torch.cat(
            [
                self.embed_memory(memory),
                self.embed(tokens[:, :-1], actions[:, :-1], slots[:-1]),
                self.embed(hidden, actions[:, 1:], slots[1:]) + read,
            ],
            1,
        )
        key = ("memory", memory.frames, f, str(tokens.device))
        if key not in self._masks:
            self._masks[key] = memory_mask(memory.frames, f, n, tokens.device)
        y = self.core(x, attn_mask=self._masks[key])
        return self.head(y[:, -(f - 1) * n :]).view(b, f - 1, n, -1)
