"""Pictures and widgets for notebook 03: views with their captions, facts ticked against the
truth, the caption composer, the view reader, infilling in both modalities, and the race between
the masked model and its autoregressive baseline, region by region.

Everything here draws or wires widgets; nothing trains. Widgets use only ipywidgets calls valid on
7.7 and 8 (Dropdown, SelectMultiple, IntSlider, FloatSlider, Output, interactive_output).

Shapes: B batch, h x w view codes, frames uint8 (B, 64, 64, 3).
"""

from __future__ import annotations

import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from ipywidgets import (
    Dropdown,
    FloatSlider,
    GridBox,
    HBox,
    IntSlider,
    Layout,
    SelectMultiple,
    VBox,
    interactive_output,
)
from matplotlib.colors import ListedColormap

from hitchhiker.tokens import decode_tokens, encode_frames
from hitchhiker.unified import facts as fx
from hitchhiker.world import (
    HEADING_NAMES,
    REGIONS,
    TILE_NAMES,
    WALKABLE_KINDS,
    Facts,
    describe,
    parse_caption,
)

TICK, CROSS = "\u2713", "\u2717"


def wrap(caption: str, width: int = 34) -> str:
    return "\n".join(textwrap.wrap(caption, width)) or "(empty caption)"


def show_views(frames: np.ndarray, titles=None, captions=None, cols: int = 4, size: float = 2.2):
    """A grid of views, each with an optional title and a wrapped caption underneath."""
    n = len(frames)
    rows = -(-n // cols)
    extra = 1.6 if captions is not None else 0.3
    fig, axes = plt.subplots(
        rows, cols, figsize=(size * cols, (size + extra) * rows), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(frames[i], interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
        if captions is not None:
            ax.text(0.0, -0.04, wrap(captions[i]), transform=ax.transAxes, va="top", fontsize=7)
    fig.tight_layout()
    return fig


def tick_list(asked: Facts, got: Facts | None) -> str:
    """One line per requested atomic fact, ticked when it holds in ``got``."""
    rows = fx.fact_table(asked, got)
    return "\n".join(f"{TICK if ok else CROSS} {label}" for label, ok in rows)


def said_vs_true(caption: str, truth: Facts) -> str:
    """The facts a caption states, each ticked (true of the view) or crossed, and what it missed."""
    try:
        said = parse_caption(caption)
    except ValueError as err:
        return f"{CROSS} the caption does not parse: {err}"
    lines = [f"{TICK if ok else CROSS} {label}" for label, ok in fx.fact_table(said, truth)]
    missed = fx.atomic_facts(truth) - fx.atomic_facts(said)
    lines += [f"  (not said: {fx.fact_label(f)})" for f in sorted(missed)]
    return "\n".join(lines)


def read_facts(frames: np.ndarray) -> list[Facts]:
    return fx.facts_of_frames(frames)


# ----------------------------------------------------------------------------- widgets


def compose_facts(facing, ground, kinds: dict[str, str], sheep=()) -> Facts:
    return Facts(facing=facing, standing_on=ground, regions=kinds, animals=tuple(sheep))


def caption_composer(model, tokenizer, start: Facts | None = None):
    """Dropdowns for facing, ground and the kind of each region, sheep regions, samples, steps,
    guidance: each change writes the caption and draws the views the model makes of it."""
    start = start or Facts("north", "grass", dict.fromkeys(REGIONS, "grass"))
    walk = [TILE_NAMES[k] for k in WALKABLE_KINDS]
    w = {
        "facing": Dropdown(options=list(HEADING_NAMES), value=start.facing, description="facing"),
        "ground": Dropdown(options=walk, value=start.standing_on, description="stand on"),
    }
    for r in REGIONS:
        w[r] = Dropdown(options=list(TILE_NAMES), value=start.regions[r], description=r)
    w["sheep"] = SelectMultiple(options=list(REGIONS), value=start.animals, description="sheep")
    w["samples"] = IntSlider(value=4, min=1, max=8, description="samples")
    w["steps"] = IntSlider(value=model.decoding["t2i_steps"], min=1, max=24, description="steps")
    w["guidance"] = FloatSlider(
        value=model.decoding["guidance"], min=0.0, max=6.0, step=0.5, description="guidance"
    )

    def draw(**v):
        kinds = {r: v[r] for r in REGIONS}
        asked = compose_facts(v["facing"], v["ground"], kinds, v["sheep"])
        with torch.inference_mode():
            views = model.text_to_image([asked] * v["samples"], v["steps"], v["guidance"], seed=0)
        frames = decode_tokens(tokenizer, views)
        got = read_facts(frames)
        titles = [f"{fx.fact_share(asked, g):.0%} of facts hold" for g in got]
        print(describe(asked))
        show_views(frames, titles, cols=min(4, len(frames)))
        plt.show()

    out = interactive_output(draw, w)
    grid = GridBox(list(w.values()), layout=Layout(grid_template_columns="repeat(3, 320px)"))
    return VBox([grid, out])


def view_reader(model, tokenizer, frames: np.ndarray, truths: list[Facts]):
    """A slider over held-out views: the caption the model reads off each one, every stated fact
    ticked or crossed against the ground truth; a second slider sets how many captions it writes
    and checks (:func:`.self_check.best_caption_of`)."""

    codes = encode_frames(tokenizer, frames)
    index = IntSlider(value=0, min=0, max=len(frames) - 1, description="view")
    n = IntSlider(
        value=model.decoding.get("i2t_candidates", 1), min=1, max=16, description="candidates"
    )

    def read(i, n):
        with torch.inference_mode():
            caption = model.image_to_text(codes[i : i + 1], candidates=n)[0]
        fig, ax = plt.subplots(figsize=(2.6, 2.6))
        ax.imshow(frames[i], interpolation="nearest")
        ax.axis("off")
        plt.show()
        print("model:", caption)
        print("truth:", describe(truths[i]))
        print(said_vs_true(caption, truths[i]))

    out = interactive_output(read, {"i": index, "n": n})
    return VBox([HBox([index, n]), out])


# ----------------------------------------------------------------------------- infilling, race


def show_infill(before: np.ndarray, holes: np.ndarray, after: np.ndarray, captions=None):
    """Rows of (given, with holes, infilled) views; ``captions``: (given, holed, filled) strings."""
    n = len(before)
    fig, axes = plt.subplots(n, 3, figsize=(9.6, 4.4 * n if captions else 3.0 * n), squeeze=False)
    names = ("given", "holes ([MASK] grey)", "infilled")
    for i in range(n):
        for j, img in enumerate((before[i], holes[i], after[i])):
            ax = axes[i, j]
            ax.imshow(img, interpolation="nearest")
            ax.axis("off")
            ax.set_title(names[j], fontsize=9)
            if captions is not None:
                ax.text(
                    0, -0.04, wrap(captions[j][i], 40), transform=ax.transAxes, va="top", fontsize=7
                )
    fig.tight_layout()
    return fig


def show_task_masks(
    task: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor, caption_len: int
):
    """What each training row hides: one row per sequence, [caption | view] left to right.

    ``task`` (B,) task ids (0 text-to-image, 1 image-to-text, 2 joint), ``target`` (B, N) the
    positions the loss is on, ``hidden`` (B, N) every [MASK]ed position (``target`` plus a dropped
    caption, hidden for classifier-free guidance but not scored).
    """
    names = ("text → image", "image → text", "joint")
    state = hidden.int().cpu() + target.int().cpu()  # 0 shown, 1 hidden without loss, 2 scored
    fig, ax = plt.subplots(figsize=(9, 0.25 * len(task) + 0.9))
    ax.imshow(
        state,
        cmap=ListedColormap(["#e8e8e8", "#9ecae1", "#d6604d"]),
        vmin=0,
        vmax=2,
        aspect="auto",
        interpolation="nearest",
    )
    ax.axvline(caption_len - 0.5, c="k", lw=1)
    ax.set_yticks(range(len(task)), [names[t] for t in task.tolist()], fontsize=7)
    ax.set_xticks(
        [caption_len / 2, caption_len + (state.shape[1] - caption_len) / 2],
        ["caption tokens", "view tokens"],
    )
    ax.set_title(
        "grey: given, red: hidden and scored, blue: hidden, not scored (dropped caption)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def time_per_sample(fn, n: int, repeats: int = 1) -> float:
    """Milliseconds per sample of ``fn(n)`` (median of ``repeats`` after a warm-up)."""
    with torch.inference_mode():
        fn(n)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(n)
            times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times)) / n


def plot_race(rows: dict[str, dict[str, float]]):
    """Side-by-side bars of the figures of each model ({model: {figure: value}}): the fact scores
    on one axis (shares), the times (per view drawn or caption written) on another."""
    models = list(rows)
    shares = [k for k in next(iter(rows.values())) if not k.startswith("ms")]
    times = [k for k in next(iter(rows.values())) if k.startswith("ms")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        x = np.arange(len(shares)) + i * width
        a.bar(x, [rows[m][k] for k in shares], width, label=m)
        b.bar(np.arange(len(times)) + i * width, [rows[m][k] for k in times], width, label=m)
    a.set_xticks(np.arange(len(shares)) + 0.4 - width / 2, shares, fontsize=8)
    a.set_ylim(0, 1)
    a.axhline(0.8, ls=":", c="grey")
    a.axhline(0.9, ls=":", c="grey")
    a.legend(fontsize=8)
    b.set_xticks(np.arange(len(times)) + 0.4 - width / 2, times, fontsize=8, rotation=20)
    b.set_ylabel("ms per view or caption")
    fig.tight_layout()
    return fig


def plot_region_reading(rows: dict[str, np.ndarray]):
    """Bars of the share of captions that read each region right ({model: (8,)}), regions in the
    order a caption describes them (:func:`.facts.region_accuracy`)."""
    return plot_reading(
        rows, REGIONS, "region, in the order a caption describes them", "region read right"
    )


def plot_kind_reading(rows: dict[str, np.ndarray]):
    """Bars of the share of hidden kind words read right, by the kind sentence they open
    ({setting: (K,)}, :func:`.scoring.kind_reading`)."""
    labels = [f"kind sentence {k + 1}" for k in range(len(next(iter(rows.values()))))]
    return plot_reading(rows, labels, "the sentence the hidden kind word opens", "kind read right")


def plot_reading(rows: dict[str, np.ndarray], labels, xlabel: str, ylabel: str):
    """Grouped bars, one group per label and one bar per row, on a 0..1 scale."""
    fig, ax = plt.subplots(figsize=(8, 3))
    width = 0.8 / len(rows)
    for i, (name, acc) in enumerate(rows.items()):
        ax.bar(np.arange(len(labels)) + i * width, acc, width, label=name)
    ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
