"""``make tour``: run every notebook of the course in order, headless, and collect what it measured.

    python -m hitchhiker.tour [--preset P] [--only 00_the_road ...] [--out runs/tour]

Each notebook runs top to bottom in a fresh kernel (nbclient) at the preset that fits this machine
(or the one given), exactly as a learner would run it. The executed copy and an HTML rendering land
under ``runs/tour/`` (git-ignored), and the figures each notebook reported through
:func:`hitchhiker.course.report` are printed at the end with the wall time of each notebook. The
copy's metadata records the preset, the hardware and the wall time: ``make site`` builds the
course's web pages from these copies (:mod:`hitchhiker.site`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from hitchhiker.config import resolve_preset
from hitchhiker.course import NOTEBOOKS, ROOT
from hitchhiker.devices import hardware_name


def run_notebook(path: Path, out_dir: Path, preset: str, timeout: int = 3600) -> tuple[float, dict]:
    """Execute one notebook; write NAME.ipynb, NAME.html, NAME.figures.json; return (seconds, figures)."""
    # lazy: the notebook runners come with the "lab" extras, not with the package
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    book = nbformat.read(path, as_version=4)
    figures_file = out_dir / f"{path.stem}.figures.json"
    figures_file.unlink(missing_ok=True)
    env_before = dict(os.environ)
    os.environ.update(HITCHHIKER_PRESET=preset, HITCHHIKER_REPORT=str(figures_file.resolve()))
    t0 = time.perf_counter()
    try:
        client = NotebookClient(
            book,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    finally:
        seconds = time.perf_counter() - t0
        os.environ.clear()
        os.environ.update(env_before)
        # how this copy was made, for the pages make site builds from it
        book.metadata["hitchhiker"] = {
            "preset": preset,
            "hardware": hardware_name(),
            "seconds": round(seconds, 1),
        }
        nbformat.write(book, out_dir / path.name)
    html, _ = HTMLExporter().from_notebook_node(book)
    (out_dir / f"{path.stem}.html").write_text(html)
    figures = json.loads(figures_file.read_text()) if figures_file.exists() else {}
    return seconds, figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hitchhiker.tour", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--preset", help="smoke, cpu, gpu or large (default: what fits this machine)")
    ap.add_argument("--only", nargs="*", help="notebook names to run (default: all, in order)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "tour"))
    args = ap.parse_args(argv)
    preset = resolve_preset(args.preset)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [nb.name for nb in NOTEBOOKS]
    for n in args.only or []:
        if n not in names:
            raise SystemExit(f"unknown notebook {n!r}; expected one of {', '.join(names)}")
    print(f"tour: preset {preset} on {hardware_name()}; executed copies in {out}")
    summary = []
    for nb in NOTEBOOKS:
        if args.only and nb.name not in args.only:
            continue
        print(f"\n== {nb.name}: {nb.title}", flush=True)
        seconds, figures = run_notebook(nb.path, out, preset)
        summary.append((nb.name, seconds))
        print(f"   ran in {seconds:.0f} s")
        for k, v in figures.items():
            print(f"   {k:<44} {v:.4g}")
    print("\nsummary (wall time per notebook):")
    for name, seconds in summary:
        print(f"  {name:<40} {seconds:7.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
