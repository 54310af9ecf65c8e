"""A state-space memory: one latent grid, aligned with the world, updated once per frame.

A retrieval memory (:mod:`.frame_bank`) keeps every past frame and searches them; its bank grows
with the history. A state-space memory keeps a *fixed-size state* instead and folds each frame into
it as it comes: long-context state-space video world models (Po et al., "Long-Context State-Space
Video World Models", arXiv 2505.20171) and Mamba's selective scan (Gu & Dao, arXiv 2312.00752) do
this over time with a state whose update depends on the input. Here the state is laid out on the
map: an S x S torus of cells, each holding a D_s-vector, indexed by the *world* cell it remembers

    cell(view cell (r, c) at pose p) = ((p_row + r) mod S, (p_col + c) mod S)

so that a move of the explorer shifts where its view lands on the grid, not the grid itself. Each
frame (once, when it leaves the model's window) updates only the cells it shows, the explorer's own
cell left out (:func:`~.memory_engine.explorer_cell`), by a gated selective recurrence, GRU-like,
with x the embedding of the token seen there:

    g = sigmoid(W_g [x, s] + b_g),   u = tanh(W_u [x, s] + b_u),   s <- (1 - g) * s + g * u

and remembers the step it was last written (for an age). Reading is a gather of the N cells of the
view at a pose. Both cost the same at step 10 as at step 10,000: the state is S^2 D_s floats and
S^2 step counters whatever the history, and a frame touches N of its cells. The price is
forgetting by aliasing: two places S cells apart share a cell, and the later one overwrites the
earlier (a walk that strays more than S cells finds, where it started, what it saw S cells away).

The screen-aligned ablation (``aligned="screen"``) indexes by view cell alone, (r, c): the state
never shifts with the explorer, so after a move every cell holds what the *screen* showed there,
which is other land. Po et al.'s block-wise scan keeps one state per block of the screen, so it is
aligned this way too (their camera's pose is not an input); here it is the recurrent memory without
the pose, and it shows what the pose buys.

Every operation is out of place (``index_put`` returns a new tensor), so a training scan of L
frames backpropagates through all L updates.

Shapes: B walks, S x S grid (``screen``: h x w), D_s state channels, h x w view (token grid),
N = h * w tokens per frame, V codebook size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ALIGNMENTS = ("world", "screen")


@dataclass
class GridState:
    """The state of B walks' latent grids (a value: every update returns a new one)."""

    state: torch.Tensor
    """(B, S * S, D_s) float: each cell's latent vector (zero where never written)."""
    last: torch.Tensor
    """(B, S * S) long: the step each cell was last written at, -1 where never."""

    @property
    def nbytes(self) -> int:
        """Bytes held, the same at any step."""
        return self.state.numel() * self.state.element_size() + self.last.numel() * 8


