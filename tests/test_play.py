"""Live play without a browser: the controller's logic, frame conversion, PNG encoding, the widget."""

from __future__ import annotations

import io
import math
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

from hitchhiker.engine import as_frame
from hitchhiker.play import KEYMAP, PlayController, PlayWidget, play, to_png, upscale
from hitchhiker.world import ACTION_NAMES, SimulatorEngine

MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


class SquareEngine:
    """A tiny stand-in world: a 2x2 white square on black that moves; interact flips its colour.

    Records every action it receives (as given), so tests can check what the controller sent.
    """

    actions = list(ACTION_NAMES)

    def __init__(self, size: int = 16, fail_on: set[int] | None = None, record: bool = True):
        self.size = size
        self.fail_on = fail_on or set()
        self.record = record
        self.received: list = []
        self.calls = 0

    def reset(self, seed: int) -> np.ndarray:
        self.pos = np.array([seed % (self.size - 2), (seed * 7) % (self.size - 2)])
        self.colour = 255
        return self.render()

    def step(self, action) -> np.ndarray:
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError(f"boom at call {self.calls}")
        if self.record:
            self.received.append(action)
        name = ACTION_NAMES[action] if isinstance(action, int) else action
        if name in MOVES:
            self.pos = np.clip(self.pos + MOVES[name], 0, self.size - 2)
        elif name == "interact":
            self.colour = 128 if self.colour == 255 else 255
        return self.render()

    def render(self) -> np.ndarray:
        frame = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        r, c = self.pos
        frame[r : r + 2, c : c + 2] = self.colour
        return frame


class TorchEngine(SquareEngine):
    """The same world seen through a 'learned model': float torch (3, H, W) in [0, 1], no actions."""

    actions = None  # the controller must fall back to ACTION_NAMES

    def reset(self, seed: int) -> torch.Tensor:
        return torch.from_numpy(super().reset(seed)).permute(2, 0, 1).float() / 255

    def step(self, action) -> torch.Tensor:
        return torch.from_numpy(SquareEngine.step(self, action)).permute(2, 0, 1).float() / 255


def test_real_engine_right_on_open_ground_changes_frame():
    # No day-night tint and no wandering sheep: only the explorer can change the picture.
    engine = SimulatorEngine(day_length=0, animal_move_prob=0.0)
    for seed in range(50):  # a spawn whose east neighbour is open ground, no sheep on it
        engine.reset(seed)
        r, c = engine.env.position
        sheep = {tuple(int(v) for v in p) for p in engine.env.animal_positions()}
        if engine.env.walkable(r, c + 1) and (r, c + 1) not in sheep:
            break
    else:
        pytest.fail("no seed in 0..49 spawns next to open ground on the east")
    ctl = PlayController(engine, seed=seed)
    start = ctl.frame.copy()
    assert start.dtype == np.uint8 and start.shape == (64, 64, 3)
    assert np.array_equal(ctl.press("noop"), start)  # nothing moves by itself here
    after = ctl.press("right")
    assert ctl.last_error is None and ctl.steps == 2
    assert engine.info["moved"] and engine.env.position == (r, c + 1)
    assert not np.array_equal(start, after)
    # Moving east slides the view one tile west: the top row of tiles (no explorer) shifts exactly.
    p = engine.env.tile_px
    assert np.array_equal(after[:p, :-p], start[:p, p:])


# -- controller ----------------------------------------------------------------------------------


def test_press_changes_frame_and_sends_index():
    engine = SquareEngine()
    ctl = PlayController(engine, seed=3)
    before = ctl.frame.copy()
    after = ctl.press("right")
    assert not np.array_equal(before, after)
    assert np.array_equal(after, ctl.frame)
    # the engine receives indices, whether the caller used a name or an index
    ctl.press(ACTION_NAMES.index("down"))
    assert engine.received == [ACTION_NAMES.index("right"), ACTION_NAMES.index("down")]
    assert ctl.steps == 2


