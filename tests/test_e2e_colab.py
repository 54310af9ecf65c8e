"""The Colab widget stack in a real browser: ipywidgets 7.7 in the classic Notebook, buttons only.

Colab renders widgets with ipywidgets 7.7 (its front end is the classic Notebook's widget manager,
widgetsnbextension 3.6) and delivers no reliable key events to widgets. This test runs notebooks 00
and 04 in that stack and steers the live world with the mouse only:

- notebook 00 (``play``): every move button changes the picture, interact steps the world, the Play
  clock advances it and Pause holds it still, Reset brings back the first frame pixel for pixel;
- notebook 04 (``dream_play``): the same buttons and clock on the dream beside the real world, the
  steps slider changes the engine's decoding steps (read back from the kernel), the engine selector
  switches engines (the slider greys out for the simulator) and play goes on after each switch;
- nothing shows a widget error: no "Error displaying widget", no error line in the widget, no
  error output in any cell, no uncaught exception in the page.

The notebook server and its kernel run in a separate environment with Colab's versions pinned
(``tests/colab/colab-pins.txt``), made by ``make colab-venv`` (``.venv-colab/``); the browser and
this test run in the project's own ``.venv``. ``make e2e-colab`` makes both and runs this file.
Screenshots for humans land in runs/e2e-colab/.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_e2e_browser import (  # noqa: E402  (the browser helpers of the JupyterLab test)
    CHROMIUM,
    CHROMIUM_ARGS,
    FRAME_SIGNATURE_JS,
    _stop,
    free_port,
)

ROOT = Path(__file__).resolve().parents[1]
COLAB_VENV = ROOT / os.environ.get("HITCHHIKER_COLAB_VENV", ".venv-colab")
"""The environment with Colab's pins (``make colab-venv``); a relative path is the repository's."""
NOTEBOOKS = ROOT / "notebooks"
SHOTS = ROOT / "runs" / "e2e-colab"
PINNED_WIDGETS = "7.7.1"
"""ipywidgets version the kernel must report (tests/colab/colab-pins.txt)."""

RUN_TIMEOUT_MS = 240_000
"""Time allowed for a whole notebook to run (smoke mode; notebook 04 trains tiny models)."""
STEP_TIMEOUT_MS = 20_000
"""Time allowed for one click to come back as a new frame (a dream step, on a busy machine)."""

WIDGET_ERRORS = ("Error displaying widget", "Error rendering widget", "model not found")
"""What the classic widget manager writes into the page when a widget cannot be shown."""

VERSION_CELL = (
    "import ipywidgets, sys\n"
    "print('widget stack:', ipywidgets.__version__, 'in', sys.prefix, 'keys:', "
    "'ipyevents' in sys.modules)"
)
"""Appended to each notebook copy: proves which environment the kernel ran in."""

pytestmark = pytest.mark.e2e_colab


def _need(what: str, ok: bool, hint: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} missing: {hint}")
    pytest.skip(f"{what} missing: {hint}")


# -- the classic Notebook server of the Colab environment -----------------------------------


class NotebookServer:
    def __init__(self, url: str, token: str, log: Path):
        self.url, self.token, self.log = url, token, log

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/notebooks/{name}?token={self.token}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError as err:
            return f"(no server log: {err})"


@contextlib.contextmanager
def classic_notebook(root_dir: Path, home: Path, timeout: float = 90.0) -> Iterator[NotebookServer]:
    """``jupyter notebook`` (6.5, classic) from the Colab environment, on loopback; stopped on exit."""
    jupyter = COLAB_VENV / "bin" / "jupyter-notebook"
    env = dict(
        os.environ,
        HITCHHIKER_SMOKE="1",
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
        IPYTHONDIR=str(home / "ipython"),
        MPLBACKEND="Agg",
        PATH=f"{COLAB_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    for leak in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "JUPYTER_PATH"):
        env.pop(leak, None)  # the kernel must see the Colab environment only
    port, token = free_port(), secrets.token_hex(16)
    log = home / "server.log"
    cmd = [
        str(jupyter),
        "--no-browser",
        f"--NotebookApp.token={token}",
        "--NotebookApp.ip=127.0.0.1",
        f"--NotebookApp.port={port}",
        "--NotebookApp.port_retries=0",
        f"--NotebookApp.notebook_dir={root_dir}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root_dir, start_new_session=True
        )
    server = NotebookServer(f"http://127.0.0.1:{port}", token, log)
    try:
        _wait_until_up(server, proc, timeout)
        yield server
    finally:
        _stop(proc)


def _wait_until_up(server: NotebookServer, proc: subprocess.Popen, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter notebook exited ({proc.returncode}):\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(
                f"{server.url}/api/status?token={server.token}", timeout=2
            ) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"jupyter notebook not up after {timeout:.0f}s:\n{server.log_tail()}")


def _notebook_copy(name: str, dest_dir: Path) -> str:
    """Copy notebooks/NAME.ipynb with a python3 kernelspec and the version cell appended."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells.append(nbformat.v4.new_code_cell(VERSION_CELL))
    nbformat.write(nb, dest_dir / f"{name}.ipynb")
    return f"{name}.ipynb"


