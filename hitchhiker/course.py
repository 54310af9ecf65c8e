"""The course itself: its notebooks, where it lives, and the cells every notebook opens with.

One source of truth. The public repository address is not settled yet, so it lives here, in
``REPO_URL``, and nowhere else by hand: the README's Open-in-Colab badges and every notebook's
Colab set-up cell are *generated* from it by

    python -m hitchhiker.course --sync      # rewrite README badges + notebook opening cells
    python -m hitchhiker.course --check     # exit 1 if anything is out of date (run by the tests)

Every notebook opens the same way: (1) a title cell with the Open-in-Colab badge and the measured
run time per hardware, (2) a set-up cell that installs the course when it runs on Colab and does
nothing elsewhere, (3) a cell that shows the device and preset. Notebooks report the figures they
measure with :func:`report`, which ``make tour`` collects.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_URL = "https://github.com/hitchhiker-course/hitchhiker"
"""Where the course is published; the only place the address is written by hand."""
BRANCH = "main"
"""The branch Colab opens notebooks from."""

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
README = ROOT / "README.md"
COLAB_DIR = "hitchhiker-course"
"""Folder name of the shallow clone on Colab (under /content)."""
COLAB_HOME = f"/content/{COLAB_DIR}"
"""Where the set-up cell clones the course on Colab."""


@dataclass(frozen=True)
class Notebook:
    """One chapter of the course."""

    name: str
    """File stem under notebooks/, e.g. "00_the_road"."""
    title: str
    """Human title."""
    teaches: str
    """One line: what the learner builds or sees."""
    stage: int = 0
    """Where it sits on the road: 0 the world, 1 masks, 2 unified, 3 interactive, 4 memory,
    5 agents."""
    goals: tuple[str, ...] = ()
    """What the learner will be able to do after it (3-5 lines, shown in the opening)."""
    assumes: str = ""
    """What it takes for granted: earlier notebooks, and outside knowledge."""
    runtimes: dict[str, str] = field(default_factory=dict)
    """Measured wall time of a full run, by hardware label (only measured values go here)."""

    @property
    def path(self) -> Path:
        return NOTEBOOK_DIR / f"{self.name}.ipynb"

    @property
    def colab_url(self) -> str:
        slug = REPO_URL.removeprefix("https://github.com/")
        return f"https://colab.research.google.com/github/{slug}/blob/{BRANCH}/notebooks/{self.name}.ipynb"

    @property
    def badge(self) -> str:
        return (
            f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({self.colab_url})"
        )


NOTEBOOKS: list[Notebook] = [
    Notebook(
        "00_the_road",
        "The road, played by hand",
        "The road and the three subsystems of a world model; the procedural world, its exact "
        "ground truth and captions; live play; trajectories and loops; the metric helpers.",
        stage=0,
        goals=(
            "name the three subsystems of a world model (generative heart, interactive loop, memory) and the five stages of the road",
            "run the procedural world, read its exact ground truth, and check any frame with the tile reader",
            "play the world live and record trajectories and loops that come back to where they started",
            "use the metric helpers that every later notebook scores its models with",
        ),
        assumes="Python and a little NumPy; nothing about deep learning yet.",
        runtimes={
            "2-core CPU (AMD EPYC), cpu preset (make tour, 2 Dec)": "10 s",
            "same, smoke preset": "8 s",
        },
    ),
    Notebook(
        "01_masks",
        "Masks: BERT, masked diffusion and MAE",
        "Mask, infill, generalise: BERT-style masking and masked-diffusion generation on the "
        "world's captions; MAE on world views; a linear probe shows what pre-training bought.",
        stage=1,
        goals=(
            "explain the masked-modelling recipe (hide part of the input, predict it) and why it generalises",
            "train BERT-style masked prediction on the world's captions and turn it into a generator (Mask-Predict)",
            "train a masked autoencoder (MAE) on world views and see what 75% masking still lets it rebuild",
            "measure what pre-training bought with a linear probe against a random-weight baseline",
        ),
        assumes="Notebook 00 (the world and its reader); PyTorch basics (tensors, modules, an optimiser step).",
        runtimes={
            "2-core CPU (AMD EPYC), cpu preset, shipped weights (make tour, 2 Dec)": "118 s",
            "same, smoke preset": "14 s",
            "retraining both models at the cpu preset (one thread, shared machine)": "~13 min",
        },
    ),
    Notebook(
        "02_tokens_and_maskgit",
        "Tokens and MaskGIT",
        "A VQ/FSQ tokenizer turns views into 8x8 codes; MaskGIT decodes them in a few parallel "
        "steps; against an autoregressive baseline in speed and quality; inpainting.",
        stage=1,
        goals=(
            "turn views into grids of discrete codes with a VQ or FSQ tokenizer, read the codes back on the map, and watch codes die when restarts are off",
            "write MaskGIT's decoding loop: start fully masked, keep the most confident tokens, re-mask the rest",
            "compare MaskGIT with an autoregressive baseline in quality (read by the ground truth) and speed, and say why the paper's speed-up needs many tokens and parallel hardware",
            "inpaint and outpaint with the same loop started half-known",
        ),
        assumes="Notebooks 00 and 01 (masked prediction); what a transformer's attention does.",
        runtimes={
            "2-core CPU (AMD EPYC), cpu preset, shipped weights (make tour, 2 Dec)": "38 s",
            "same, smoke preset": "15 s",
            "retraining tokenizer + MaskGIT + AR at the cpu preset": "9 min",
        },
    ),
    Notebook(
        "03_unified",
        "Unified: one transformer for captions and views",
        "One masked transformer over caption and view tokens in one sequence: text-to-image with "
        "guidance, image-to-text that checks its own captions, joint generation and infilling, "
        "scored fact by fact; an autoregressive (Chameleon-style) baseline beside it.",
        stage=2,
        goals=(
            "put captions and views into one token sequence and train one masked transformer on it",
            "run text-to-image with classifier-free guidance, image-to-text, joint generation and infilling with the same weights",
            "score every output fact by fact against the world's exact ground truth",
            "compare the masked model with an autoregressive (Chameleon-style) baseline on the same tokens",
        ),
        assumes="Notebooks 01 (masked text) and 02 (tokenizer, MaskGIT).",
        runtimes={
            "2-core CPU (AMD EPYC), cpu preset, shipped weights (make tour, 2 Dec)": "170 s",
            "same, smoke preset": "15 s",
            "retraining both models at the cpu preset (side by side, one thread each)": "~100 min",
        },
    ),
    Notebook(
        "04_latent_actions_and_masked_dynamics",
        "Latent actions and masked dynamics",
        "The Genie recipe on our world: actions discovered from unlabelled play, a leaking "
        "bottleneck, a MaskGIT dynamics model conditioned on true and latent actions, played live; "
        "the moves the world blocks, probed, and an engine that learned walls from play that bumps.",
        stage=3,
        goals=(
            "discover a small set of actions from unlabelled play with a latent action model (Genie)",
            "write the bottleneck's quantiser (nearest code, straight-through gradient) and check it against the package",
            "see why the action bottleneck must be narrow, with a leaky model trained on the same budget",
            "condition MaskGIT on past frames and an action to get a dynamics model, measure how it "
            "drifts, and probe whether it knows walls",
            "play the learned world live with true and with latent actions",
        ),
        assumes="Notebook 02 (the tokenizer and MaskGIT, which this stage reuses).",
        runtimes={
            "2-core CPU (AMD EPYC), cpu preset, shipped weights (nbconvert, idle machine, 6 Dec)": "61 s",
            "same, smoke preset": "24 s",
            "retraining lam + dynamics (3 variants) at the cpu preset (one thread, shared)": "~37 min",
            "plus the engine trained on play that bumps into walls (`zoo train dynamics_walls`, "
            "its figures included, idle machine)": "20 min",
        },
    ),
    Notebook(
        "05_diffusion_engine",
        "A diffusion game engine",
        "A few-step EDM denoiser conditioned on past frames and actions (GameNGen, DIAMOND), over "
        "the tokenizer's latents and, as a control, over pixels; context noise against drift; steps "
        "versus quality versus FPS; and what it forgets.",
        stage=3,
        goals=(
            "write the EDM denoiser's preconditioning and its few-step sampler",
            "condition a diffusion model on past frames and actions to get a playable engine (DIAMOND, GameNGen)",
            "choose what to denoise, pixels or a tokenizer's latents, by measuring what each keeps of the world",
            "measure drift over long rollouts and what context noise does to it, and trade "
            "denoising steps against quality and frames per second",
            "see what a frame-by-frame engine forgets when you walk away and come back",
        ),
        assumes="Notebook 04 (the interactive loop and how engines are scored); what a diffusion model is, roughly.",
        runtimes={
            "2-core CPU (AMD EPYC), cpu preset, shipped weights (make tour, 3 Dec)": "39 s",
            "same, smoke preset (shipped weights)": "13 s",
            "retraining the three engines at the cpu preset (two threads, 3 Dec)": "45 min",
        },
    ),
    Notebook(
        "06_memory",
        "Memory: leave a place, come back, find the same place",
        "A bank of past frames retrieved by view overlap (WorldMem, Context-as-Memory) on the "
        "masked engine; the revisit benchmark with exact ground truth; true against estimated "
        "pose; policies, budget and cost; play with memory on and off; save a dreamed world.",
        stage=4,
        goals=(
            "measure memory exactly: walks that leave a place and come back, scored tile by tile against the simulator, with intervals",
            "write retrieval by view overlap (greedy coverage) and warp a remembered frame into the view being drawn",
            "give the masked engine a memory and see what inferring its own position costs",
            "weigh the memory's policies, budget and cost per frame as the history grows",
            "play a dreamed world that stays the same world, save it and load it back",
        ),
        assumes="Notebook 04 (the masked dynamics engine this stage extends) and 05's honest ending.",
        runtimes={
            "2-core CPU (AMD EPYC), cpu preset, shipped weights (nbconvert, 3 Dec)": "79 s",
            "same, smoke preset": "34 s",
            "retraining the three memories and the 16-frame window at the cpu preset (training only, partly on a shared machine)": "~89 min",
            "plus the memory started from the engine that learned walls (`zoo train memory_walls`, "
            "its revisit figures included, partly shared, 6 Dec)": "24 min",
        },
    ),
    Notebook(
        "07_agents_in_the_dream",
        "Agents in the dream",
        "Tasks with exact rewards; reward heads on the dynamics and their error; the dream as a "
        "gymnasium environment; an actor-critic trained only in imagination and planners through "
        "the dream (home through the memory dream), judged in the real world; exploitation on purpose; the whole world model played.",
        stage=5,
        goals=(
            "give the world a task and measure any policy's real return on held-out worlds, with intervals",
            "fit reward heads on a world model and separate reward-model error from dynamics error",
            "train an actor-critic only in imagination from lambda-returns, and plan through the dream without training",
            "measure the gap between dream return and real return, and name what shrinks it",
            "play the agent in the real world and in its dream side by side, and take the controls",
        ),
        assumes="Notebooks 04 (the masked dynamics this dream runs on) and 06 (memory); what a policy and a return are.",
        runtimes={
            "2-core CPU (AMD EPYC), cpu preset, shipped weights (nbconvert, idle machine, 7 Dec)": "89 s "
            "(77 s the same day before the capstone's walls; 61 s on 6 Dec: the shared machine was slower on 7 Dec)",
            "same, smoke preset (7 Dec)": "40 s",
            "retraining the agent at the cpu preset (heads, dream, real-world control, then its figures; `zoo train agent`)": "25 min",
            "retraining the go-home agents, with and without memory (`zoo train home`)": "5 min",
            "retraining them only in the memory dream (`zoo train home_dream`, its figures included)": "11 min",
            "its benchmark rows (`bench --only stage5`, with the closed loop over 3 seeds, idle machine, 5 Dec)": "34 min",
            "plus the go-home planners' rows, added after that run (measured alone, 6 Dec)": "11 min",
            "plus the dream-trained go-home rows (measured alone, 6 Dec)": "2.3 min",
            "plus the go-home planners through the dream with walls (beside a CI run, 6 Dec)": "26 min",
            "plus the learning curve in the dream (`curve_figures`: 300 updates, 12 snapshots judged "
            "on 512 val worlds, measured alone, 6 Dec)": "26 min",
            "plus judging the untuned test worlds on 512 instead of 128 (6 Dec)": "2.1 min (was 0.7)",
            "plus the seed study (`seed_figures`: 5 more curves of 300 updates, 4 snapshots each "
            "on 512 val worlds; one thread each, five side by side, 7 Dec)": "83 min",
            "plus the capstone's four dreams at the walls the agent meets (`capstone_figures`: "
            "64 test worlds, measured alone, 7 Dec)": "4.0 min",
            "retraining the agent in the dream with walls (`zoo train agent_walls`, its figures "
            "included, 7 Dec)": "23 min",
            "plus its rows beside the first agent's, and both agents' refused moves "
            "(`walls_agent_figures`, `refusal_figures`, measured alone, 7 Dec)": "7.1 min",
            "plus the untuned seed study (`untuned_seed_figures`: 4 more dream-trained agents, "
            "heads and dream, one thread each, two side by side, then all judged on two threads, "
            "7 Dec)": "46 min",
            "retraining the go-home pair in the memory dream with walls (`zoo train home_dream_walls`, "
            "its figures included, partly shared, 6 Dec)": "18 min",
        },
    ),
]


# --------------------------------------------------------------------------- generated cells


STAGES = ["the world", "masks", "unified", "interactive", "memory", "agents"]
"""The road's stops, in order (0 is the world every stage runs in)."""
STAGE_NUMERALS = ["0", "I", "II", "III", "IV", "V"]


