"""Dream play without a browser: the side-by-side engine and the control panel around the widget."""

from __future__ import annotations

import numpy as np
import pytest

from hitchhiker.interactive.dream_play import DreamPlay, SideBySide, dream_play
from hitchhiker.play import PlayWidget
from hitchhiker.world import ACTION_NAMES, SimulatorEngine
from hitchhiker.world.dataset import LEARNING_WORLD


class FakeDream:
    """A 'learned' engine: starts from the real first frame, then darkens it by 10 grey levels per
    step, times its decode_steps (so the slider's effect shows in the pixels)."""

    name = "fake"
    actions = list(ACTION_NAMES)

    def __init__(self, decode_steps: int = 4):
        self.decode_steps = decode_steps
        self.sim = SimulatorEngine(LEARNING_WORLD)
        self.received: list = []

    def reset(self, seed: int) -> np.ndarray:
        self.frame = self.sim.reset(seed).astype(np.int64)
        return self.frame.astype(np.uint8)

    def step(self, action) -> np.ndarray:
        self.received.append(action)
        self.frame = np.clip(self.frame - 10 * self.decode_steps, 0, 255)
        return self.frame.astype(np.uint8)


class BrokenDream(FakeDream):
    name = "broken"

    def step(self, action):
        raise RuntimeError("the dream fell apart")

    @property
    def decode_steps(self) -> int:
        return 2

    @decode_steps.setter
    def decode_steps(self, value: int) -> None:
        if value > 8:
            raise ValueError(f"at most 8 steps, got {value}")


def real_first_frame(seed: int) -> np.ndarray:
    return SimulatorEngine(LEARNING_WORLD).reset(seed)


def test_side_by_side_shows_dream_gap_and_real():
    dream = FakeDream(decode_steps=1)
    both = SideBySide(dream, gap=4)
    frame = both.reset(3)
    assert frame.shape == (64, 64 + 4 + 64, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame[:, :64], real_first_frame(3))  # the dream starts real
    np.testing.assert_array_equal(frame[:, 68:], real_first_frame(3))
    assert (frame[:, 64:68] == 255).all()
    frame = both.step(ACTION_NAMES.index("up"))
    sim = SimulatorEngine(LEARNING_WORLD)
    sim.reset(3)
    np.testing.assert_array_equal(frame[:, 68:], sim.step("up"))  # the real world moved up
    np.testing.assert_array_equal(
        frame[:, :64], np.clip(real_first_frame(3).astype(int) - 10, 0, 255)
    )
    assert dream.received == [ACTION_NAMES.index("up")]
    assert both.actions == ACTION_NAMES and both.name == "fake | real"
    both.decode_steps = 7
    assert dream.decode_steps == 7 and both.decode_steps == 7
    with pytest.raises(ValueError, match="gap"):
        SideBySide(dream, gap=-1)
    with pytest.raises(TypeError, match="reset"):
        SideBySide(object())
    with pytest.raises(ValueError, match="unknown action"):
        both.step(17)


def test_panel_switches_engines_and_resets_to_the_current_seed():
    fake, sim = FakeDream(), SimulatorEngine(LEARNING_WORLD)
    panel = dream_play({"simulator": sim, "fake": fake}, seed=5, keyboard=False)
    assert isinstance(panel, DreamPlay) and isinstance(panel.player, PlayWidget)
    assert panel.engine_menu.options == ("simulator", "fake")
    assert panel.controller.frame.shape == (64, 132, 3)  # side by side by default
    assert panel.steps.disabled  # the simulator has no decoding steps
    panel.controller.press("right")
    panel.player.seed.value = 9  # typed into the seed box: the next engine starts there
    panel.engine_menu.value = "fake"
    assert isinstance(panel.controller.engine, SideBySide) and panel.controller.engine.dream is fake
    assert panel.controller.seed == 9 and panel.controller.steps == 0
    np.testing.assert_array_equal(panel.controller.frame[:, :64], real_first_frame(9))
    assert not panel.steps.disabled and panel.steps.value == 4  # shows the engine's own value
    panel.controller.press("left")
    assert fake.received == [ACTION_NAMES.index("left")]


def test_steps_slider_sets_decode_steps_and_checkbox_drops_the_real_world():
    fake = FakeDream(decode_steps=2)
    panel = dream_play({"fake": fake}, seed=1, keyboard=False)
    panel.steps.value = 6
    assert fake.decode_steps == 6
    first = real_first_frame(1).astype(int)
    frame = panel.controller.press("noop")
    np.testing.assert_array_equal(frame[:, :64], np.clip(first - 60, 0, 255))
    panel.beside.value = False
    assert panel.controller.engine is fake and panel.controller.frame.shape == (64, 64, 3)
    assert fake.decode_steps == 6  # switching views keeps the engine's setting