# -- driving the classic UI ------------------------------------------------------------------

KERNEL_READY_JS = """() => !!(window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel
    && Jupyter.notebook.kernel.is_connected() && Jupyter.WidgetManager !== undefined)"""
"""The page has a connected kernel and the widget extension (jupyter-js-widgets) loaded."""
RUN_DONE_JS = r"""() => {
    const prompts = [...document.querySelectorAll('.code_cell .input_prompt')];
    return prompts.length > 0 && prompts.every(p => /\[\d+\]/.test(p.innerText))
        && document.querySelector('#kernel_indicator_icon.kernel_idle_icon') !== null;
}"""
"""Every code cell has run ("In [n]") and the kernel is idle."""


def _run_all(page) -> None:
    """Cell > Run All, as a learner would."""
    page.wait_for_function(KERNEL_READY_JS, timeout=60_000)
    page.locator("#menus a.dropdown-toggle", has_text=re.compile(r"^\s*Cell\s*$")).click()
    page.locator("#run_all_cells a").click()
    page.wait_for_function(RUN_DONE_JS, timeout=RUN_TIMEOUT_MS, polling=500)


def _check_no_errors(page, errors: list[str]) -> None:
    text = page.locator("#notebook-container").inner_text()
    for marker in WIDGET_ERRORS:
        assert marker not in text, f"the page shows {marker!r}"
    failed = page.locator(".output_error")
    assert failed.count() == 0, f"a cell failed:\n{failed.first.inner_text()[-3000:]}"
    assert not errors, f"uncaught errors in the page: {errors}"


def _check_stack(page) -> None:
    """The kernel ran in the Colab environment, with ipywidgets 7.7 and no key events library."""
    line = page.locator(".output_area pre", has_text="widget stack:").last.inner_text()
    version, prefix, keys = re.match(r"widget stack: (\S+) in (\S+) keys: (\S+)", line).groups()
    assert version == PINNED_WIDGETS, line
    assert Path(prefix).resolve() == COLAB_VENV.resolve(), line
    assert keys == "False", line


def _step_of(readout) -> int:
    text = readout.inner_text()
    match = re.match(r"step (\d+) ", text)
    if not match:
        raise AssertionError(f"unexpected readout {text!r}")
    return int(match.group(1))


