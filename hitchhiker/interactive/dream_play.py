"""Play a dreamed world live, with the real one beside it.

Every Stage III engine speaks the engine contract of :mod:`hitchhiker.engine` (``reset(seed)`` ->
frame, ``step(action)`` -> frame, ...), so :func:`hitchhiker.play.play` plays a network's dream exactly as it
plays the simulator. This module adds what makes the comparison tangible:

- :class:`SideBySide` is itself an engine. It resets a *dream* (a learned engine) and the *real*
  simulator to the same seed — the dream starts from the simulator's real first frame — steps both
  with every action, and shows them as one frame

      frame = [ dream | gap | real ]      (H, W_dream + gap + W_real, 3)

  so the unchanged widget shows, step by step, where imagination and reality part ways (a lake
  forgotten behind the explorer, a sheep that never moves, a wall walked through).
- :func:`dream_play` wraps the widget in a small control panel: an engine selector (switching
  restarts from the current seed), a decoding-steps slider (MaskGIT steps or diffusion steps, for
  engines with ``decode_steps``: fewer steps, more frames per second, worse frames), and a
  checkbox for the real world beside the dream, and a line that reads back from the engine how
  many decoding steps it now uses. The widget's readout shows the frames per second.
- For an engine conditioned on *latent* actions (Genie's codes, learned from unlabelled play), a
  row of buttons "code 0" ... "code K-1" steps the dream with a raw code, not through the map from
  buttons to codes: press "code 3" and see what the model thinks code 3 means. The real world has
  no such input, so beside a raw code it waits (its frame stays as it was).

Widgets are restricted to APIs common to ipywidgets 7.7 (Colab) and 8.

An engine offers raw codes when it has ``latent_codes`` (K, or None) and ``step_code(code)``
(:class:`~.masked_dynamics_engine.DynamicsEngine` does; :func:`latent_codes_of` reads it).

Shapes: H x W frame pixels; a side-by-side frame is (H, 2 W + gap, 3).
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import numpy as np

from hitchhiker.engine import action_index, action_names, as_frame, check_engine, decode_steps_of
from hitchhiker.play import PlayController, PlayWidget
from hitchhiker.world import SimulatorEngine
from hitchhiker.world.dataset import LEARNING_WORLD

STEPS_MAX = 16
"""Largest value of the decoding-steps slider (raised to an engine's own default if higher)."""
CODES_MAX = 64
"""Most raw-code buttons shown (a leaky bottleneck's millions of ids get none)."""


def latent_codes_of(engine: Any) -> int | None:
    """K when ``engine`` takes raw latent codes (``latent_codes`` and ``step_code``), else None."""
    if not callable(getattr(engine, "step_code", None)):
        return None
    k = getattr(engine, "latent_codes", None)
    return None if k is None else int(k)


class SideBySide:
    """An engine whose frame is ``[dream | gap | real]``: both reset to one seed, stepped alike.

    ``actions`` are the dream's (the real engine gets each action by name, so the two agree even
    if their lists were ordered differently); ``decode_steps`` and ``name`` read through to the
    dream. The gap is a white bar ``gap`` pixels wide.
    """

    def __init__(self, dream: Any, real: Any | None = None, gap: int = 4):
        check_engine(dream, "dream")
        real = SimulatorEngine(LEARNING_WORLD) if real is None else real
        check_engine(real, "real")
        if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
            raise ValueError(f"gap must be a non-negative integer (pixels), got {gap!r}")
        self.dream, self.real, self.gap = dream, real, int(gap)
        self.actions: list[str] = action_names(dream)
        self._real_frame: np.ndarray | None = None

    @property
    def name(self) -> str:
        return f"{getattr(self.dream, 'name', type(self.dream).__name__)} | real"

    @property
    def decode_steps(self) -> int:
        return self.dream.decode_steps  # AttributeError for engines without steps, as it should

    @decode_steps.setter
    def decode_steps(self, value: int) -> None:
        self.dream.decode_steps = value

    def _join(self, dream_frame: Any, real_frame: Any) -> np.ndarray:
        left, right = as_frame(dream_frame), as_frame(real_frame)
        if left.shape[0] != right.shape[0]:
            raise ValueError(
                f"dream and real frames must have the same height to sit side by side; "
                f"got {left.shape} and {right.shape}"
            )
        bar = np.full((left.shape[0], self.gap, 3), 255, dtype=np.uint8)
        return np.concatenate([left, bar, right], axis=1)

    @property
    def latent_codes(self) -> int | None:
        return latent_codes_of(self.dream)

    def reset(self, seed: int) -> np.ndarray:
        dream = self.dream.reset(seed)
        self._real_frame = as_frame(self.real.reset(seed))
        return self._join(dream, self._real_frame)

    def step(self, action: int | str) -> np.ndarray:
        name = self.actions[action_index(action, self.actions)]
        dream = self.dream.step(action)
        self._real_frame = as_frame(self.real.step(name))
        return self._join(dream, self._real_frame)

    def step_code(self, code: int) -> np.ndarray:
        """The dream stepped with raw latent ``code``; the real world, which has no such input,
        waits."""
        if self._real_frame is None:
            raise RuntimeError("call reset(seed) before step_code(code)")
        return self._join(self.dream.step_code(code), self._real_frame)


class DreamPlay(w.VBox):
    """The panel :func:`dream_play` returns: controls on top, the live :class:`PlayWidget` below.

    ``player`` is the current PlayWidget (rebuilt when the engine or the side-by-side choice
    changes), ``engine_menu``, ``steps`` and ``beside`` the controls, ``info`` a line that reads
    back the selected engine's decoding steps, ``status`` a line for errors of the controls
    themselves (engine errors show in the player), ``code_buttons`` the raw latent codes of the
    selected engine (an empty list, and the row hidden, for one that has none). CSS hooks for
    browser tests: the panel has class ``hh-dream``, the selector ``hh-engine``, the slider
    ``hh-steps``, the lines ``hh-dream-info`` and ``hh-dream-status``, the code row ``hh-codes`` and
    each code button ``hh-code-<k>``.
    """

    def __init__(
        self,
        engines: dict[str, Any],
        seed: int = 0,
        scale: int = 4,
        fps: float = 8,
        side_by_side: bool = True,
        real: Any | None = None,
        gap: int = 4,
        keyboard: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(engines, dict) or not engines:
            raise ValueError(f"engines must be a non-empty dict name -> engine; got {engines!r}")
        for name, engine in engines.items():
            check_engine(engine, f"engine {name!r}")
        self.engines = dict(engines)
        self.real = SimulatorEngine(LEARNING_WORLD) if real is None else real
        check_engine(self.real, "real")
        self.scale, self.fps, self.gap, self.keyboard = scale, fps, gap, keyboard
        self.seed = int(seed)

        names = list(self.engines)
        self.engine_menu = w.Dropdown(options=names, value=names[0], description="engine")
        self.engine_menu.add_class("hh-engine")
        self.steps = w.IntSlider(
            value=1, min=1, max=STEPS_MAX, step=1, description="steps", continuous_update=False
        )
        self.steps.add_class("hh-steps")
        self.beside = w.Checkbox(
            value=bool(side_by_side), description="show the real world beside it", indent=False
        )
        self.info = w.HTML(value="")
        self.info.add_class("hh-dream-info")
        self.status = w.HTML(value="")
        self.status.add_class("hh-dream-status")
        self.code_buttons: list[w.Button] = []
        self.codes = w.VBox([], layout=w.Layout(display="none"))
        self.codes.add_class("hh-codes")
        self.engine_menu.observe(lambda _change: self._rebuild(), names="value")
        self.steps.observe(self._on_steps, names="value")
        self.beside.observe(lambda _change: self._rebuild(), names="value")
        self.controls = w.VBox(
            [w.HBox([self.engine_menu, self.steps]), self.beside, self.info, self.status]
        )
        self.add_class("hh-dream")
        self.player: PlayWidget | None = None
        self._syncing = False
        self._rebuild()

    @property
    def engine(self) -> Any:
        """The selected engine (the dream, without the real world beside it)."""
        return self.engines[self.engine_menu.value]

    @property
    def controller(self) -> PlayController:
        return self.player.controller

    def _show(self, message: str) -> None:
        self.status.value = (
            f"<span style='color:#b00020'>⚠ {html.escape(message)}</span>" if message else ""
        )

    def _show_info(self) -> None:
        """Read the decoding steps back from the engine itself: what it uses, not what was asked."""
        steps = decode_steps_of(self.engine)
        what = "no decoding steps" if steps is None else f"{steps} decoding steps"
        self.info.value = f"<small>{html.escape(self.engine_menu.value)}: {what}</small>"

    def _rebuild(self) -> None:
        """A fresh player for the selected engine, reset to the current seed."""
        if self.player is not None:
            self.seed = int(self.player.seed.value)  # what the learner sees in the seed box
        engine = self.engine
        steps = decode_steps_of(engine)
        self.steps.disabled = steps is None
        if steps is not None:
            self.steps.max = max(STEPS_MAX, steps)
            self._syncing = True  # showing the engine's value is not a request to change it
            try:
                self.steps.value = max(1, steps)
            finally:
                self._syncing = False
        shown = SideBySide(engine, self.real, self.gap) if self.beside.value else engine
        old = self.player
        self.player = PlayWidget(
            PlayController(shown, seed=self.seed), self.scale, self.fps, self.keyboard
        )
        self._build_codes(engine)
        self.children = [self.controls, self.player, self.codes]
        self._show_info()
        self._show("")
        if old is not None:
            old.close()

    def _build_codes(self, engine: Any) -> None:
        """One button per raw latent code of ``engine`` (none, and the row hidden, without)."""
        k = latent_codes_of(engine)
        self.code_buttons = []
        if k is None or k > CODES_MAX:
            self.codes.children, self.codes.layout.display = [], "none"
            return
        which = getattr(engine, "buttons_of_code", lambda code: [])
        for code in range(k):
            buttons = which(code)
            button = w.Button(
                description=f"code {code}",
                tooltip=f"raw latent code {code}; the buttons above that play it: "
                + (", ".join(buttons) or "none"),
                layout=w.Layout(width="auto"),
            )
            button.add_class(f"hh-code-{code}")
            button.on_click(lambda _button, code=code: self.press_code(code))
            self.code_buttons.append(button)
        label = w.HTML(
            value="<small>raw latent codes: step the dream with a code itself, not through "
            "the map from buttons to codes (the real world waits)</small>"
        )
        self.codes.children = [label, w.HBox(self.code_buttons)]
        self.codes.layout.display = ""

    def press_code(self, code: int) -> np.ndarray:
        """Step the shown engine with raw latent ``code``; the current frame (errors shown in the
        player, like a button's)."""
        shown = self.controller.engine
        return self.controller.step_with(lambda: shown.step_code(code))

    def _on_steps(self, change: dict) -> None:
        if self._syncing or self.steps.disabled:
            return
        try:
            self.engine.decode_steps = int(change["new"])
        except Exception as exc:  # a model may refuse a step count: say so, keep playing
            self._show(f"{type(exc).__name__}: {exc}")
        else:
            self._show("")
        self._show_info()


def dream_play(
    engines: dict[str, Any],
    seed: int = 0,
    scale: int = 4,
    fps: float = 8,
    side_by_side: bool = True,
    real: Any | None = None,
    keyboard: bool = True,
) -> DreamPlay:
    """Play ``engines`` (name -> engine) live: an engine selector, a decoding-steps slider, the
    real world (``real``, default the LEARNING_WORLD simulator) beside the dream, and the widget's
    FPS readout. Every engine starts from world ``seed``'s real first frame.
    """
    return DreamPlay(engines, seed, scale, fps, side_by_side, real, keyboard=keyboard)
