"""A live loss curve for notebooks, refreshed in place while a model trains.

The figure is drawn off-screen with matplotlib's Agg canvas (no pyplot, so no global figure state
and no duplicate inline output), rendered to PNG, and pushed through an IPython display handle:
``display(..., display_id=True)`` once, then ``handle.update(...)`` every ``every`` steps, so the
output cell shows one image that changes instead of a growing stack of images.

Outside Jupyter (scripts, tests, CI) a :class:`LivePlot` does nothing, so training code can create
one unconditionally. The curve is the raw per-step loss (faint) plus an exponential moving average

    ema[t] = beta * ema[t-1] + (1 - beta) * loss[t],   debiased by 1 / (1 - beta^(t+1))

on a log-scale y axis, where a steady learning run looks like a falling straight-ish line.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence

import numpy as np


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, classic notebook, Colab, VS Code)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython  # lazy: IPython is only there inside a notebook

    shell = get_ipython()
    return shell is not None and (
        "IPKernelApp" in getattr(shell, "config", {})
        or type(shell).__name__ == "ZMQInteractiveShell"
        or "google.colab" in sys.modules
    )


def ema(values: Sequence[float], beta: float = 0.9) -> np.ndarray:
    """Debiased exponential moving average of ``values`` (same length)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x
    # The recurrence is a causal convolution with weights (1 - beta) * beta^k; truncating the
    # kernel where beta^k < 1e-9 keeps it vectorised at no visible cost.
    length = int(np.ceil(np.log(1e-9) / np.log(beta))) if 0 < beta < 1 else 1
    kernel = (1 - beta) * beta ** np.arange(min(length, len(x)))
    smoothed = np.convolve(x, kernel)[: len(x)]
    return smoothed / (1 - beta ** np.arange(1, len(x) + 1))


class LivePlot:
    """Loss curve shown under the running cell; a no-op when ``enabled`` is False.

    ``enabled=None`` means "only inside a notebook". ``update(losses)`` redraws when at least
    ``every`` new steps arrived since the last draw (or when ``force``).
    """

    def __init__(self, every: int = 25, title: str = "training loss", enabled: bool | None = None):
        if every < 1:
            raise ValueError(f"LivePlot.every must be >= 1, got {every}")
        self.every = every
        self.title = title
        self.enabled = in_notebook() if enabled is None else bool(enabled)
        self._handle = None
        self._drawn_at = 0

    def update(self, losses: Sequence[float], force: bool = False) -> None:
        """Redraw with the full loss history (one float per step) if enough steps are new."""
        if not self.enabled or not len(losses):
            return
        if not force and len(losses) - self._drawn_at < self.every:
            return
        self._drawn_at = len(losses)
        from IPython.display import Image, display  # lazy: only inside a notebook

        image = Image(data=self.render_png(losses), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)

    def render_png(self, losses: Sequence[float]) -> bytes:
        """The figure as PNG bytes (usable without a notebook, e.g. to save a plot)."""
        # lazy: matplotlib is heavy, and a run that never draws never loads it
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        y = np.asarray(losses, dtype=np.float64)
        steps = np.arange(1, len(y) + 1)
        fig = Figure(figsize=(6, 3), dpi=90)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.plot(steps, y, color="tab:blue", alpha=0.3, lw=1, label="loss")
        ax.plot(steps, ema(y), color="tab:blue", lw=2, label="EMA")
        if np.all(y[np.isfinite(y)] > 0):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{self.title}: {y[-1]:.4g} at step {len(y)}")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
