"""End to end in a real browser: JupyterLab opens notebook 00, runs it, and we play the world.

What this proves that the headless tests cannot: the widget's front end (ipywidgets' and ipyevents'
lab extensions) loads, the PNG frames reach the page, a click on a button and a key press travel
browser -> kernel -> engine -> browser, and keys do not leak into notebook shortcuts.

Run with ``make e2e`` (which installs Debian's chromium if missing). Takes ~15 s on 2 cores.
A screenshot for humans lands in runs/e2e/play.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = Path(os.environ.get("HITCHHIKER_E2E_NOTEBOOK", ROOT / "notebooks" / "00_the_road.ipynb"))
"""The notebook under test; override with HITCHHIKER_E2E_NOTEBOOK to try another."""
SCREENSHOT = ROOT / "runs" / "e2e" / "play.png"

RUN_TIMEOUT_MS = 90_000
"""Time allowed for the whole notebook to run (smoke mode), kernel start included."""
RUN_DONE_JS = r"""() => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
    const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
    return !prompts.some(p => p.innerText.includes('[*]'))
        && (!status || status.getAttribute('data-status') === 'idle');
}"""
"""True once no cell is queued or running."""
QUEUED_JS = r"""() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .some(p => /\[(\*|\d+)\]/.test(p.innerText))"""
"""True once any code cell is queued ("[*]") or has run ("[n]")."""
STEP_TIMEOUT_MS = 10_000
"""Time allowed for one click or key to come back as a new frame."""

pytestmark = pytest.mark.e2e

# -- a throwaway JupyterLab and the browser --------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium; `make e2e` installs it with apt when missing."""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Headless, offline-friendly flags: no GPU, no sandbox (containers run as root), no phoning home."""

LAB_PAGE_CONFIG = {
    "disabledExtensions": {
        # The "would you like news?" toast would cover the notebook; it also fetches from the web.
        "@jupyterlab/apputils-extension:announcements": True,
    }
}
"""page_config.json for the throwaway server."""


def free_port() -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    """A running JupyterLab: where to reach it and where its log goes."""

    url: str
    """Base URL, e.g. http://127.0.0.1:8899 (no trailing slash)."""
    token: str
    """The random token the server demands."""
    log: Path
    """Server stdout + stderr, for failure messages."""

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}"

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server log, for failure messages."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError as err:
            return f"(no server log: {err})"

    def api(self, path: str, body: dict | None = None) -> dict:
        """Call the server's REST API: GET, or POST with a JSON ``body``."""
        request = urllib.request.Request(
            f"{self.url}/api/{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            method="GET" if body is None else "POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def start_kernel_for(self, name: str) -> None:
        """Open a python3 session for notebook ``name``; Lab attaches to it when it opens the file.

        Letting Lab start the kernel itself races: it may ask for a kernel in a dialog, or start
        two, and a widget created while it swaps them shows "model not found".
        """
        self.api(
            "sessions",
            {"path": name, "name": name, "type": "notebook", "kernel": {"name": "python3"}},
        )


@contextlib.contextmanager
def jupyter_lab(root_dir: Path, home: Path, startup_timeout: float = 60.0) -> Iterator[LabServer]:
    """Start ``jupyter lab`` serving ``root_dir``; stop it and its kernels on exit, whatever happens.

    ``home`` is an empty temp dir that receives every per-user Jupyter directory.
    """
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists():
        raise FileNotFoundError(f"expected jupyter next to the interpreter, at {jupyter}")
    config = home / "config"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps(LAB_PAGE_CONFIG))
    env = dict(
        os.environ,
        HITCHHIKER_SMOKE="1",
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        MPLBACKEND="Agg",
    )
    port, token = free_port(), secrets.token_hex(16)
    log = home / "server.log"
    cmd = [
        str(jupyter),
        "lab",
        "--no-browser",
        f"--IdentityProvider.token={token}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # no PyPI queries for the extension panel
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
        cmd.append("--allow-root")
    with open(log, "wb") as out:
        # Own session: on exit we signal the server's whole process group, kernels included.
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root_dir, start_new_session=True
        )
    server = LabServer(url=f"http://127.0.0.1:{port}", token=token, log=log)
    try:
        _wait_until_up(server, proc, startup_timeout)
        yield server
    finally:
        _stop(proc)


