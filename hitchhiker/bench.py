"""The course's benchmark: every figure the README quotes, measured by code in this repo.

    python -m hitchhiker.bench [--preset P] [--json FILE] [--only STAGE ...]

prints a markdown table of figures grouped by stage and (with ``--json``) writes them as one flat
JSON object from dotted figure names (``world.steps_per_s``) to numbers, plus ``preset`` and
``hardware``. Each stage of the road owns its rows: its package's ``benchmark`` module
(:data:`STAGE_MODULES`) registers them with :func:`figures`, next to the function that measures
them. Nothing is typed in by hand, so the README can only quote what those functions measured.
This module keeps the registry, running, merging, the markdown table and the command line.

Speed goals live here, not in the unit tests: a timed unit test fails on a busy CI machine and
passes on a fast one, and says little either way.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

from hitchhiker.config import resolve_preset
from hitchhiker.course import README
from hitchhiker.devices import hardware_name


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


Producer = Callable[[str], dict[str, float]]
"""``fn(preset) -> {figure name: value}``: measures one stage's rows."""

STAGE_MODULES: dict[str, str] = {
    "world": "hitchhiker.world.benchmark",
    "stage1": "hitchhiker.masks.benchmark",
    "stage2": "hitchhiker.unified.benchmark",
    "stage3": "hitchhiker.interactive.benchmark",
    "stage4": "hitchhiker.memory.benchmark",
    "stage5": "hitchhiker.agents.benchmark",
}
"""Stage -> the module that registers its rows, in the order the table shows them."""

# No import cycle: the stage modules import this one (for Figure and figures) at their top, and this
# module never imports them at its top. :func:`stages` loads them by name when a run, a table or a
# test asks, by which time this module is complete, so either may be imported first, alone. The
# registry is keyed by stage and read in STAGE_MODULES order, so the table's order does not depend
# on which stage module happened to be imported first (a notebook may import one on its own).
_REGISTRY: dict[str, tuple[Producer, tuple[Figure, ...]]] = {}


def figures(stage: str, *rows: Figure):
    """Register ``fn(preset) -> {name: value}`` as the producer of ``rows`` for ``stage``."""

    def register(fn: Producer):
        if stage in _REGISTRY:
            raise ValueError(f"stage {stage!r} registers its benchmark rows twice")
        _REGISTRY[stage] = (fn, rows)
        return fn

    return register


def stages() -> list[tuple[str, Producer, tuple[Figure, ...]]]:
    """(stage, producer, rows) of every stage, in table order: imports the stage modules."""
    for stage, module in STAGE_MODULES.items():
        importlib.import_module(module)
        if stage not in _REGISTRY:
            raise RuntimeError(f"{module} registered no rows for stage {stage!r}")
    return [(stage, *_REGISTRY[stage]) for stage in STAGE_MODULES]


# --------------------------------------------------------------------------- running


def run(preset: str | None = None, only: list[str] | None = None) -> dict:
    """Measure every registered figure (or the stages in ``only``); returns the flat dict."""
    preset = resolve_preset(preset)
    registered = stages()
    known = [s for s, _, _ in registered]
    for s in only or []:
        if s not in known:
            raise ValueError(f"unknown stage {s!r}; expected one of {', '.join(known)}")
    out: dict = {}
    for stage, fn, _ in registered:
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
    for stage, _, rows in stages():
        present = [r for r in rows if r.name in results]
        if not present:
            continue
        lines += [f"**{stage}**", "", "| figure | value | goal |", "| --- | --- | --- |"]
        for r in present:
            v = results[r.name]
            val = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"
            ci = results.get(f"{r.name}_ci95")  # a 95% interval's half-width, where measured
            if ci is not None and ci == ci:
                val += f" ± {ci:.2g}"
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
        "--readme",
        action="store_true",
        help="write the table into README.md's results and its figures into data/bench.json",
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
        write_stored(results)
    return 0


def write_stored(results: dict) -> None:
    """Keep the figures behind the README's table in ``data/bench.json``, where notebooks read
    them (:func:`hitchhiker.measured.say`) instead of typing them into their prose."""
    from hitchhiker.measured import BENCH, stored_figures

    BENCH.write_text(json.dumps(results, indent=2) + "\n")
    stored_figures.cache_clear()


def write_readme(table: str) -> None:
    """Put ``table`` between the README's ``<!-- bench:begin/end -->`` markers."""
    text = README.read_text()
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    if begin not in text or end not in text:
        raise ValueError(f"README.md lacks the markers {begin} ... {end}")
    head, rest = text.split(begin, 1)
    README.write_text(f"{head}{begin}\n{table}\n{end}{rest.split(end, 1)[1]}")


if __name__ == "__main__":
    # `python -m hitchhiker.bench` runs this file as __main__, a second copy of the module: the
    # stage modules register into hitchhiker.bench's registry, not this copy's. Run that one.
    from hitchhiker.bench import main as _main

    sys.exit(_main())
