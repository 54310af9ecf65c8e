"""Masked dynamics that reads a state-space memory: the latent grid's cells under the next view.

The model is :class:`~.memory_dynamics_model.MemoryDynamicsModel` (Stage III's masked dynamics
model plus a memory reader) with its memory replaced: instead of M retrieved frames, a
:class:`~.latent_grid.LatentGrid` (a persistent S x S grid of latent cells, aligned with the world,
updated once per frame by a gated recurrence) is read at the N cells of the view about to be drawn.
Po et al. ("Long-Context State-Space Video World Models", arXiv 2505.20171) read an SSM state
beside dense attention over the last frames; here the state is read by that attention and by the
cell it describes, the two paths of the retrieval memory:

- **one memory frame** of N continuous tokens, one per target cell, attended to by the frame being
  predicted (the same block-causal mask as the retrieval memory with M = 1):

      e_mem(cell) = mem_in(s(cell)) + mem_age(bucket of t - t_w(cell)) + mem_pos(cell) + mem_slot

  (``mem_blank`` instead of the first two where the cell was never written);
- **the cell read**: the frame being predicted gets, at each cell the state has written,

      e_target(cell) += read_proj(s(cell)) + read_age(bucket of t - t_w(cell))

  with ``read_proj`` and ``read_age`` starting at zero, so the cell read of a fresh model adds
  nothing. A read of a batch whose grids hold nothing is no memory at all, and the model is then
  Stage III's, logit for logit.

The grid's own weights (the token embedding and the gated update) are the model's, so they train
with it and ship in its checkpoint. Training backpropagates through the scan of the grid over a
walk (:mod:`.state_recipe`); play updates it one frame at a time (:mod:`.state_memory_engine`).

Shapes: B batch, S x S grid, D_s state channels, F = W + 1 frames per window, h x w token grid,
N = h * w tokens per frame, D model width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hitchhiker.masks.core import CoreConfig
from hitchhiker.memory.latent_grid import GridState, LatentGrid
from hitchhiker.memory.memory_dynamics_model import MemoryDynamicsModel


@dataclass
class StateRead:
    """What the grid holds under one view per batch element: presented as one memory frame."""

    state: torch.Tensor
    """(B, N, D_s) float: the latent cell under each view cell."""
    age: torch.Tensor
    """(B, N) long: steps since the cell was last written (>= 1; large where never written)."""
    written: torch.Tensor
    """(B, N) bool: the cell was ever written."""

    @property
    def frames(self) -> int:
        """Memory frames read: one, or none when no grid of the batch holds anything."""
        return int(bool(self.written.any()))

    @staticmethod
    def cat(reads: list[StateRead]) -> StateRead:
        """Reads of several batches, one after another along the batch."""
        return StateRead(*(torch.cat([getattr(r, k) for r in reads]) for k in StateRead.KEYS))

    KEYS = ("state", "age", "written")


class StateMemoryModel(MemoryDynamicsModel):
    """Stage III's dynamics model plus a latent grid and its reader (see the module); it starts
    from a trained one by :meth:`start_from` (the grid and its reader fresh).

    ``grid_size`` S, ``channels`` D_s and ``aligned`` ("world" or "screen") shape the grid."""

    def __init__(
        self,
        cfg: CoreConfig,
        actions: int,
        context: int,
        grid: tuple[int, int],
        grid_size: int = 64,
        channels: int = 32,
        aligned: str = "world",
        oldest_age: int | None = None,
    ):
        super().__init__(cfg, actions, context, grid, memory_frames=1, oldest_age=oldest_age)
        # the relative pose and the token tables of the retrieval reader: a state read is already
        # in the target view, and holds vectors, not tokens
        del self.mem_row, self.mem_col, self.read_tok
        self.mem_grid = LatentGrid(cfg.vocab_size, self.grid, grid_size, channels, aligned)
        self.mem_in = nn.Linear(channels, cfg.dim)
        self.mem_blank = nn.Parameter(torch.zeros(cfg.dim))
        self.read_proj = nn.Linear(channels, cfg.dim)
        nn.init.zeros_(self.read_proj.weight)  # a fresh cell read adds nothing: Stage III's model
        nn.init.zeros_(self.read_proj.bias)

    def empty(self, batch: int) -> GridState:
        """B grids that remember nothing, on the model's device."""
        return self.mem_grid.empty(batch, self.pos.device)

    def recall(self, mem: GridState, poses, step) -> StateRead:
        """The read of the views at ``poses`` (B, 2) for the frame of ``step`` (int or (B,))."""
        state, last = self.mem_grid.read(mem, poses)
        step = torch.as_tensor(step, device=last.device).long()
        written = last >= 0
        age = torch.where(written, step.view(-1, 1) - last, torch.full_like(last, 2**30))
        return StateRead(state, age.clamp_min(1), written)

    def embed_memory(self, memory: StateRead) -> torch.Tensor:
        """(B, N, D): the state of each cell, its age, the cell and the memory's slot vector."""
        b, n, _ = memory.state.shape
        if n != self.cfg.seq_len or memory.written.shape != (b, n):
            raise ValueError(
                f"expected a state read of {self.cfg.seq_len} cells; got state "
                f"{tuple(memory.state.shape)}, written {tuple(memory.written.shape)}"
            )
        x = self.mem_in(memory.state) + self.mem_age(self.bucket_of(memory.age))
        x = torch.where(memory.written[..., None], x, self.mem_blank)
        return x + self.mem_pos + self.mem_slot

    def cell_read(self, memory: StateRead) -> torch.Tensor:
        """(B, N, D): at each written cell, its state and age through the zero-started reader."""
        x = self.read_proj(memory.state) + self.read_age(self.bucket_of(memory.age))
        return x * memory.written[..., None]
