"""Play a world live in the notebook: buttons, keys and a clock that step an engine.

The idea: an *engine* is anything with ``reset(seed) -> frame`` and ``step(action) -> frame`` (and
optionally ``actions``, the list of action names); the whole contract, its argument checks and the
frame forms engines may return live in :mod:`hitchhiker.engine`. The simulator
(:class:`hitchhiker.world.SimulatorEngine`) is one; every learned world model of the course (Stage III
on: p(o[t+1] | o[<=t], a[t]) sampled one frame at a time) speaks the same contract, so the same
widget plays the real world now and the imagined ones later, and the learner can feel the difference.

Two layers, so that everything except the pixels on screen is testable without a browser:

- :class:`PlayController`: plain Python. Resolves actions and keys, steps the engine, keeps the
  current frame, the step count and a rolling timing window (fixed length ``history``, so an hour of
  play costs no more memory than a second), and catches engine errors into ``last_error`` so a
  crashing model never kills the widget.
- :class:`PlayWidget` (built by :func:`play`): ipywidgets UI over a controller, restricted to APIs
  common to ipywidgets 7.7 and 8 (Colab ships 7.7). Buttons are the contract; keys (via ``ipyevents``,
  if installed) are a convenience, because Colab does not reliably deliver key events.

Frames: :func:`hitchhiker.engine.as_frame` turns whatever an engine returns into uint8 numpy
(H, W, 3). The view is that frame upscaled ``scale`` times by nearest neighbour (a 64x64 world at
scale 6 shows as 384x384 with hard tile edges, no blur) and PNG-encoded.

Shapes: H, W frame height and width in pixels; C = 3 colour channels; s = scale.
"""

from __future__ import annotations

import html
import io
import math
import numbers
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import numpy as np

from hitchhiker.engine import action_index, action_names, as_frame, check_engine

KEYMAP: dict[str, str] = {
    "arrowup": "up",
    "arrowdown": "down",
    "arrowleft": "left",
    "arrowright": "right",
    "w": "up",
    "s": "down",
    "a": "left",
    "d": "right",
    " ": "interact",
    "space": "interact",
    "spacebar": "interact",
    "e": "interact",
    "enter": "interact",
    ".": "noop",
}
"""Browser ``KeyboardEvent.key`` (lower-cased) -> action name. Keys not listed are ignored."""


def upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale (H, W, C) -> (H*s, W*s, C): each pixel becomes an s x s block."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