def _wait_until_up(server: LabServer, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status = f"{server.url}/api/status?token={server.token}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"jupyter lab exited with code {proc.returncode}:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(status, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"jupyter lab not up after {timeout:.0f}s:\n{server.log_tail()}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (server + kernels), then SIGKILL what is left."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    # Kernels may outlive a server that was killed; the group id is still the server's pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


FRAME_SIGNATURE_JS = """
async (img) => {
    if (!img.complete || img.naturalWidth === 0) {
        await new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; });
    }
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let h = 2166136261 >>> 0;  // FNV-1a over the RGBA bytes
    for (let i = 0; i < data.length; i++) { h = Math.imul(h ^ data[i], 16777619) >>> 0; }
    return `${canvas.width}x${canvas.height}:${h.toString(16)}`;
}
"""
"""Hash of the pixels the browser actually decoded from an <img>: a new blob ``src`` is made on
every update even when the picture is the same, so comparing ``src`` alone proves little."""


# -- the test ----------------------------------------------------------------------------------


def _notebook_copy(dest_dir: Path) -> str:
    """Copy the notebook under test into ``dest_dir``; return its file name.

    The copy gets a python3 kernelspec: committed notebooks may be stripped of it, and without
    one Lab asks which kernel to use in a dialog.
    """
    if not NOTEBOOK.exists():
        raise FileNotFoundError(f"notebook under test not found: {NOTEBOOK}")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, dest_dir / NOTEBOOK.name)
    return NOTEBOOK.name


def _chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} not found: install it with `apt-get install -y chromium` (make e2e does)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def test_play_widget_in_jupyterlab(tmp_path):
    _chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
    notebooks, home = tmp_path / "notebooks", tmp_path / "home"
    notebooks.mkdir()
    home.mkdir()
    name = _notebook_copy(notebooks)
    SCREENSHOT.with_name("failure.png").unlink(missing_ok=True)  # only this run's failure shows

    with jupyter_lab(notebooks, home) as server, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            try:
                server.start_kernel_for(name)
                _play(page, server.notebook_url(name))
            except Exception as exc:
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT.with_name("failure.png")))
                raise AssertionError(
                    f"{exc}\n--- page errors ---\n{errors}\n--- server log ---\n{server.log_tail()}"
                ) from exc
        finally:
            browser.close()