def road_line(stage: int) -> str:
    """The road with this notebook's stop marked."""
    stops = []
    for i, name in enumerate(STAGES):
        label = f"{STAGE_NUMERALS[i]} {name}"
        stops.append(f"**[{label}: you are here]**" if i == stage else label)
    return " → ".join(stops)


def title_cell_source(nb: Notebook) -> str:
    lines = [nb.badge, "", f"# {nb.name[:2]} · {nb.title}", ""]
    lines += [f"*Stage {STAGE_NUMERALS[nb.stage]} of the road:* {road_line(nb.stage)}", ""]
    if nb.goals:
        lines += ["**What you will learn.** After this notebook you can", ""]
        lines += [f"- {g}" for g in nb.goals] + [""]
    if nb.assumes:
        lines += [f"**It assumes:** {nb.assumes}", ""]
    lines += ["**Run time (measured):**", ""]
    if nb.runtimes:
        lines += ["| hardware and preset | time |", "| --- | --- |"]
        lines += [f"| {hw} | {t} |" for hw, t in nb.runtimes.items()]
    else:
        lines += ["not measured yet"]
    return "\n".join(lines)


def setup_cell_source(source: str = REPO_URL, home: str = COLAB_HOME) -> str:
    """The first code cell of every notebook: installs the course on Colab, nothing elsewhere.

    The notebooks carry it with the defaults: clone ``REPO_URL`` into ``COLAB_HOME``. The Colab
    rehearsal (tests/test_colab_rehearsal.py) runs the very same cell with a local clone as
    ``source`` and a temporary ``home``, so the address stays written here only.
    """
    return f'''# Set-up. On Colab, fetch the course (package + data/) with a shallow clone and install it in
# editable mode; its dependency floors sit below what Colab ships, so nothing is upgraded.
# Anywhere else (make lab, make tour) the package is already installed and this does nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    if not os.path.isdir("{home}"):
        subprocess.run(["git", "clone", "--depth", "1", "{source}", "{home}"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "{home}"], check=True)
    sys.path.insert(0, "{home}")  # the editable install is seen after a restart only
    os.chdir("{home}/notebooks")
    from google.colab import output

    output.enable_custom_widget_manager()  # lets third-party widgets (ipyevents) render'''


