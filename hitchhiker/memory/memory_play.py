"""Play a dreamed world with a memory: memory on and off side by side, the real world, and a map
of what the memory holds.

Stage III's :func:`~hitchhiker.interactive.dream_play.dream_play` plays one engine beside the real
world. Memory is a comparison, so this panel plays three worlds with every action, from one seed,
and draws them as one frame with a mini-map of the memory beside them:

    frame = [ memory on | memory off | real | mini-map ]        (64, 4 * 64 + 3 gaps, 3)

The mini-map shows, around where the engine thinks it stands, the map cells its memory holds
(grey), the cells of the frames read for the frame just drawn (orange), the view (a white box) and
the explorer (red). It is drawn in the engine's own frame of reference: with ``pose="estimated"``
a wrong estimate shows as memory drawn in the wrong place.

Controls under the player (:class:`MemoryPlay`):

- **walk the loop**: ``loop`` steps out (right, then down), the same steps back; when the real
  explorer is back on its first cell, the view on return is read with the tile reader and scored
  against the real one for memory on and off (blocked moves, into water or rock, can keep it from
  returning, and the line says so);
- **memory budget**: the most frames the memory keeps (the policy's capacity; a smaller budget
  forgets the frame that covers least), applied at once to what it holds.

The budget and loop read from the engine exactly what the benchmark measures; nothing here is
scored by eye. Widgets keep to APIs common to ipywidgets 7.7 (Colab) and 8.

Shapes: a frame is (H, W, 3) uint8 with H = W = 64; the mini-map is ``cells`` x ``cells`` map
cells, 64 // cells pixels each.
"""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np

from hitchhiker.engine import action_index, action_names, as_frame, check_engine
from hitchhiker.memory.revisit_benchmark import dominant_kind
from hitchhiker.memory.state_memory_engine import StateMemoryEngine
from hitchhiker.play import PlayController, PlayWidget
from hitchhiker.world import SimulatorEngine, read_tiles
from hitchhiker.world.dataset import LEARNING_WORLD

BUDGETS = ("unbounded", 256, 64, 16, 4, 1)
"""Options of the budget slider (frames the memory keeps)."""

COLOURS = {
    "unknown": (24, 24, 32),
    "held": (150, 150, 160),
    "read": (245, 150, 40),
    "view": (255, 255, 255),
    "explorer": (220, 30, 30),
}


def memory_map(held, pose, read=(), view=(8, 8), cells: int = 32) -> np.ndarray:
    """(64, 64, 3) uint8: ``held`` (K, 2) map cells remembered, ``read`` (J, 2) cells read for
    the current frame, the view at ``pose`` (2,) outlined and the explorer, in a window of
    ``cells`` x ``cells`` map cells centred on ``pose``."""
    if cells < 8 or 64 % cells:
        raise ValueError(f"cells must divide 64 and be >= 8; got {cells}")
    pose = np.asarray(pose, dtype=np.int64)
    grid = np.zeros((cells, cells, 3), dtype=np.uint8)
    grid[:] = COLOURS["unknown"]
    top = pose - cells // 2

    def paint(points, colour):
        p = np.asarray(points, dtype=np.int64).reshape(-1, 2) - top
        p = p[((p >= 0) & (p < cells)).all(1)]
        grid[p[:, 0], p[:, 1]] = colour

    paint(held, COLOURS["held"])
    paint(read, COLOURS["read"])
    r0, c0 = pose - np.array(view) // 2 - top
    r1, c1 = r0 + view[0] - 1, c0 + view[1] - 1
    for r in range(r0, r1 + 1):
        for c in range(c0, c1 + 1):
            on_edge = r in (r0, r1) or c in (c0, c1)
            if on_edge and 0 <= r < cells and 0 <= c < cells:
                grid[r, c] = np.maximum(grid[r, c], 200)  # a light box, what is under it shows
    paint([pose], COLOURS["explorer"])
    px = 64 // cells
    return grid.repeat(px, 0).repeat(px, 1)