def to_png(frame: Any, scale: int = 1) -> bytes:
    """Encode a frame (any form :func:`as_frame` accepts) as PNG bytes, upscaled ``scale`` times.

    PNG is lossless, so decoding gives back exactly ``upscale(as_frame(frame), scale)``.
    Compression level 1: the view is re-encoded every step, and speed matters more than bytes.
    """
    from PIL import Image  # local: only the view needs Pillow

    pixels = upscale(as_frame(frame), scale)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _describe_error(exc: BaseException) -> str:
    """One line a learner can act on: type, message and where it was raised (last traceback frame)."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" (at {last.filename}:{last.lineno} in {last.name})"
    return f"{type(exc).__name__}: {exc}{where}"


class PlayController:
    """The logic of live play, with no widgets: actions in, frames and readouts out.

    ``frame`` is always the latest good frame, uint8 (H, W, 3). ``steps`` counts steps since the last
    reset, or is the engine's own ``step_count`` where it has one (an engine that can refuse a step,
    as an episode that is over, says how many it took). ``fps`` and ``ms_per_step`` are measured
    over the last ``history`` steps of engine time (step + frame conversion): ``fps`` is the rate
    the engine could sustain, which the Play clock may deliver less of. If the engine raises, the
    error is stored in ``last_error`` (cleared by the next success) and the frame is left as it
    was. Every call that touches the engine then calls each function in ``on_frame`` with the
    current frame.
    """

    def __init__(
        self,
        engine: Any,
        seed: int = 0,
        auto_action: int | str = "noop",
        history: int = 30,
    ) -> None:
        check_engine(engine)
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be a positive integer, got {history!r}")
        self.engine = engine
        self.actions: list[str] = action_names(engine)
        self.history = history
        self.auto_action: str = self.actions[self.action_index(auto_action)]
        self.seed = int(seed)
        self.steps = 0
        self.last_error: str | None = None
        self.on_frame: list[Callable[[np.ndarray], None]] = []
        self._timings: deque[float] = deque(maxlen=history)  # seconds per step, oldest dropped
        # A placeholder until the first good frame, so the view can show something (and the
        # error) even when the very first reset fails.
        self.frame: np.ndarray = np.zeros((64, 64, 3), dtype=np.uint8)
        self.reset(seed)

    # -- actions -----------------------------------------------------------------------------

    def action_index(self, action: int | str) -> int:
        """Index of ``action`` (a name or an index) in ``self.actions``; ValueError if unknown."""
        return action_index(action, self.actions)

    def press(self, action: int | str) -> np.ndarray:
        """Step the engine with ``action`` (name or index) and return the current frame."""
        index = self.action_index(action)  # a typo is the caller's bug: raise, don't swallow
        # Engines get the index: learned models embed integers, the simulator takes both.
        return self._run(lambda: self.engine.step(index), timed=True)

    def step_with(self, call: Callable[[], Any]) -> np.ndarray:
        """Step the engine by ``call()``, an input of the engine's own that is not one of its
        actions (a raw latent code: :meth:`.interactive.dream_play.DreamPlay.press_code`): timed,
        counted and error-caught like :meth:`press`."""
        return self._run(call, timed=True)

    def tick(self) -> np.ndarray:
        """One step of the clock: press ``auto_action``."""
        return self.press(self.auto_action)

    def key(self, key_name: str) -> np.ndarray | None:
        """Press the action mapped to a browser key name (see :data:`KEYMAP`); None if unmapped."""
        if not isinstance(key_name, str):
            raise TypeError(f"key_name must be a str like 'ArrowUp', got {type(key_name).__name__}")
        action = KEYMAP.get(key_name.lower())
        if action is None or action not in self.actions:
            return None
        return self.press(action)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Restart the engine with ``seed`` (default: the last seed used); steps go back to 0."""
        if seed is not None:
            self.seed = int(seed)
        self.steps = 0
        return self._run(lambda: self.engine.reset(self.seed), timed=False)

    def show(self, frame: Any) -> np.ndarray:
        """Show a frame the engine drew outside a step (a setting of its changed the picture):
        stored as the current frame, passed to ``on_frame``; not timed, not counted."""
        return self._run(lambda: frame, timed=False)

    # -- readouts ----------------------------------------------------------------------------

    @property
    def ms_per_step(self) -> float:
        """Mean engine time per step over the timing window, in milliseconds (0.0 before any)."""
        if not self._timings:
            return 0.0
        return 1000.0 * sum(self._timings) / len(self._timings)

    @property
    def fps(self) -> float:
        """Steps per second the engine sustains over the timing window (0.0 before any step)."""
        total = sum(self._timings)
        if total <= 0.0:
            # perf_counter ticks are finite; a step measured as 0 s means "faster than the clock"
            return 0.0 if not self._timings else math.inf
        return len(self._timings) / total

    def readout(self) -> str:
        """'step N · X fps · Y ms/step', the line under the view."""
        fps = self.fps
        fps_text = f"{fps:.0f}" if math.isfinite(fps) else "∞"
        return f"step {self.steps} · {fps_text} fps · {self.ms_per_step:.1f} ms/step"

    # -- internals ---------------------------------------------------------------------------

    def _run(self, call: Callable[[], Any], timed: bool) -> np.ndarray:
        """Run one engine call; on success store its frame, on failure store the error."""
        start = time.perf_counter()
        try:
            frame = as_frame(call())
        except Exception as exc:  # the engine is user code: report, don't die
            self.last_error = _describe_error(exc)
        else:
            if timed:
                self._timings.append(time.perf_counter() - start)
                self.steps += 1
            own = getattr(self.engine, "step_count", None)
            if own is not None:
                self.steps = int(own)
            self.frame = frame
            self.last_error = None
        for callback in self.on_frame:
            callback(self.frame)
        return self.frame