def _run_all_cells(page, attempts: int = 4) -> None:
    """Run > Run All Cells, as a learner would, until the cells are queued.

    While Lab is still wiring the kernel to the notebook (a second or two after load; the kernel
    status can read "idle" before any kernel exists) the command is inert and nothing queues, so
    we check for a queued or finished prompt ("[*]" or "[n]") and try again if there is none.
    Retrying cannot run a cell twice: it happens only when nothing was queued.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(attempts):
        _accept_kernel_dialog(page)
        page.locator("#jp-MainMenu").get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(QUEUED_JS, timeout=5_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"Run All Cells queued nothing after {attempts} attempts")


def _accept_kernel_dialog(page) -> None:
    """Lab sometimes still asks "Select Kernel" though a python3 session exists: accept python3.

    A learner would click Select too; the dialog otherwise blocks every click on the page.
    """
    dialog = page.locator(".jp-Dialog")
    try:
        dialog.wait_for(state="visible", timeout=1_500)
    except Exception:  # no dialog: the usual case
        return
    if "Select Kernel" in dialog.inner_text():
        dialog.get_by_role("button", name="Select", exact=True).click()
        dialog.wait_for(state="hidden", timeout=10_000)


def _play(page, url: str) -> None:
    page.goto(url)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    _run_all_cells(page)

    play = page.locator(".hh-play").first
    frame_img = play.locator(".hh-frame img")
    frame_img.wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    # Clicks are kernel messages: they wait behind the cells still queued, so let the run finish.
    page.wait_for_function(RUN_DONE_JS, timeout=RUN_TIMEOUT_MS)
    cells = page.locator(".jp-Notebook .jp-Cell").count()
    readout = play.locator(".hh-readout")
    # Lab skips rendering cells out of view (content-visibility): an unrendered readout reads ''.
    # The widget is taller than the viewport, so bring its readout (below the frame) into view.
    readout.scroll_into_view_if_needed()
    page.wait_for_function(
        "el => el.innerText.startsWith('step ')",
        arg=readout.element_handle(),
        timeout=STEP_TIMEOUT_MS,
    )
    assert _step_of(readout) == 0, readout.inner_text()

    first = frame_img.evaluate(FRAME_SIGNATURE_JS)
    state = {"step": 0, "signature": first, "src": frame_img.get_attribute("src")}

    def wait_for_step(step: int) -> None:
        page.wait_for_function(
            "([el, text]) => el.innerText.startsWith(text)",
            arg=[readout.element_handle(), f"step {step} "],
            timeout=STEP_TIMEOUT_MS,
        )
        state["step"] = step

    def expect_new_frame(what: str) -> None:
        # The readout is sent after the image in the same update: once it shows the new step
        # count, the new frame has arrived too.
        wait_for_step(state["step"] + 1)
        signature, src = frame_img.evaluate(FRAME_SIGNATURE_JS), frame_img.get_attribute("src")
        assert src != state["src"], f"{what}: image src did not change"
        assert signature != state["signature"], f"{what}: the picture did not change"
        state.update(signature=signature, src=src)

    # Every move below faces a new way, so the explorer's sprite changes even when the move is
    # blocked: each one must change the picture, whatever the map looks like around the spawn.
    for name in ("right", "down", "left", "up", "right"):
        play.locator(f".hh-btn-{name}").click()
        expect_new_frame(f"button {name}")
    play.locator(".hh-btn-interact").click()  # may change nothing on screen (facing water)
    wait_for_step(state["step"] + 1)
    state.update(
        signature=frame_img.evaluate(FRAME_SIGNATURE_JS), src=frame_img.get_attribute("src")
    )

    # Keys reach the world while the pointer is over the view (ipyevents); click it first.
    frame_img.click()
    for key in ("ArrowDown", "ArrowLeft", "ArrowUp", "ArrowRight", "s", "a"):
        page.keyboard.press(key)
        expect_new_frame(f"key {key}")
    # d, d is JupyterLab's delete-cell shortcut in command mode: the view must swallow it.
    page.keyboard.press("d")
    page.keyboard.press("d")
    wait_for_step(state["step"] + 2)
    assert page.locator(".jp-Notebook .jp-Cell").count() == cells, "a key press deleted a cell"

    # The clock: play until it has ticked twice, stop, and the world holds still.
    clock = play.locator(".hh-clock button")
    clock.nth(0).click()
    wait_for_step(state["step"] + 2)
    clock.nth(1).click()
    page.wait_for_timeout(500)  # ticks already in flight land
    stopped = _step_of(readout)
    page.wait_for_timeout(1000)
    assert _step_of(readout) == stopped, "the clock kept stepping after Stop"

    # Reset with the same seed brings back the very first frame, pixel for pixel.
    play.locator(".hh-reset").click()
    wait_for_step(0)
    page.wait_for_function(
        "([img, src]) => img.getAttribute('src') !== src",
        arg=[frame_img.element_handle(), state["src"]],
        timeout=STEP_TIMEOUT_MS,
    )
    assert frame_img.evaluate(FRAME_SIGNATURE_JS) == first, "Reset did not restore the world"
    assert play.locator(".hh-error").is_hidden()

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))


def _step_of(readout) -> int:
    """The N of the widget's 'step N · X fps · Y ms/step' readout."""
    text = readout.inner_text()
    head = text.split("·")[0].split()
    if len(head) != 2 or head[0] != "step" or not head[1].isdigit():
        raise AssertionError(f"unexpected readout {text!r}")
    return int(head[1])