class Player:
    """One ``.hh-play`` widget on the page, steered with the mouse only."""

    def __init__(self, page, root):
        self.page, self.root = page, root
        self.img = root.locator(".hh-frame img")
        self.readout = root.locator(".hh-readout")
        self.img.wait_for(state="visible", timeout=STEP_TIMEOUT_MS)
        self.root.scroll_into_view_if_needed()
        self.step = _step_of(self.readout)
        self.signature, self.src = self.picture()

    def picture(self) -> tuple[str, str]:
        return self.img.evaluate(FRAME_SIGNATURE_JS), self.img.get_attribute("src")

    def wait_for_step(self, step: int) -> None:
        self.page.wait_for_function(
            "([el, text]) => el.innerText.startsWith(text)",
            arg=[self.readout.element_handle(), f"step {step} "],
            timeout=STEP_TIMEOUT_MS,
        )
        self.step = step

    def press(self, name: str, must_change: bool = True) -> None:
        self.root.locator(f".hh-btn-{name}").click()
        self.wait_for_step(self.step + 1)  # the readout follows the image in the same update
        signature, src = self.picture()
        if must_change:
            assert src != self.src, f"button {name}: image src did not change"
            assert signature != self.signature, f"button {name}: the picture did not change"
        self.signature, self.src = signature, src

    def clock(self) -> None:
        """Play until the clock has stepped the world twice, Pause, and the world holds still."""
        buttons = self.root.locator(".hh-clock button")  # play, pause, stop, repeat (7 and 8)
        buttons.nth(0).click()
        self.wait_for_step(self.step + 2)
        buttons.nth(1).click()
        self.page.wait_for_timeout(800)  # ticks already in flight land
        stopped = _step_of(self.readout)
        self.page.wait_for_timeout(1200)
        assert _step_of(self.readout) == stopped, "the clock kept stepping after Pause"
        self.step = stopped
        self.signature, self.src = self.picture()

    def assert_no_error(self) -> None:
        assert self.root.locator(".hh-error").is_hidden(), self.root.locator(
            ".hh-error"
        ).inner_text()


MOVES = ("right", "down", "left", "up", "right")
"""Each faces a new way, so the explorer's sprite changes even where the move is blocked."""


def _play_road(page) -> None:
    """Notebook 00: the simulator, by buttons and clock; Reset restores the first frame."""
    player = Player(page, page.locator(".hh-play").first)
    assert player.step == 0
    first = player.signature
    for name in MOVES:
        player.press(name)
    player.press("interact", must_change=False)  # facing water, nothing may change on screen
    page.screenshot(path=str(SHOTS / "00_the_road-moved.png"))  # to compare with the reset one
    player.clock()
    player.root.locator(".hh-reset").click()
    player.wait_for_step(0)
    page.wait_for_function(
        "([img, src]) => img.getAttribute('src') !== src",
        arg=[player.img.element_handle(), player.src],
        timeout=STEP_TIMEOUT_MS,
    )
    assert player.img.evaluate(FRAME_SIGNATURE_JS) == first, "Reset did not restore the world"
    player.assert_no_error()
    hint = player.root.locator(".hh-hint").inner_text()
    assert "buttons only" in hint, f"keys claimed without ipyevents: {hint!r}"


def _play_dream(page) -> None:
    """Notebook 04: the dream panel; buttons, clock, steps slider and engine selector."""
    panel = page.locator(".hh-dream").first
    info = panel.locator(".hh-dream-info")
    status = panel.locator(".hh-dream-status")
    menu = panel.locator(".hh-engine select")
    # ipywidgets 7 writes option labels with non-breaking spaces.
    engines = [o.replace("\xa0", " ").strip() for o in menu.locator("option").all_inner_texts()]
    assert len(engines) >= 2 and "simulator" in engines, engines
    first_engine = engines[menu.evaluate("(el) => el.selectedIndex")]

    player = Player(page, panel.locator(".hh-play"))
    for name in MOVES:
        player.press(name)
    player.press("interact", must_change=False)
    player.clock()

    # The steps slider: drag it to the far right and to the far left; the engine reads back.
    slider = panel.locator(".hh-steps")
    track = slider.locator(".slider-container, .widget-slider, .ui-slider").first
    # Each press below faces a new way (the last move faced right), so the real half changes.
    for (where, expect), turn in zip(((0.99, None), (0.01, 1)), ("down", "left")):
        box = track.bounding_box()
        readout = slider.locator(".widget-readout")
        before = readout.inner_text().strip()
        page.mouse.click(box["x"] + where * box["width"], box["y"] + box["height"] / 2)
        if expect is None:  # the slider's maximum, whatever the engine's default raised it to
            # Read it from the slider's own readout once it has moved: the info line still
            # names the engine's default (2 steps, say) until the kernel has answered the click.
            expect = int(
                page.wait_for_function(
                    "([el, before]) => { const v = el.innerText.trim();"
                    " return v !== before && +v > 1 ? v : null; }",
                    arg=[readout.element_handle(), before],
                    timeout=STEP_TIMEOUT_MS,
                ).json_value()
            )
        page.wait_for_function(
            "([el, text]) => el.innerText.includes(text)",
            arg=[info.element_handle(), f"{first_engine}: {expect} decoding steps"],
            timeout=STEP_TIMEOUT_MS,
        )
        assert status.inner_text().strip() == "", status.inner_text()
        player.press(turn)  # plays on with the new step count

    # The engine selector: the simulator (no decoding steps: slider greyed out), then another dream.
    for engine in ["simulator"] + [e for e in engines if e not in ("simulator", first_engine)][:1]:
        old_root = player.root.element_handle()
        menu.select_option(index=engines.index(engine))
        page.wait_for_function(
            "([el, text]) => el.innerText.includes(text)",
            arg=[info.element_handle(), f"{engine}: "],
            timeout=STEP_TIMEOUT_MS,
        )
        # The new player's views arrive after the info line: wait for the old one to be gone.
        # (Its first frame may equal the old one's: every engine starts from the real frame.)
        page.wait_for_function(
            """([panel, old]) => {
                const players = panel.querySelectorAll('.hh-play');
                if (players.length !== 1 || players[0] === old || old.isConnected) return false;
                const img = players[0].querySelector('.hh-frame img');
                const readout = players[0].querySelector('.hh-readout');
                return img && readout && readout.innerText.startsWith('step 0 ');
            }""",
            arg=[panel.element_handle(), old_root],
            timeout=STEP_TIMEOUT_MS,
        )
        player = Player(page, panel.locator(".hh-play"))  # a fresh player for the new engine
        greyed = slider.evaluate(
            "(el) => el.querySelector('.ui-state-disabled, [disabled], .ui-slider-disabled')"
            " !== null || el.classList.contains('mod-disabled')"
        )
        assert greyed == (engine == "simulator"), f"{engine}: slider disabled={greyed}"
        for name in ("right", "down"):  # the explorer starts facing neither (see MOVES)
            player.press(name)
        player.assert_no_error()
    assert status.inner_text().strip() == "", status.inner_text()