def test_frame_is_a_copy_the_engine_cannot_mutate():
    class ReusingEngine(SquareEngine):
        def render(self):
            self.buffer = getattr(self, "buffer", np.zeros((16, 16, 3), np.uint8))
            self.buffer[...] = super().render()
            return self.buffer

    engine = ReusingEngine()
    ctl = PlayController(engine)
    first = ctl.frame
    snapshot = first.copy()
    ctl.press("right")
    assert np.array_equal(first, snapshot)  # the stored frame did not change under us


@pytest.mark.parametrize(
    "key, action",
    [
        ("ArrowUp", "up"),
        ("ArrowDown", "down"),
        ("ArrowLeft", "left"),
        ("ArrowRight", "right"),
        ("w", "up"),
        ("a", "left"),
        ("s", "down"),
        ("d", "right"),
        ("D", "right"),
        (" ", "interact"),
        ("e", "interact"),
        ("Enter", "interact"),
        (".", "noop"),
    ],
)
def test_keys_map_to_actions(key, action):
    engine = SquareEngine()
    ctl = PlayController(engine)
    assert ctl.key(key) is not None
    assert engine.received == [ACTION_NAMES.index(action)]
    assert KEYMAP[key.lower()] == action


@pytest.mark.parametrize("key", ["x", "Shift", "Tab", "F5", ""])
def test_unmapped_keys_are_ignored(key):
    engine = SquareEngine()
    ctl = PlayController(engine)
    assert ctl.key(key) is None
    assert engine.received == [] and ctl.steps == 0


def test_key_for_action_the_engine_lacks_is_ignored():
    class NoInteract(SquareEngine):
        actions = ["noop", "up", "down", "left", "right"]

    ctl = PlayController(NoInteract())
    assert ctl.key(" ") is None
    assert ctl.key("ArrowUp") is not None


@pytest.mark.parametrize("bad", ["jump", "Right", 6, -1, True, 2.0, None])
def test_unknown_action_raises_listing_valid_names(bad):
    ctl = PlayController(SquareEngine())
    with pytest.raises(ValueError) as info:
        ctl.press(bad)
    for name in ACTION_NAMES:
        assert name in str(info.value)
    assert repr(bad) in str(info.value)


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match="reset"):
        PlayController(object())
    with pytest.raises(ValueError, match="history"):
        PlayController(SquareEngine(), history=0)
    with pytest.raises(ValueError, match="valid"):
        PlayController(SquareEngine(), auto_action="fly")


def test_engine_without_actions_uses_action_names_and_torch_frames_work():
    engine = TorchEngine()
    ctl = PlayController(engine, seed=2)
    assert ctl.actions == ACTION_NAMES
    assert ctl.frame.dtype == np.uint8 and ctl.frame.shape == (16, 16, 3)
    before = ctl.frame.copy()
    ctl.press("right")
    assert ctl.last_error is None
    assert not np.array_equal(before, ctl.frame)


def test_engine_errors_land_in_last_error_and_play_goes_on():
    engine = SquareEngine(fail_on={2})
    ctl = PlayController(engine)
    seen = []
    ctl.on_frame.append(seen.append)
    ctl.press("right")
    good = ctl.frame.copy()
    returned = ctl.press("right")  # the engine raises on its 2nd step
    assert ctl.last_error is not None
    assert ctl.last_error.startswith("RuntimeError: boom at call 2")
    assert "test_play.py" in ctl.last_error and "in step" in ctl.last_error  # where it was raised
    assert np.array_equal(returned, good) and np.array_equal(ctl.frame, good)
    assert ctl.steps == 1  # a failed step is not a step
    assert len(seen) == 2  # the view hears about failures too, to show the error
    ctl.press("right")  # the controller keeps working, and success clears the error
    assert ctl.last_error is None and ctl.steps == 2
    assert not np.array_equal(ctl.frame, good)