class LatentGrid(nn.Module):
    """Write token frames into a grid of latent cells and read views back (see the module).

    ``vocab`` V token ids, ``view`` (h, w) token grid, ``grid_size`` S, ``channels`` D_s,
    ``aligned``: "world" (cells follow the map) or "screen" (cells follow the view: the ablation).
    """

    def __init__(self, vocab: int, view, grid_size: int, channels: int, aligned: str = "world"):
        super().__init__()
        view = tuple(int(v) for v in view)
        if aligned not in ALIGNMENTS:
            raise ValueError(f"aligned must be one of {ALIGNMENTS}; got {aligned!r}")
        if len(view) != 2 or min(view) < 1:
            raise ValueError(f"view must be (h, w) with h, w >= 1; got {view}")
        if grid_size < max(view):
            raise ValueError(
                f"grid_size must be >= the view's side {max(view)} (else a view would overwrite "
                f"itself); got {grid_size}"
            )
        if channels < 1 or vocab < 1:
            raise ValueError(f"channels and vocab must be >= 1; got {channels}, {vocab}")
        self.vocab, self.view, self.channels, self.aligned = vocab, view, channels, aligned
        self.grid_size = grid_size
        self.shape = (grid_size, grid_size) if aligned == "world" else view
        self.embed = nn.Embedding(vocab, channels)
        self.gate = nn.Linear(2 * channels, channels)
        self.update = nn.Linear(2 * channels, channels)
        with torch.no_grad():  # start near "what was seen last is what is there": overwrite
            self.gate.bias.fill_(2.0)
        rows, cols = torch.meshgrid(torch.arange(view[0]), torch.arange(view[1]), indexing="ij")
        self.register_buffer("offsets", torch.stack([rows, cols], -1).view(-1, 2), persistent=False)

    def empty(self, batch: int, device=None) -> GridState:
        """B grids that remember nothing."""
        cells = self.shape[0] * self.shape[1]
        return GridState(
            torch.zeros(batch, cells, self.channels, device=device),
            torch.full((batch, cells), -1, dtype=torch.long, device=device),
        )

    def cells(self, poses) -> torch.Tensor:
        """(B, N) long: the grid cell under each view cell of views at ``poses`` (B, 2)."""
        poses = torch.as_tensor(poses, device=self.offsets.device).long()
        if poses.ndim != 2 or poses.shape[1] != 2:
            raise ValueError(f"poses must be (B, 2) (row, col); got {tuple(poses.shape)}")
        if self.aligned == "screen":  # the ablation: the pose is not used
            poses = torch.zeros_like(poses)
        at = (poses[:, None, :] + self.offsets[None]).remainder(
            torch.tensor(self.shape, device=poses.device)
        )
        return at[..., 0] * self.shape[1] + at[..., 1]

    def _check(self, mem: GridState, tokens=None) -> int:
        b, cells = mem.last.shape
        if cells != self.shape[0] * self.shape[1] or mem.state.shape != (b, cells, self.channels):
            raise ValueError(
                f"expected a grid state of {self.shape} cells x {self.channels} channels; got "
                f"{tuple(mem.state.shape)} (made by another LatentGrid?)"
            )
        n = self.view[0] * self.view[1]
        if tokens is not None and tokens.shape != (b, n):
            raise ValueError(f"tokens must be (B, N) = {(b, n)}; got {tuple(tokens.shape)}")
        return b

    def write(self, mem: GridState, tokens, poses, step, keep=None) -> GridState:
        """Fold one frame per walk into the grid: token ids ``tokens`` (B, N) seen at ``poses``
        (B, 2) at ``step`` (an int or (B,)); ``keep`` (B, N) bool marks the cells to write (all
        by default). Returns the new state; ``mem`` is left as it was."""
        tokens = torch.as_tensor(tokens, device=mem.state.device).long()
        b = self._check(mem, tokens)
        if int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab:
            raise ValueError(f"token ids must lie in [0, {self.vocab}) (no [MASK] is written)")
        keep = torch.ones_like(tokens, dtype=torch.bool) if keep is None else keep
        keep = torch.as_tensor(keep, device=tokens.device).bool()
        if keep.shape != tokens.shape:
            raise ValueError(
                f"keep must be (B, N) = {tuple(tokens.shape)}; got {tuple(keep.shape)}"
            )
        idx = self.cells(poses)
        if idx.shape[0] != b:
            raise ValueError(f"poses must be (B, 2) with B = {b}; got {idx.shape[0]} poses")
        s = mem.state.gather(1, idx[..., None].expand(-1, -1, self.channels))  # (B, N, D_s)
        xs = torch.cat([self.embed(tokens), s], -1)
        g = torch.sigmoid(self.gate(xs)) * keep[..., None]  # a kept-out cell is not changed
        new = (1 - g) * s + g * torch.tanh(self.update(xs))
        rows = torch.arange(b, device=tokens.device)[:, None].expand_as(idx)
        step = torch.as_tensor(step, device=tokens.device).long().expand(b)[:, None]
        last = torch.where(keep, step.expand_as(idx), mem.last.gather(1, idx))
        return GridState(
            mem.state.index_put((rows, idx), new), mem.last.index_put((rows, idx), last)
        )

    def read(self, mem: GridState, poses) -> tuple[torch.Tensor, torch.Tensor]:
        """(state (B, N, D_s), last write step (B, N), -1 where never) of the view at ``poses``."""
        self._check(mem)
        idx = self.cells(poses)
        state = mem.state.gather(1, idx[..., None].expand(-1, -1, self.channels))
        return state, mem.last.gather(1, idx)