PLAYS = {"00_the_road": _play_road, "04_latent_actions_and_masked_dynamics": _play_dream}
ONLY = os.environ.get("HITCHHIKER_COLAB_E2E_ONLY", "")
"""Run only the notebooks whose name starts with this (e.g. 04), to iterate on one."""


def test_colab_widget_stack_buttons_only(tmp_path):
    _need("chromium", CHROMIUM.exists(), "apt-get install -y chromium (make e2e-colab does)")
    _need(
        "the Colab environment",
        (COLAB_VENV / "bin" / "jupyter-notebook").exists(),
        f"make colab-venv (looked in {COLAB_VENV})",
    )
    sync_api = pytest.importorskip("playwright.sync_api")
    notebooks, home = tmp_path / "notebooks", tmp_path / "home"
    notebooks.mkdir()
    home.mkdir()
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "failure.png").unlink(missing_ok=True)

    with classic_notebook(notebooks, home) as server, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for stem, steer in PLAYS.items():
                if not stem.startswith(ONLY):
                    continue
                name = _notebook_copy(stem, notebooks)
                page = browser.new_page(viewport={"width": 1300, "height": 1100})
                errors: list[str] = []
                # Hide the "try Notebook 7" news as a click on its "don't show" would (the
                # server's show_banner=False instead breaks the page's own script in 6.5.7).
                page.add_init_script("localStorage.setItem('showNotebookNews', 'false')")
                page.on(
                    "pageerror", lambda exc, errors=errors: errors.append(exc.stack or str(exc))
                )
                try:
                    page.goto(server.notebook_url(name))
                    _run_all(page)
                    _check_no_errors(page, errors)
                    _check_stack(page)
                    steer(page)
                    _check_no_errors(page, errors)
                    page.locator(".hh-play").first.scroll_into_view_if_needed()
                    page.screenshot(path=str(SHOTS / f"{stem}.png"))
                except Exception as exc:
                    page.screenshot(path=str(SHOTS / "failure.png"))
                    raise AssertionError(
                        f"{stem}: {exc}\n--- page errors ---\n{errors}\n"
                        f"--- server log ---\n{server.log_tail()}"
                    ) from exc
                finally:
                    page.close()
        finally:
            browser.close()
            (SHOTS / "server.log").write_text(server.log_tail(200_000))