def test_errors_in_reset_and_bad_frames_are_caught():
    class BadReset(SquareEngine):
        def reset(self, seed):
            raise KeyError(f"no world for seed {seed}")

    ctl = PlayController(BadReset())  # the first reset fails: a placeholder frame, the error
    assert "KeyError" in ctl.last_error and "seed 0" in ctl.last_error
    assert ctl.frame.shape == (64, 64, 3) and ctl.frame.dtype == np.uint8

    class BadFrame(SquareEngine):
        def step(self, action):
            return np.zeros((4, 4), np.uint8)  # wrong shape from a model is an engine error

    ctl = PlayController(BadFrame())
    assert ctl.tick() is not None
    assert ctl.last_error.startswith("ValueError") and "(4, 4)" in ctl.last_error


def test_reset_restores_the_world_and_step_count():
    ctl = PlayController(SquareEngine(), seed=5)
    start = ctl.frame.copy()
    for _ in range(3):
        ctl.press("down")
    assert ctl.steps == 3
    assert np.array_equal(ctl.reset(), start)
    assert ctl.steps == 0
    other = ctl.reset(seed=9)
    assert ctl.seed == 9 and not np.array_equal(other, start)


def test_tick_uses_auto_action():
    engine = SquareEngine()
    ctl = PlayController(engine, auto_action="left")
    ctl.tick()
    ctl.auto_action = "up"
    ctl.tick()
    assert engine.received == [ACTION_NAMES.index("left"), ACTION_NAMES.index("up")]


def test_readouts_are_positive_finite_after_steps():
    ctl = PlayController(SquareEngine(), history=5)
    assert ctl.fps == 0.0 and ctl.ms_per_step == 0.0
    for _ in range(8):
        ctl.tick()
    assert math.isfinite(ctl.fps) and ctl.fps > 0
    assert math.isfinite(ctl.ms_per_step) and ctl.ms_per_step > 0
    assert ctl.fps == pytest.approx(1000.0 / ctl.ms_per_step)
    assert ctl.readout().startswith("step 8 · ") and ctl.readout().endswith(" ms/step")


def test_ten_thousand_ticks_keep_memory_bounded():
    ctl = PlayController(SquareEngine(record=False), history=30)
    frames = []
    ctl.on_frame.append(lambda frame: frames.append(frame) if not frames else None)
    for _ in range(200):  # warm up caches and the timing window
        ctl.tick()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(10_000):
            ctl.tick()
        now, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ctl.steps == 10_200
    assert len(ctl._timings) == 30
    assert now - base < 64 * 1024, f"memory grew by {now - base} bytes over 10,000 ticks"


# -- frames and PNG ------------------------------------------------------------------------------


def test_to_png_decodes_to_the_exact_upscaled_array():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(8, 5, 3), dtype=np.uint8)
    for scale in (1, 3):
        png = to_png(frame, scale)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        decoded = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        expected = np.kron(frame, np.ones((scale, scale, 1), dtype=np.uint8))
        assert decoded.shape == (8 * scale, 5 * scale, 3)
        assert np.array_equal(decoded, expected)
    with pytest.raises(ValueError, match="scale"):
        to_png(frame, 0)
    with pytest.raises(ValueError, match="scale"):
        upscale(frame, 1.5)


def test_as_frame_accepts_every_engine_format():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    as_float = ref.astype(np.float32) / 255
    chw = torch.from_numpy(as_float).permute(2, 0, 1).contiguous()
    for variant in (
        ref,
        as_float,
        as_float.astype(np.float64),
        torch.from_numpy(ref.copy()),  # torch HWC uint8
        chw,  # torch CHW float
        torch.from_numpy(as_float),  # torch HWC float
        np.moveaxis(ref, -1, 0),  # numpy CHW
        ref.astype(np.int64),
    ):
        out = as_frame(variant)
        assert out.dtype == np.uint8 and out.shape == (6, 7, 3)
        assert np.array_equal(out, ref)
    grey = as_frame(np.full((4, 4, 1), 0.5))
    assert grey.shape == (4, 4, 3) and (grey == 128).all()
    assert (as_frame(torch.full((3, 3, 3), 1.2)) == 255).all()  # a decoder's overshoot is clipped


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (np.zeros((4, 4), np.uint8), ValueError, "3 dims"),
        (np.zeros((4, 4, 5), np.uint8), ValueError, "channels"),
        (np.full((4, 4, 3), 200.0), ValueError, "[0, 1]"),
        (np.full((4, 4, 3), np.nan), ValueError, "NaN"),
        (np.full((4, 4, 3), 300), ValueError, "[0, 255]"),
        (np.zeros((4, 4, 3), np.complex64), TypeError, "dtype"),
        ([[[0, 0, 0]]], TypeError, "list"),
    ],
)
def test_as_frame_rejects_bad_frames(bad, error, words):
    with pytest.raises(error) as info:
        as_frame(bad)
    assert words in str(info.value)


