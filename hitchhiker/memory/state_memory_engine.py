"""Play the state-space memory: the retrieval memory's engine with a latent grid in place of the bank.

Everything but the memory is :class:`~.memory_engine.MemoryEngine`'s: the pose the action leads
to, true or estimated (``pose=``), MaskGIT decoding against a frozen cache of the memory and the
window, the frame that leaves the W-frame window written with its pose and step (the window and
the memory never hold the same frame), the imagined frame's cells it already knew not written back
as fresher (``_imagined_ignore``), ``use_memory=False`` and the oracle memory (``truth=`` in
``rollout``). What it overrides is the memory itself:

- ``_new_memory``: one empty :class:`~.latent_grid.GridState` for the B walks (a tensor);
- ``_write``: fold the leaving frame into the grid, the cells ``ignore`` marks left as they are;
- ``_read``: the grid's cells under the view the action leads to (one memory frame), and which of
  them were ever written (what the memory "knows" of the view);
- ``memory_bytes``: the grid's size, S^2 (D_s + 2) numbers per walk whatever the history.

Per frame the memory costs one write of N cells and one read of N cells, and the model reads one
memory frame (N tokens): flat in the length of the history (:func:`~.cost.state_cost`).

Shapes: B batch, S x S grid, D_s state channels, R x C view cells (= the h x w token grid).
"""

from __future__ import annotations

import numpy as np
import torch

from hitchhiker.memory.latent_grid import GridState
from hitchhiker.memory.memory_engine import MemoryEngine
from hitchhiker.memory.state_memory_model import StateMemoryModel


class StateMemoryEngine(MemoryEngine):
    """A :class:`~.state_memory_model.StateMemoryModel` and its latent grid behind the engine
    interface (the arguments are :class:`~.memory_engine.MemoryEngine`'s, less the bank's
    policy)."""

    def __init__(
        self,
        model,
        tokenizer,
        pose: str = "estimated",
        use_memory: bool = True,
        decode_steps: int | None = None,
        temperature: float | None = None,
        seed: int = 0,
        cfg=None,
    ):
        if not isinstance(model, StateMemoryModel):
            raise ValueError(f"expected a StateMemoryModel; got {type(model).__name__}")
        super().__init__(
            model, tokenizer, None, pose, use_memory, decode_steps, temperature, seed, cfg
        )
        self._state = None

    def _new_memory(self, b: int) -> None:
        self._state = self.model.empty(b)

    @torch.no_grad()  # reset() writes outside inference mode: play never builds a graph
    def _write(self, grids, poses, step, ignore) -> None:
        b = len(grids)
        dev = self.device
        tokens = torch.as_tensor(np.asarray(grids), device=dev).view(b, -1)
        keep = ~torch.as_tensor(np.array(ignore, dtype=bool), device=dev).view(b, -1)
        self._state = self.model.mem_grid.write(self._state, tokens, poses, step, keep)

    @torch.no_grad()
    def _read(self, target: np.ndarray, window):
        read = self.model.recall(self._state, target, self._steps + 1)
        self.last_retrieved = []  # no frames are retrieved: the mini-map has nothing to show
        known = read.written.view(len(target), *self.grid).cpu().numpy()
        return read, known

    def memory_map(self, cells: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`MemoryEngine.memory_map`: a grid holds the map cells within ``cells`` of the
        pose whose grid cell was ever written (a world-aligned grid wraps every S cells; a
        screen-aligned one holds the view's cells), and reads the written cells of the view."""
        none = np.zeros((0, 2), dtype=np.int64)
        if self._state is None:
            return none, np.zeros(2, dtype=np.int64), none
        grid, pose = self.model.mem_grid, self._poses[0].astype(np.int64)
        last = self._state.last[0].cpu().numpy()
        view = np.array(grid.view)
        r, c = np.mgrid[0 : view[0], 0 : view[1]]
        in_view = np.stack([r.ravel(), c.ravel()], 1) - view // 2  # view cells around a pose
        if grid.aligned == "screen":  # the grid follows the view: its cells are the view's cells
            held = (pose + in_view)[last >= 0]
        else:
            r, c = np.mgrid[-cells // 2 : cells // 2, -cells // 2 : cells // 2]
            around = pose + np.stack([r.ravel(), c.ravel()], 1)
            at = np.mod(around, grid.grid_size)
            held = around[last.reshape(grid.shape)[at[:, 0], at[:, 1]] >= 0]
        if not self.use_memory:
            return held, pose, none
        known = {tuple(x) for x in held}
        read = [x for x in self._read_at() + in_view if tuple(x) in known]
        return held, pose, np.array(read, dtype=np.int64).reshape(-1, 2)

    def memory_tensors(self) -> dict[str, torch.Tensor]:
        """The first walk's grid as named tensors (:func:`~.saved_world.save_world`)."""
        return {"grid.state": self._state.state[:1].cpu(), "grid.last": self._state.last[:1].cpu()}

    def load_memory_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Put back a grid saved by :meth:`memory_tensors` (ValueError if it is not this model's
        grid)."""
        if "grid.state" not in tensors or "grid.last" not in tensors:
            raise ValueError("this saved world holds no latent grid (saved from another memory?)")
        dev = self.device
        state = GridState(
            tensors["grid.state"].float().to(dev), tensors["grid.last"].long().to(dev)
        )
        self.model.mem_grid._check(state)
        self._state = state

    @property
    def memory_bytes(self) -> int:
        """Bytes the grids hold (all walks together): the same after any number of frames."""
        return 0 if self._state is None else self._state.nbytes

    def describe(self) -> str:
        """One line on what the first walk's grid holds: written cells and bytes (fixed)."""
        written = 0 if self._state is None else int((self._state.last[0] >= 0).sum())
        return (
            f"memory: a latent grid, {written} cells written, {self.memory_bytes / 1024:.1f} kB "
            "(the same after any number of frames)"
        )

    def set_capacity(self, capacity: int | None) -> None:
        """A grid has no frames to forget: its size is fixed by the model."""
        raise ValueError("a latent grid has a fixed size: it takes no frame budget")