def device_cell_source() -> str:
    return (
        "# Which preset and device this run uses (set HITCHHIKER_PRESET=smoke|cpu|gpu|large to choose).\n"
        "from hitchhiker.config import describe_setup, resolve_preset\n\n"
        "PRESET = resolve_preset()\n"
        "print(describe_setup())"
    )


def _cell(kind: str, source: str, cell_id: str) -> dict:
    cell = {"cell_type": kind, "id": cell_id, "metadata": {}, "source": source.splitlines(True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def opening_cells(nb: Notebook) -> list[dict]:
    return [
        _cell("markdown", title_cell_source(nb), "title"),
        _cell("code", setup_cell_source(), "setup"),
        _cell("code", device_cell_source(), "device"),
    ]


def readme_badges() -> str:
    rows = [
        "| notebook | what it teaches | run time (measured) | open |",
        "| --- | --- | --- | --- |",
    ]
    for nb in NOTEBOOKS:
        times = "<br>".join(f"{hw}: {t}" for hw, t in nb.runtimes.items()) or "—"
        rows.append(
            f"| [`{nb.name}`](notebooks/{nb.name}.ipynb) — {nb.title} | {nb.teaches} | {times} | {nb.badge} |"
        )
    return "\n".join(rows)


BADGES_BEGIN, BADGES_END = "<!-- course:notebooks:begin -->", "<!-- course:notebooks:end -->"


def sync(check: bool = False) -> list[Path]:
    """Regenerate the README table and each notebook's opening cells; return the files that differ.

    With ``check=True`` nothing is written (used by the tests).
    """
    stale: list[Path] = []
    text = README.read_text()
    pattern = re.compile(re.escape(BADGES_BEGIN) + ".*?" + re.escape(BADGES_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md lacks the markers {BADGES_BEGIN} ... {BADGES_END}")
    new = pattern.sub(lambda _: f"{BADGES_BEGIN}\n{readme_badges()}\n{BADGES_END}", text)
    if new != text:
        stale.append(README)
        if not check:
            README.write_text(new)
    for nb in NOTEBOOKS:
        if not nb.path.exists():
            stale.append(nb.path)
            continue
        book = json.loads(nb.path.read_text())
        opening = opening_cells(nb)
        ids = [c["id"] for c in opening]
        rest = [c for c in book["cells"] if c.get("id") not in ids]
        if [c.get("id") for c in book["cells"][: len(ids)]] != ids or any(
            "".join(a["source"]) != "".join(b["source"]) for a, b in zip(book["cells"], opening)
        ):
            stale.append(nb.path)
            if not check:
                book["cells"] = opening + rest
                nb.path.write_text(json.dumps(book, indent=1, ensure_ascii=False) + "\n")
    return stale


# --------------------------------------------------------------------------- figures


def report(figures: dict[str, float], title: str = "figures measured") -> dict[str, float]:
    """Show the figures a notebook measured, and hand them to ``make tour``.

    When the environment variable HITCHHIKER_REPORT names a JSON file (the tour sets it), the
    figures are merged into it.
    """
    clean = {k: float(v) for k, v in figures.items()}
    path = os.environ.get("HITCHHIKER_REPORT")
    if path:
        p = Path(path)
        old = json.loads(p.read_text()) if p.exists() else {}
        p.write_text(json.dumps({**old, **clean}, indent=2))
    lines = [f"{title}:"] + [f"  {k:<40} {v:.4g}" for k, v in clean.items()]
    print("\n".join(lines))
    return clean


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hitchhiker.course", description=__doc__.split("\n")[0]
    )
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--sync", action="store_true", help="rewrite README table and notebook opening cells"
    )
    g.add_argument("--check", action="store_true", help="exit 1 when they are out of date")
    args = ap.parse_args(argv)
    stale = sync(check=args.check)
    for p in stale:
        print(("out of date: " if args.check else "updated: ") + str(p.relative_to(ROOT)))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