# -- the widget ----------------------------------------------------------------------------------


def test_widget_buttons_clock_keys_and_reset_drive_the_world():
    engine = SquareEngine()
    widget = play(engine, seed=0, scale=2, fps=8)
    assert isinstance(widget, PlayWidget)
    ctl = widget.controller
    assert set(widget.buttons) == set(ACTION_NAMES)
    assert "hh-btn-right" in widget.buttons["right"]._dom_classes
    assert "hh-frame" in widget.view._dom_classes
    first = widget.image.value
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(first)).convert("RGB")), upscale(ctl.frame, 2)
    )

    values = [first]
    for name in ("right", "down", "interact"):
        widget.buttons[name].click()
        assert widget.image.value != values[-1], name
        values.append(widget.image.value)
    assert ctl.steps == 3
    assert widget.readout.value.startswith("step 3 · ")

    widget.auto.value = "left"
    widget.clock.value = 1  # the Play clock advancing is a tick
    assert engine.received[-1] == ACTION_NAMES.index("left")
    assert widget.image.value != values[-1]
    widget.drop_late_ticks = False  # back-to-back value changes: every one is a tick
    for v in range(2, 5):
        widget.clock.value = v
    assert ctl.steps == 7

    before = widget.image.value
    widget._on_key({"type": "keydown", "key": "ArrowDown"})
    assert widget.image.value != before and ctl.steps == 8
    widget._on_key({"type": "keydown", "key": "q"})
    assert ctl.steps == 8

    widget.seed.value = 0
    widget.reset_button.click()
    assert widget.image.value == first and ctl.steps == 0
    assert widget.readout.value.startswith("step 0 · ")


def test_widget_clock_rewind_is_not_a_tick():
    widget = play(SquareEngine())
    widget.drop_late_ticks = False
    widget.clock.value = 3
    widget.clock.value = 0  # the Stop button rewinds the clock
    assert widget.controller.steps == 1


def test_widget_drops_clock_ticks_that_queue_up():
    widget = play(SquareEngine(), fps=2)  # interval 500 ms: back-to-back ticks are stale
    for v in range(1, 6):
        widget.clock.value = v
    assert widget.controller.steps == 1


def test_widget_shows_errors_only_while_they_last():
    engine = SquareEngine(fail_on={1})
    widget = play(engine)
    assert widget.error.layout.display == "none"
    widget.buttons["up"].click()
    assert widget.error.layout.display != "none"
    assert "RuntimeError" in widget.error.value and "boom" in widget.error.value
    widget.buttons["up"].click()
    assert widget.error.layout.display == "none" and widget.error.value == ""


def test_widget_keyboard_hint_and_custom_actions():
    pytest.importorskip("ipyevents")
    widget = play(SquareEngine(), keyboard=True)
    assert widget.keyboard is not None and widget.keyboard.source is widget.view
    assert "arrows/WASD" in widget.hint.value
    assert "buttons only" in play(SquareEngine(), keyboard=False).hint.value

    class Latent(SquareEngine):
        actions = ["noop", "z0", "z1"]

        def step(self, action):
            self.received.append(action)
            return self.render()

    widget = play(Latent())
    assert set(widget.buttons) == {"noop", "z0", "z1"}
    widget.buttons["z1"].click()
    assert widget.controller.engine.received == [2]


def test_widget_rejects_bad_settings():
    with pytest.raises(ValueError, match="scale"):
        play(SquareEngine(), scale=0)
    with pytest.raises(ValueError, match="fps"):
        play(SquareEngine(), fps=0)