def test_info_line_reads_the_steps_back_from_the_engine():
    fake, sim = FakeDream(decode_steps=2), SimulatorEngine(LEARNING_WORLD)
    panel = dream_play({"fake": fake, "simulator": sim}, keyboard=False)
    assert "fake: 2 decoding steps" in panel.info.value
    panel.steps.value = 5
    assert "fake: 5 decoding steps" in panel.info.value
    panel.engine_menu.value = "simulator"
    assert "simulator: no decoding steps" in panel.info.value
    refusing = dream_play({"broken": BrokenDream()}, keyboard=False)
    refusing.steps.value = 12  # refused: the line shows what the engine kept, not what was asked
    assert "broken: 2 decoding steps" in refusing.info.value
    for name in ("hh-dream", "hh-dream-info"):
        assert name in (panel._dom_classes + panel.info._dom_classes)
    assert "hh-engine" in panel.engine_menu._dom_classes
    assert "hh-steps" in panel.steps._dom_classes


def test_errors_are_shown_not_raised():
    panel = dream_play({"broken": BrokenDream()}, keyboard=False)
    panel.controller.press("up")  # the engine raises inside step
    assert "the dream fell apart" in panel.controller.last_error
    assert "the dream fell apart" in panel.player.error.value
    panel.steps.value = 12  # the engine refuses this step count
    assert "at most 8 steps" in panel.status.value
    panel.steps.value = 3
    assert panel.status.value == ""
    with pytest.raises(ValueError, match="non-empty dict"):
        dream_play({})
    with pytest.raises(TypeError, match="step"):
        dream_play({"bad": object()})


class LatentDream(FakeDream):
    """A dream played through latent codes: a raw code ``k`` brightens the frame by 20 * (k + 1)
    grey levels, so the frame shows which code the engine received."""

    name = "latent"
    latent_codes = 4

    def buttons_of_code(self, code: int) -> list[str]:
        return ["up"] if code == 3 else []

    def step_code(self, code: int) -> np.ndarray:
        if not 0 <= code < self.latent_codes:
            raise ValueError(f"latent codes lie in 0..3; got {code}")
        self.received.append(("code", code))
        self.frame = np.clip(self.frame + 20 * (code + 1), 0, 255)
        return self.frame.astype(np.uint8)


def test_code_buttons_step_the_dream_with_a_raw_latent_code():
    dream = LatentDream()
    panel = dream_play(
        {"latent": dream, "fake": FakeDream(), "simulator": SimulatorEngine(LEARNING_WORLD)},
        seed=2,
        keyboard=False,
    )
    assert [b.description for b in panel.code_buttons] == [f"code {k}" for k in range(4)]
    assert panel.codes.layout.display == "" and "hh-codes" in panel.codes._dom_classes
    assert "hh-code-3" in panel.code_buttons[3]._dom_classes
    assert "up" in panel.code_buttons[3].tooltip and "none" in panel.code_buttons[0].tooltip
    before = panel.controller.frame.copy()
    panel.code_buttons[3].click()  # the learner presses "code 3"
    assert dream.received == [("code", 3)] and panel.controller.steps == 1
    first = real_first_frame(2).astype(int)
    np.testing.assert_array_equal(panel.controller.frame[:, :64], np.clip(first + 80, 0, 255))
    np.testing.assert_array_equal(panel.controller.frame[:, 68:], before[:, 68:])  # real waits
    panel.controller.press("right")  # the buttons still go through the action map
    assert dream.received[-1] == ACTION_NAMES.index("right")
    sim = SimulatorEngine(LEARNING_WORLD)
    sim.reset(2)
    np.testing.assert_array_equal(panel.controller.frame[:, 68:], sim.step("right"))
    panel.beside.value = False  # the dream alone: codes still reach it
    panel.code_buttons[0].click()
    assert dream.received[-1] == ("code", 0) and panel.controller.frame.shape == (64, 64, 3)
    panel.press_code(7)  # a code the engine refuses: shown, not raised
    assert "latent codes lie in 0..3" in panel.player.error.value
    for other in ("fake", "simulator"):  # engines without latent codes get no code row
        panel.engine_menu.value = other
        assert panel.code_buttons == [] and panel.codes.layout.display == "none"
    with pytest.raises(RuntimeError, match="reset"):
        SideBySide(LatentDream()).step_code(0)
