"""The course's benchmark: every figure the README quotes, measured by code in this repo.

    python -m hitchhiker.bench [--preset P] [--json FILE] [--only STAGE ...]

prints a markdown table of figures grouped by stage and (with ``--json``) writes them as one flat
JSON object from dotted figure names (``world.steps_per_s``) to numbers, plus ``preset`` and
``hardware``. Each stage of the road registers its own rows with :func:`figures`; nothing is typed
in by hand, so the README can only quote what this file measured.

Speed goals live here, not in the unit tests: a timed unit test fails on a busy CI machine and
passes on a fast one, and says little either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hitchhiker.config import hardware_name, resolve_preset


@dataclass(frozen=True)
class Figure:
    """One row of the table."""

    name: str
    """Dotted name, e.g. "world.steps_per_s"; the part before the dot is the stage."""
    what: str
    """What was measured, in a few words (shown in the table)."""
    unit: str = ""
    """Unit shown after the number."""
    goal: str = ""
    """The target from the issue, e.g. ">= 2000"; empty when the figure is only reported."""


_STAGES: list[tuple[str, Callable[[str], dict[str, float]], tuple[Figure, ...]]] = []


def figures(stage: str, *rows: Figure):
    """Register ``fn(preset) -> {name: value}`` as the producer of ``rows`` for ``stage``."""

    def register(fn: Callable[[str], dict[str, float]]):
        _STAGES.append((stage, fn, rows))
        return fn

    return register


# --------------------------------------------------------------------------- the world


@figures(
    "world",
    Figure(
        "world.steps_per_s",
        "simulator steps per second, one world, one core, 64x64 view",
        "steps/s",
        ">= 2000",
    ),
    Figure(
        "world.reader_accuracy",
        "ground-truth reader: tile accuracy on real frames (day and night, animals)",
        "",
        "= 1.0",
    ),
    Figure(
        "world.reader_heading_accuracy",
        "ground-truth reader: explorer heading read from real frames",
        "",
        "= 1.0",
    ),
    Figure("world.reader_validity_real", "frame validity of real frames", "", "= 1.0"),
    Figure("world.reader_validity_noise", "frame validity of uniform-noise frames", "", "~ 0"),
    Figure(
        "world.reader_frames_per_s",
        "ground-truth reader throughput, one batch of all those frames",
        "frames/s",
    ),
)
def world_figures(preset: str) -> dict[str, float]:
    import torch

    from hitchhiker.world import HitchhikerWorld, read_tiles
    from hitchhiker.world.reader import frame_validity

    torch.set_num_threads(1)  # "one core": keep torch (and what it drives) from fanning out
    n_steps = 500 if preset == "smoke" else 5000
    env = HitchhikerWorld()
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, env.action_space.n, size=n_steps)
    t0 = time.perf_counter()
    for a in actions:
        _, _, _, truncated, _ = env.step(int(a))
        if truncated:
            env.reset()
    steps_per_s = n_steps / (time.perf_counter() - t0)

    # Real frames across seeds, times of day and with animals about.
    frames, tiles, headings = [], [], []
    n_seeds = 2 if preset == "smoke" else 8
    for seed in range(n_seeds):
        env = HitchhikerWorld(day_length=64)
        obs, info = env.reset(seed=1000 + seed)
        rng = np.random.default_rng(seed)
        for _ in range(64):
            obs, _, _, _, info = env.step(int(rng.integers(0, 6)))
            frames.append(obs)
            tiles.append(info["tiles"])
            headings.append(info["heading"])
    frames, tiles, headings = np.stack(frames), np.stack(tiles), np.array(headings)
    t0 = time.perf_counter()
    reading = read_tiles(frames)
    reader_fps = len(frames) / (time.perf_counter() - t0)
    noise = np.random.default_rng(1).integers(0, 256, size=frames[:64].shape, dtype=np.uint8)
    return {
        "world.steps_per_s": steps_per_s,
        "world.reader_accuracy": float(np.mean(reading.kinds == tiles)),
        "world.reader_heading_accuracy": float(np.mean(reading.heading == headings)),
        "world.reader_validity_real": float(np.mean(frame_validity(frames))),
        "world.reader_validity_noise": float(np.mean(frame_validity(noise))),
        "world.reader_frames_per_s": reader_fps,
    }


# --------------------------------------------------------------------------- stage I: masks


@figures(
    "stage1",
    Figure("stage1.mae.masked_psnr_75", "MAE: PSNR of masked patches at 75% masking", "dB"),
    Figure(
        "stage1.mae.probe_acc",
        "linear probe on MAE features: tile kind of each caption region",
        "",
        "> random",
    ),
    Figure("stage1.mae.probe_acc_random", "same probe on a randomly initialised encoder"),
    Figure(
        "stage1.mae.probe_center_acc", "linear probe on MAE features: tile the explorer stands on"
    ),
    Figure("stage1.mae.probe_center_acc_random", "same probe on a randomly initialised encoder"),
    Figure("stage1.text.masked_acc_15", "masked text: accuracy on 15% masked caption words"),
    Figure("stage1.text.parse_rate", "masked diffusion: generated captions that parse"),
    Figure(
        "stage1.tokenizer.tile_accuracy",
        "tokenizer: tile accuracy of reconstructions",
        "",
        ">= 0.98",
    ),
    Figure("stage1.tokenizer.psnr", "tokenizer: reconstruction PSNR", "dB", ">= 26"),
    Figure(
        "stage1.tokenizer.heading_accuracy",
        "tokenizer: explorer heading read from reconstructions",
    ),
    Figure(
        "stage1.tokenizer.codebook_usage",
        "tokenizer: share of codes in use on test views",
        "",
        ">= 0.8",
    ),
    Figure(
        "stage1.maskgit.confident_share", "MaskGIT samples: tiles read confidently", "", ">= 0.9"
    ),
    Figure(
        "stage1.maskgit.kind_tv", "MaskGIT samples: tile-kind frequency distance to real views (TV)"
    ),
    Figure("stage1.ar.confident_share", "AR samples: tiles read confidently"),
    Figure("stage1.ar.kind_tv", "AR samples: tile-kind frequency distance to real views (TV)"),
    Figure(
        "stage1.maskgit.ms_per_image_b1", "MaskGIT (8 steps) sampling time per image, batch 1", "ms"
    ),
    Figure("stage1.ar.ms_per_image_b1", "AR (KV cache) sampling time per image, batch 1", "ms"),
    Figure("stage1.ar.maskgit_speedup_b1", "MaskGIT speed-up over AR, batch 1", "x", ">= 10"),
    Figure(
        "stage1.maskgit.ms_per_image_b16",
        "MaskGIT (8 steps) sampling time per image, batch 16",
        "ms",
    ),
    Figure("stage1.ar.ms_per_image_b16", "AR (KV cache) sampling time per image, batch 16", "ms"),
    Figure("stage1.ar.maskgit_speedup_b16", "MaskGIT speed-up over AR, batch 16", "x", ">= 10"),
)
def stage1_figures(preset: str) -> dict[str, float]:
    """Evaluate the shipped Stage I models (fresh smoke-sized ones under the smoke preset)."""
    from hitchhiker import zoo

    out: dict[str, float] = {}
    for name in ("mae", "text", "tokenizer", "maskgit", "ar"):
        model, cfg = zoo.load_or_fit(name, preset)
        out.update(zoo.recipe(name).evaluate(model, cfg))
    for b in (1, 16):  # the speed-up from the two rows the table shows, so the three agree
        out[f"stage1.ar.maskgit_speedup_b{b}"] = (
            out[f"stage1.ar.ms_per_image_b{b}"] / out[f"stage1.maskgit.ms_per_image_b{b}"]
        )
    out.pop("stage1.ar.maskgit_ms_per_image_b1", None)  # AR's own race timings: not table rows
    out.pop("stage1.ar.maskgit_ms_per_image_b16", None)
    return out


# --------------------------------------------------------------------------- Stage II


def _unified_rows(name: str, label: str, goals: bool) -> tuple[Figure, ...]:
    g = (lambda goal: goal) if goals else (lambda goal: "")
    return (
        Figure(
            f"stage2.{name}.t2i_fact_accuracy",
            f"{label} text-to-image: requested facts that hold in the view",
            "",
            g(">= 0.80"),
        ),
        Figure(
            f"stage2.{name}.i2t_precision",
            f"{label} image-to-text: stated facts true of the view",
            "",
            g(">= 0.90"),
        ),
        Figure(f"stage2.{name}.i2t_recall", f"{label} image-to-text: view facts stated"),
        Figure(f"stage2.{name}.i2t_parse_rate", f"{label} image-to-text: captions that parse"),
        Figure(
            f"stage2.{name}.ms_per_t2i_sample_b1",
            f"{label} text-to-image time per sample, batch 1",
            "ms",
        ),
        Figure(
            f"stage2.{name}.ms_per_t2i_sample_b16",
            f"{label} text-to-image time per sample, batch 16",
            "ms",
        ),
        Figure(
            f"stage2.{name}.ms_per_i2t_caption_b16",
            f"{label} image-to-text time per caption, batch 16",
            "ms",
        ),
    )


@figures(
    "stage2",
    *_unified_rows("unified", "masked:", True),
    *_unified_rows("unified_ar", "AR:", False),
)
def stage2_figures(preset: str) -> dict[str, float]:
    """Evaluate the shipped Stage II models (fresh smoke-sized ones under the smoke preset)."""
    from hitchhiker import zoo

    out: dict[str, float] = {}
    for name in ("unified", "unified_ar"):
        model, cfg = zoo.load_or_fit(name, preset)
        out.update(zoo.recipe(name).evaluate(model, cfg))
    return out


# --------------------------------------------------------------------------- Stage III


def _engine_rows(name: str, label: str, fps_goal: str, main: bool) -> tuple[Figure, ...]:
    g = (lambda goal: goal) if main else (lambda goal: "")
    return (
        Figure(
            f"stage3.{name}.teacher_forced_tile_accuracy",
            f"{label}: next-frame tile accuracy, teacher-forced, on land the inputs showed",
            "",
            g(">= 0.98"),
        ),
        Figure(
            f"stage3.{name}.teacher_forced_tile_accuracy_all",
            f"{label}: the same on every tile, incl. the row a move reveals",
        ),
        Figure(
            f"stage3.{name}.action_following_16",
            f"{label}: action following over 16-step rollouts",
            "",
            g(">= 0.95"),
        ),
        Figure(
            f"stage3.{name}.seen_land_accuracy_32",
            f"{label}: 32-step rollouts, tile accuracy on land shown and kept in the window",
            "",
            g(">= 0.90 (better engine)"),
        ),
        Figure(
            f"stage3.{name}.seen_land_accuracy_ever_32",
            f"{label}: same on land shown at any earlier time (needs memory: Stage IV)",
        ),
        Figure(
            f"stage3.{name}.new_land_validity_32",
            f"{label}: reader validity of land never shown (invented)",
        ),
        *(
            Figure(f"stage3.{name}.tile_error_h{h}", f"{label}: tile error at step {h}")
            for h in (1, 8, 16, 32, 64)
        ),
        Figure(
            f"stage3.{name}.delta_psnr_16",
            f"{label}: controllability ΔPSNR (recorded minus random actions)",
            "dB",
            g("> 0"),
        ),
        Figure(f"stage3.{name}.fps_b1", f"{label}: frames per second, batch 1", "fps", fps_goal),
    )


STAGE3_ENGINES = {
    "dynamics": ("masked dynamics, true actions", ">= 25", True),
    "dynamics_noaug": ("masked dynamics, no context noise", "", False),
    "dynamics_latent": ("masked dynamics, latent actions", "", False),
    "diffusion": ("diffusion engine, 2 steps", ">= 10", True),
    "diffusion_noaug": ("diffusion engine, no context noise", "", False),
}


@figures(
    "stage3",
    Figure("stage3.lam.nmi", "latent actions: NMI with the true actions", "", ">= 0.8"),
    Figure("stage3.lam.purity", "latent actions: purity (code -> majority action)"),
    Figure("stage3.lam.nmi_effective", "the same on transitions that changed the frame"),
    Figure(
        "stage3.lam_leaky.nmi",
        "a leaky (too wide) bottleneck: NMI with the true actions",
        "",
        "low",
    ),
    Figure("stage3.lam_leaky.next_frame_loss", "its next-frame loss (the leak's gain)"),
    Figure("stage3.lam.next_frame_loss", "next-frame loss of the narrow bottleneck"),
    *(
        r
        for name, (label, fps, main) in STAGE3_ENGINES.items()
        for r in _engine_rows(name, label, fps, main)
    ),
)
def stage3_figures(preset: str) -> dict[str, float]:
    """Evaluate the shipped Stage III models (fresh smoke-sized ones under the smoke preset)."""
    from hitchhiker import zoo

    out: dict[str, float] = {}
    for name in ("lam", "lam_leaky", *STAGE3_ENGINES):
        model, cfg = zoo.load_or_fit(name, preset)
        out.update(zoo.recipe(name).evaluate(model, cfg))
    return out


# --------------------------------------------------------------------------- running


def run(preset: str | None = None, only: list[str] | None = None) -> dict:
    """Measure every registered figure (or the stages in ``only``); returns the flat dict."""
    preset = resolve_preset(preset)
    known = [s for s, _, _ in _STAGES]
    for s in only or []:
        if s not in known:
            raise ValueError(f"unknown stage {s!r}; expected one of {', '.join(known)}")
    out: dict = {}
    for stage, fn, _ in _STAGES:
        if only and stage not in only:
            continue
        out.update({k: float(v) for k, v in fn(preset).items()})
    out["preset"] = preset
    out["hardware"] = hardware_name()
    return out


def merge(paths: list[str]) -> dict:
    """One result dict from the JSON files of several runs (e.g. one stage each, run side by side
    while the machine was free); they must share the preset and the hardware."""
    out: dict = {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for key in ("preset", "hardware"):
            if key in out and data.get(key) != out[key]:
                raise ValueError(
                    f"{path} was measured with {key}={data.get(key)!r}, the others with "
                    f"{out[key]!r}: merge only runs of one preset on one machine"
                )
        out.update(data)
    return out


def markdown(results: dict) -> str:
    """The table the README quotes, grouped by stage."""
    lines = [f"Hardware: {results['hardware']} · preset `{results['preset']}`", ""]
    for stage, _, rows in _STAGES:
        present = [r for r in rows if r.name in results]
        if not present:
            continue
        lines += [f"**{stage}**", "", "| figure | value | goal |", "| --- | --- | --- |"]
        for r in present:
            v = results[r.name]
            val = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"
            lines.append(f"| {r.what} (`{r.name}`) | {val} {r.unit} | {r.goal or 'reported'} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hitchhiker.bench", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--preset", help="smoke, cpu, gpu or large (default: what fits this machine)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--only", nargs="*", help="measure only these stages")
    ap.add_argument(
        "--from-json",
        nargs="+",
        metavar="FILE",
        help="measure nothing: merge the figures of earlier --json runs (one preset, one machine)",
    )
    ap.add_argument(
        "--readme", action="store_true", help="write the table into README.md's results"
    )
    args = ap.parse_args(argv)
    results = merge(args.from_json) if args.from_json else run(args.preset, args.only)
    table = markdown(results)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if args.readme:
        write_readme(table)
    return 0


def write_readme(table: str) -> None:
    """Put ``table`` between the README's ``<!-- bench:begin/end -->`` markers."""
    from hitchhiker.course import README

    text = README.read_text()
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    if begin not in text or end not in text:
        raise ValueError(f"README.md lacks the markers {begin} ... {end}")
    head, rest = text.split(begin, 1)
    README.write_text(f"{head}{begin}\n{table}\n{end}{rest.split(end, 1)[1]}")


if __name__ == "__main__":
    sys.exit(main())