class MemoryPanel:
    """An engine whose frame is ``[memory on | memory off | real | mini-map]``: all three reset to
    one seed and stepped with every action (the dreams start from the real first frame)."""

    def __init__(self, on, off=None, real=None, gap: int = 4, cells: int = 32):
        check_engine(on, "memory on")
        if off is not None:
            check_engine(off, "memory off")
        real = SimulatorEngine(LEARNING_WORLD) if real is None else real
        check_engine(real, "real")
        self.on, self.off, self.real, self.gap, self.cells = on, off, real, int(gap), cells
        self.actions: list[str] = action_names(on)
        self.frames: dict[str, np.ndarray] = {}
        """The latest frame of each world ("on", "off", "real"), uint8 (64, 64, 3)."""
        self.on_step: list = []
        """Called with no argument after every reset and step (the panel refreshes its lines)."""

    @property
    def name(self) -> str:
        return f"{getattr(self.on, 'name', 'memory')} on | off | real"

    @property
    def decode_steps(self) -> int:
        return self.on.decode_steps

    @decode_steps.setter
    def decode_steps(self, value: int) -> None:
        for e in (self.on, self.off):
            if e is not None:
                e.decode_steps = value

    def _join(self) -> np.ndarray:
        held, pose, read = self.on.memory_map(self.cells)
        parts = [self.frames["on"]]
        if self.off is not None:
            parts.append(self.frames["off"])
        parts += [self.frames["real"], memory_map(held, pose, read, cells=self.cells)]
        bar = np.full((64, self.gap, 3), 255, dtype=np.uint8)
        out = [parts[0]]
        for p in parts[1:]:
            out += [bar, p]
        return np.concatenate(out, axis=1)

    def _shown(self) -> np.ndarray:
        """The joined frame, after telling ``on_step`` that the worlds moved."""
        for call in self.on_step:
            call()
        return self._join()

    def reset(self, seed: int) -> np.ndarray:
        self.frames = {"on": as_frame(self.on.reset(seed)), "real": as_frame(self.real.reset(seed))}
        if self.off is not None:
            self.frames["off"] = as_frame(self.off.reset(seed))
        return self._shown()

    def step(self, action) -> np.ndarray:
        name = self.actions[action_index(action, self.actions)]
        self.frames["on"] = as_frame(self.on.step(name))
        if self.off is not None:
            self.frames["off"] = as_frame(self.off.step(name))
        self.frames["real"] = as_frame(self.real.step(name))
        return self._shown()

    def score_view(self, since: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        """Share of the current view's tiles each dream draws as the real world shows them; with
        ``since`` (frames by name, e.g. the views when a loop set out), as that dream itself
        showed them then, on the tiles of that view that are not its most common kind (a dream
        that draws grass everywhere is trivially the same; NaN where that view held nothing
        else): does the dream stay the same world, right or wrong?"""
        truth = read_tiles(self.frames["real"][None]).kinds[0]
        out = {}
        for k in ("on", "off"):
            if k not in self.frames:
                continue
            drawn = read_tiles(self.frames[k][None]).kinds[0]
            if since is None:
                out[k] = float((drawn == truth).mean())
                continue
            ref = read_tiles(since[k][None]).kinds[0]
            rare = ref != dominant_kind(ref)
            out[k] = float((drawn == ref)[rare].mean()) if rare.any() else float("nan")
        return out


MOVES = {"right": (0, 1), "down": (1, 0), "left": (0, -1), "up": (-1, 0)}
BACK = {"right": "left", "down": "up", "left": "right", "up": "down"}


def loop_actions(steps: int, env=None) -> list[str]:
    """``steps`` moves out and the same moves undone. With the real world's ``env`` (its
    ``position`` and ``walkable``) the way out keeps its direction while the ground ahead is
    walkable and new, and turns where it is not (water and rock block a move); without it, right
    then down."""
    if env is None:
        out = ["right"] * (steps - steps // 2) + ["down"] * (steps // 2)
    else:
        pos, heading, seen, out = np.array(env.position), "right", set(), []
        seen.add(tuple(pos))
        order = list(MOVES)
        for _ in range(steps):
            turns = [heading] + [
                m for m in order[order.index(heading) + 1 :] + order if m != heading
            ]
            for move in turns:
                nxt = pos + MOVES[move]
                if env.walkable(*nxt) and tuple(nxt) not in seen:
                    break
            else:
                break  # boxed in: a shorter loop
            pos, heading = nxt, move
            seen.add(tuple(pos))
            out.append(move)
    return out + [BACK[a] for a in reversed(out)]


class MemoryPlay(w.VBox):
    """The panel :func:`memory_play` returns: a caption, the player, a line that reads the memory
    back (frames held, bytes, frames read), the loop and budget controls and their result line.
    CSS hooks: class ``hh-memory``; ``hh-loop``, ``hh-budget``, ``hh-memory-info``,
    ``hh-memory-status``."""

    def __init__(self, on, off=None, seed: int = 0, scale: int = 3, fps: float = 8, **kw):
        super().__init__()
        self.panel = MemoryPanel(on, off, kw.pop("real", None))
        self.info = w.HTML(value="")
        self.info.add_class("hh-memory-info")
        self.status = w.HTML(value="")
        self.status.add_class("hh-memory-status")
        self.panel.on_step.append(self._show_info)
        self.player = PlayWidget(
            PlayController(self.panel, seed=seed), scale, fps, kw.pop("keyboard", True)
        )
        self.loop = w.IntSlider(
            value=12, min=2, max=64, step=2, description="loop steps", continuous_update=False
        )
        self.walk = w.Button(description="walk the loop", tooltip="out and back; then score")
        self.walk.add_class("hh-loop")
        self.walk.on_click(lambda _b: self.walk_loop())
        self.budget = w.SelectionSlider(
            options=[str(b) for b in BUDGETS], value="unbounded", description="budget"
        )
        self.budget.add_class("hh-budget")
        self.budget.observe(lambda ch: self.set_budget(ch["new"]), names="value")
        self.budget.disabled = isinstance(on, StateMemoryEngine)  # a grid has no frames to forget
        worlds = ["memory on"] + (["memory off"] if off is not None else []) + ["real world"]
        caption = w.HTML(
            value="<small>"
            + " · ".join(f"<b>{x}</b>" for x in worlds + ["what the memory holds"])
            + " (grey: remembered cells, orange: read for this frame, white box: the view, "
            "red: the explorer)</small>"
        )
        self.children = [
            caption,
            self.player,
            self.info,
            w.HBox([self.walk, self.loop, self.budget]),
            self.status,
        ]
        self.add_class("hh-memory")
        self._show_info()

    @property
    def controller(self) -> PlayController:
        return self.player.controller

    def _show_info(self) -> None:
        self.info.value = f"<small>{self.panel.on.describe()}</small>"

    def set_budget(self, value) -> None:
        """The most frames the memory keeps ("unbounded" or an int), applied now and after resets."""
        self.panel.on.set_capacity(None if str(value) == "unbounded" else int(value))
        self._show_info()

    def walk_loop(self, steps: int | None = None) -> dict[str, dict[str, float]]:
        """Walk ``steps`` (default the slider's) out and back; score the view on return against
        the real world ("real") and against the view each dream showed when it set out ("same").
        A dream that drifted from the world before the loop can still be the same world."""
        steps = int(self.loop.value if steps is None else steps)
        real = self.panel.real
        start = tuple(real.env.position) if hasattr(real, "env") else None
        left = dict(self.panel.frames)
        for a in loop_actions(steps, getattr(real, "env", None)):
            self.controller.press(a)
        back = start is None or tuple(real.env.position) == start
        scores = {"real": self.panel.score_view(), "same": self.panel.score_view(since=left)}
        line = {
            key: ", ".join(f"memory {k}: {v:.2f}" for k, v in got.items())
            for key, got in scores.items()
        }
        where = "back on its first cell" if back else "not back on its first cell (a blocked move)"
        self.status.value = html.escape(
            f"{steps} steps out, {steps} back; the real explorer is {where}. Tiles of the view "
            f"drawn as the real world shows them: {line['real']}; of the tiles other than the most "
            f"common kind, as the dream itself showed them when it set out: {line['same']} "
            "(nan: it showed nothing else)."
        )
        return scores


def memory_play(on, off=None, seed: int = 0, scale: int = 3, fps: float = 8, **kw) -> MemoryPlay:
    """Play memory engine ``on`` beside ``off`` (the same model without its memory, or None) and
    the real world, with a mini-map of the memory, a walk-the-loop button and a budget slider."""
    return MemoryPlay(on, off, seed, scale, fps, **kw)