class PlayWidget(w.VBox):
    """An ipywidgets panel (a VBox) that plays ``controller`` live.

    Layout (top to bottom): the view; the readout and error line; the d-pad (up on top; left, noop,
    right in the middle; down below; interact beside) and any other actions; the clock (Play/Stop,
    auto-action) and the seed with Reset; a hint about keys. CSS hooks for browser tests: the view's
    box has class ``hh-frame``, each action button ``hh-btn-<name>``, the readout ``hh-readout``,
    the error line ``hh-error``, the Reset button ``hh-reset``, the clock ``hh-clock``.
    """

    DPAD: tuple[tuple[str | None, ...], ...] = (
        (None, "up", None),
        ("left", "noop", "right"),
        (None, "down", None),
    )
    """Rows of the d-pad; None is an empty cell."""

    LABELS: dict[str, str] = {
        "up": "↑",
        "down": "↓",
        "left": "←",
        "right": "→",
        "noop": "·",
        "interact": "interact",
    }
    """Button faces for the standard actions; other actions show their name."""

    KEY_HINTS: dict[str, str] = {
        "up": "↑ / W",
        "down": "↓ / S",
        "left": "← / A",
        "right": "→ / D",
        "noop": ".",
        "interact": "space / E / Enter",
    }
    """Keys named in each button's tooltip."""

    def __init__(
        self,
        controller: PlayController,
        scale: int = 6,
        fps: float = 8,
        keyboard: bool = True,
    ) -> None:
        super().__init__()
        upscale(np.zeros((1, 1, 3), dtype=np.uint8), scale)  # validates scale with a clear error
        if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not 0 < fps <= 60:
            raise ValueError(f"fps must be a number in (0, 60], got {fps!r}")
        self.controller = controller
        self.scale = int(scale)
        # Skip a clock tick that arrives less than half an interval after the last one ended:
        # when the engine is slower than the clock, ticks queue up in the kernel, and running
        # them all would keep the world moving long after Stop.
        self.drop_late_ticks = True
        self._interval_s = 1.0 / fps
        self._last_tick_end = -math.inf

        self.image = w.Image(value=to_png(controller.frame, self.scale), format="png")
        self.view = w.Box([self.image], layout=w.Layout(width="fit-content"))
        self.view.add_class("hh-frame")
        self.readout = w.HTML(value=controller.readout())
        self.readout.add_class("hh-readout")
        self.error = w.HTML(value="", layout=w.Layout(display="none"))
        self.error.add_class("hh-error")

        self.buttons: dict[str, Any] = {}
        for name in controller.actions:
            button = w.Button(
                description=self.LABELS.get(name, name),
                tooltip=f"{name} ({self.KEY_HINTS[name]})" if name in self.KEY_HINTS else name,
                layout=w.Layout(width="auto" if name not in self.LABELS else "3em"),
            )
            button.add_class(f"hh-btn-{name}")
            button.on_click(lambda _button, name=name: controller.press(name))
            self.buttons[name] = button
        if "interact" in self.buttons:
            self.buttons["interact"].layout.width = "6em"
        pad = self._dpad()

        self.clock = w.Play(value=0, min=0, max=10**9, step=1, interval=max(1, round(1000 / fps)))
        self.clock.add_class("hh-clock")
        self.clock.observe(self._on_clock, names="value")
        self.auto = w.Dropdown(
            options=controller.actions,
            value=controller.auto_action,
            description="auto",
            layout=w.Layout(width="12em"),
        )
        self.auto.observe(self._on_auto, names="value")
        self.seed = w.IntText(
            value=controller.seed, description="seed", layout=w.Layout(width="10em")
        )
        self.reset_button = w.Button(
            description="Reset", tooltip="restart the world with this seed"
        )
        self.reset_button.add_class("hh-reset")
        self.reset_button.on_click(lambda _button: controller.reset(self.seed.value))

        self.keyboard = self._attach_keyboard() if keyboard else None
        if self.keyboard is not None:
            hint = (
                "click the view, then use arrows/WASD, space = interact "
                "(keys reach the world while the pointer is over the view)"
            )
        elif keyboard:
            hint = "buttons only (install ipyevents for arrows/WASD)"
        else:
            hint = "buttons only"
        self.hint = w.HTML(value=f"<small>{hint}</small>")
        self.hint.add_class("hh-hint")

        controls = w.HBox([self.clock, self.auto, self.seed, self.reset_button])
        self.children = [self.view, self.readout, self.error, pad, controls, self.hint]
        self.add_class("hh-play")
        controller.on_frame.append(self._refresh)
        self._refresh(controller.frame)

    def _attach_keyboard(self) -> Any:
        """Route keydown on the view to ``controller.key`` via ipyevents; None if not installed.

        ipyevents listens while the pointer is over the view and stops the event there, so arrows
        do not scroll the page and letters do not trigger notebook shortcuts (d, d deletes a cell).
        """
        try:
            from ipyevents import Event
        except ImportError:
            return None
        event = Event(source=self.view, watched_events=["keydown"], prevent_default_action=True)
        event.on_dom_event(self._on_key)
        return event

    def _dpad(self) -> w.Box:
        """The d-pad grid (plus interact beside it), then a row of any non-standard actions."""
        cell = "3em"
        rows = []
        for row in self.DPAD:
            cells = [
                self.buttons[name]
                if name in self.buttons
                else w.Box(layout=w.Layout(width=cell, min_width=cell))
                for name in row
            ]
            rows.append(w.HBox(cells))
        side = [self.buttons["interact"]] if "interact" in self.buttons else []
        pad = w.HBox([w.VBox(rows), w.VBox(side, layout=w.Layout(justify_content="center"))])
        placed = {n for row in self.DPAD for n in row if n} | {"interact"}
        others = [b for name, b in self.buttons.items() if name not in placed]
        return w.VBox([pad, w.HBox(others)]) if others else pad

    def _refresh(self, frame: np.ndarray) -> None:
        """Push the current frame, readout and error state to the browser."""
        self.image.value = to_png(frame, self.scale)
        self.readout.value = self.controller.readout()
        error = self.controller.last_error
        if error:
            self.error.value = f"<span style='color:#b00020'>⚠ {html.escape(error)}</span>"
            self.error.layout.display = ""
        else:
            self.error.value = ""
            self.error.layout.display = "none"

    def _on_clock(self, change: dict) -> None:
        if change["new"] <= change["old"]:  # Stop rewinds the clock to 0: not a tick
            return
        now = time.perf_counter()
        if self.drop_late_ticks and now - self._last_tick_end < self._interval_s / 2:
            return
        self.controller.tick()
        self._last_tick_end = time.perf_counter()

    def _on_auto(self, change: dict) -> None:
        self.controller.auto_action = change["new"]

    def _on_key(self, event: dict) -> None:
        key = event.get("key")
        if isinstance(key, str):
            self.controller.key(key)


def play(
    engine: Any,
    seed: int = 0,
    scale: int = 6,
    fps: float = 8,
    keyboard: bool = True,
    auto_action: int | str = "noop",
) -> PlayWidget:
    """Build a live-play widget for ``engine`` (anything with reset(seed) and step(action)).

    ``scale`` upscales each frame for display; ``fps`` is the Play clock's rate; ``keyboard``
    attaches arrow/WASD keys when ipyevents is installed. The result displays itself when it is the
    last expression of a cell; ``.controller`` holds the state.
    """
    return PlayWidget(
        PlayController(engine, seed=seed, auto_action=auto_action), scale, fps, keyboard
    )
