"""``make site``: the course as a static web site, to read (pictures included) before running it.

    python -m hitchhiker.site [--tour] [--preset P] [--tour-dir runs/tour] [--out runs/site]

The pages are the notebooks *as make tour executed them* (``runs/tour/NAME.ipynb``): every output,
plot and widget is what a real run produced on the machine named on the home page. Nothing is
executed here. The site is built by MkDocs with the Material theme and mkdocs-jupyter (``execute:
false``, so it renders the tour's outputs); this module only writes the MkDocs project:

- ``mkdocs.yml``, with the nav in course order (:data:`hitchhiker.course.NOTEBOOKS`, with titles);
- a home page: the README's introduction, the notebook table, and how each page was run;
- a results page: the README's benchmark section (the table ``python -m hitchhiker.bench`` wrote);
- one page per notebook; a notebook the tour has not run gets a short page saying so.

Widgets need a live kernel, and a static page has none. ipywidgets can be rendered from the state
nbclient saves in the notebook's metadata, but only by a JavaScript widget manager fetched from a
CDN at page load. Instead, every widget output is replaced here by a **snapshot**: plain HTML drawn
from that saved state (:func:`widget_snapshot`), showing the widget as the run left it (its picture,
its readout, its buttons greyed out). The pages need no widget manager, no web fonts and no server:
they open from disk (``use_directory_urls: false``). Only formulas (MathJax) and the Colab badges
are fetched; offline, the TeX source and the badge's text show instead.

Material for MkDocs announces on every build that it is maintained until 2027, with Zensical (same
team) as its successor; :func:`build` silences that notice, and the choice is worth revisiting then.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hitchhiker.course import BRANCH, NOTEBOOKS, README, REPO_URL, ROOT, Notebook

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MATHJAX_URL = (
    "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
)
"""MathJax 2, which the nbconvert template mkdocs-jupyter uses is configured for."""
SITE_NAME = "Hitchhiker — a hitchhiker's guide to world models"
SNAPSHOT_NOTE = (
    "A snapshot of a live widget, as the run left it: run the notebook to play it "
    "(the buttons here do nothing)."
)
CSS = """
/* room for the notebooks' code and figures */
.md-grid { max-width: 1400px; }
/* a widget snapshot: framed, with buttons that look like buttons but are plainly inert */
.hh-widget-snapshot { border: 1px dashed #999; padding: 6px; display: inline-block; }
.hh-widget-snapshot button {
  border: 1px solid #bbb; border-radius: 3px; background: #eee; color: #555;
  padding: 2px 8px; margin: 1px; min-height: 2em;
}
.hh-widget-snapshot select, .hh-widget-snapshot input { border: 1px solid #bbb; padding: 1px 4px; }
.hh-snapshot-note { margin: 4px 0 0; font-size: 0.8em; font-style: italic; color: #666; }
"""
"""The site's own style sheet (docs/assets/hitchhiker.css)."""

# --------------------------------------------------------------------------- widget snapshots


def _ref(value: Any) -> str | None:
    """The model id in an ``IPY_MODEL_<id>`` reference, else None."""
    if isinstance(value, str) and value.startswith("IPY_MODEL_"):
        return value.removeprefix("IPY_MODEL_")
    return None


def _layout_css(models: dict, model: dict) -> str:
    """Inline CSS from the widget's Layout model (ipywidgets names its traits after CSS)."""
    layout = models.get(_ref(model["state"].get("layout")) or "", {}).get("state", {})
    rules = [
        f"{k.replace('_', '-')}:{v}"
        for k, v in layout.items()
        if not k.startswith("_") and isinstance(v, str) and v
    ]
    return ";".join(rules)


def _described(state: dict, control: str) -> str:
    """A control with its description label in front, as ipywidgets lays it out."""
    desc = state.get("description") or ""
    label = f'<label style="margin-right:4px">{html.escape(desc)}</label>' if desc else ""
    return (
        f'<span style="display:inline-flex;align-items:center;margin:2px">{label}{control}</span>'
    )


def _image(model: dict) -> str:
    """An Image widget's picture, from the base64 buffer nbclient saved for its ``value``."""
    state = model["state"]
    data = next((b["data"] for b in model.get("buffers", []) if b.get("path") == ["value"]), None)
    if data is None:
        return "<span>[image]</span>"
    fmt = state.get("format") or "png"
    size = "".join(
        f' {k}="{html.escape(str(state[k]))}"' for k in ("width", "height") if state.get(k)
    )
    return f'<img src="data:image/{fmt};base64,{data}" alt="widget view"{size}>'


def _outputs_html(outputs: list[dict]) -> str:
    """What an Output widget captured: pictures, HTML and text, without a kernel."""
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(f"<pre>{html.escape(_text(out.get('text', '')))}</pre>")
            continue
        data = out.get("data", {})
        if "image/png" in data:
            parts.append(f'<img src="data:image/png;base64,{_text(data["image/png"]).strip()}">')
        elif "text/html" in data:
            parts.append(_text(data["text/html"]))
        elif "text/plain" in data:
            parts.append(f"<pre>{html.escape(_text(data['text/plain']))}</pre>")
    return "".join(parts)


def _text(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def _render(models: dict, model_id: str, depth: int = 0) -> str:
    """One widget and its children as static HTML (unknown widgets show their name)."""
    model = models.get(model_id)
    if model is None or depth > 50:
        return ""
    name = model.get("model_name", "")
    state = model.get("state", {})
    css = _layout_css(models, model)
    style = f' style="{html.escape(css)}"' if css else ""
    if name in ("BoxModel", "HBoxModel", "VBoxModel", "GridBoxModel"):
        direction = "column" if name == "VBoxModel" else "row"
        base = (
            "display:grid" if name == "GridBoxModel" else f"display:flex;flex-direction:{direction}"
        )
        kids = "".join(_render(models, _ref(c) or "", depth + 1) for c in state.get("children", []))
        return f'<div style="{base};gap:2px;{html.escape(css)}">{kids}</div>'
    if name == "ImageModel":
        return f"<div{style}>{_image(model)}</div>"
    if name in ("HTMLModel", "HTMLMathModel"):
        return _described(state, f"<div{style}>{state.get('value', '')}</div>")
    if name == "LabelModel":
        return f"<span{style}>{html.escape(str(state.get('value', '')))}</span>"
    if name in ("ButtonModel", "ToggleButtonModel"):
        face = html.escape(state.get("description") or state.get("icon") or "button")
        return f'<button disabled style="{html.escape(css)}">{face}</button>'
    if name == "PlayModel":
        return "<button disabled>▶</button>"
    if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"):
        labels = state.get("_options_labels") or []
        index = state.get("index")
        chosen = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else ""
        return _described(
            state, f"<select disabled><option>{html.escape(chosen)}</option></select>"
        )
    if name in ("IntTextModel", "FloatTextModel", "TextModel", "BoundedIntTextModel"):
        value = html.escape(str(state.get("value", "")))
        return _described(state, f'<input disabled value="{value}" size="8">')
    if name in ("IntSliderModel", "FloatSliderModel"):
        lo, hi, value = (state.get(k, 0) for k in ("min", "max", "value"))
        control = (
            f'<input type="range" disabled min="{lo}" max="{hi}" value="{value}">'
            f"<span style='margin-left:4px'>{html.escape(str(value))}</span>"
        )
        return _described(state, control)
    if name == "CheckboxModel":
        checked = " checked" if state.get("value") else ""
        desc = html.escape(state.get("description") or "")
        return f'<label style="margin:2px"><input type="checkbox" disabled{checked}> {desc}</label>'
    if name in ("FloatProgressModel", "IntProgressModel"):
        value, hi = state.get("value", 0), state.get("max", 100)
        return _described(state, f'<progress value="{value}" max="{hi}"></progress>')
    if name == "OutputModel":
        return f"<div{style}>{_outputs_html(state.get('outputs', []))}</div>"
    if "Style" in name or name in ("LayoutModel", "EventModel"):
        return ""
    return f"<span>[{html.escape(name.removesuffix('Model'))}]</span>"


CONTROLS = {
    "ButtonModel",
    "ToggleButtonModel",
    "PlayModel",
    "DropdownModel",
    "SelectModel",
    "RadioButtonsModel",
    "ToggleButtonsModel",
    "IntTextModel",
    "FloatTextModel",
    "TextModel",
    "BoundedIntTextModel",
    "IntSliderModel",
    "FloatSliderModel",
    "CheckboxModel",
}
"""Widgets a learner acts on: a snapshot holding one is framed and says it is inert."""


def _has_controls(models: dict, model_id: str, depth: int = 0) -> bool:
    model = models.get(model_id, {})
    if model.get("model_name") in CONTROLS:
        return True
    kids = model.get("state", {}).get("children", [])
    return depth < 50 and any(_has_controls(models, _ref(c) or "", depth + 1) for c in kids)


def widget_snapshot(state: dict, model_id: str) -> str | None:
    """Static HTML of widget ``model_id`` drawn from a notebook's saved widget state, or None
    when the state does not hold it (the widget was closed before the notebook was saved).

    A widget with controls (the live world, the dream panel) is framed, with a line saying it is a
    snapshot; one without (a progress bar) is shown as it stood, without comment.
    """
    if model_id not in state:
        return None
    body = _render(state, model_id)
    if not _has_controls(state, model_id):
        return f"<div>{body}</div>"
    note = f'<p class="hh-snapshot-note">{html.escape(SNAPSHOT_NOTE)}</p>'
    return f'<div class="hh-widget-snapshot">{body}{note}</div>'


def snapshot_widgets(book: dict) -> int:
    """Replace every widget output of ``book`` (a notebook as a dict) by its static snapshot.

    The saved widget state is dropped from the metadata afterwards, so the page asks no CDN for a
    widget manager. Returns how many widget outputs were replaced.
    """
    state = book.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for cell in book.get("cells", []):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            view = data.pop(WIDGET_VIEW, None)
            if view is None:
                continue
            snap = widget_snapshot(state, view.get("model_id", ""))
            if snap is not None:
                data["text/html"] = snap
            replaced += 1
    book.get("metadata", {}).pop("widgets", None)
    return replaced


# --------------------------------------------------------------------------- pages


def _readme_section(text: str, start: str, end: str) -> str:
    """The README's text from the line ``start`` up to (not including) the line ``end``."""
    lines = text.splitlines()
    i = lines.index(start)
    j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(end))
    return "\n".join(lines[i:j]).strip()


def _repo_links(markdown: str) -> str:
    """Point the README's links to repository files and README sections at the repository."""

    def fix(m: re.Match) -> str:
        target = m.group(1)
        if re.match(r"[a-z]+:", target):
            return m.group(0)
        if target.startswith("#"):
            return f"]({REPO_URL}{target})"
        return f"]({REPO_URL}/blob/{BRANCH}/{target})"

    return re.sub(r"\]\(([^)\s]+)\)", fix, markdown)


def _page(nb: Notebook, runs: dict[str, dict | None]) -> str:
    """The notebook's page in docs/: the executed notebook, or the page saying it did not run."""
    return f"notebooks/{nb.name}.{'md' if runs.get(nb.name) is None else 'ipynb'}"


def _how_run(meta: dict | None) -> str:
    if meta is None:
        return "not run in this build"
    if "hardware" not in meta:
        return "an earlier make tour (preset and machine not recorded)"
    return f"preset `{meta['preset']}` on {meta['hardware']}, {meta['seconds']:.0f} s"


def home_page(runs: dict[str, dict | None]) -> str:
    """The home page: README introduction, the notebooks in order, how this build ran them."""
    lines = README.read_text().splitlines()
    title = lines[0]
    end = next(i for i, line in enumerate(lines) if line.startswith("## "))
    intro = "\n".join(lines[1:end]).strip()
    rows = [
        "| notebook | what it teaches | this build ran it with | run it |",
        "| --- | --- | --- | --- |",
    ]
    for nb in NOTEBOOKS:
        rows.append(
            f"| [{nb.name[:2]} · {nb.title}]({_page(nb, runs)}) "
            f"| {nb.teaches} | {_how_run(runs.get(nb.name))} | [on Colab]({nb.colab_url}) |"
        )
    presets = sorted({m["preset"] for m in runs.values() if m is not None})
    note = ""
    if presets == ["smoke"]:
        note = (
            '\n\n!!! note "A smoke build"\n'
            "    These pages were run at the `smoke` preset, the quick check the tests run: where "
            "a notebook trains, its models are tiny and train for seconds, so those pictures show "
            "the code working, not what the course's models can do. `make site` at the `cpu` (or "
            "a GPU) preset gives the real pictures.\n"
        )
    return (
        f"{title}\n\n{_repo_links(intro)}\n\n"
        "## Read the course\n\n"
        "Every page below is a notebook of the course as `make tour` ran it, top to bottom, with "
        "its outputs, plots and a snapshot of each live widget. To run and play it yourself, open "
        "it on Colab or clone the repository and run `make lab`. The figures the models reach are "
        "on the [results](results.md) page."
        f"{note}\n\n" + "\n".join(rows) + "\n"
    )


def results_page() -> str:
    """The README's results section with its benchmark table."""
    readme = README.read_text()
    section = _readme_section(readme, "## Results", "## ")
    return "# Results\n" + _repo_links(section.removeprefix("## Results")) + "\n"


def missing_page(nb: Notebook) -> str:
    return (
        f"# {nb.name[:2]} · {nb.title}\n\n{nb.teaches}\n\n"
        '!!! warning "Not run in this build"\n'
        f"    `make tour` has not run this notebook, so there is nothing to show yet: run "
        f"`make site` (or `python -m hitchhiker.tour --only {nb.name}` and then "
        "`python -m hitchhiker.site`).\n\n"
        f"{nb.badge}\n"
    )


def mkdocs_config(runs: dict[str, dict | None]) -> dict:
    """mkdocs.yml as a dict: Material theme, mkdocs-jupyter rendering without execution."""
    nav: list[Any] = [{"Home": "index.md"}]
    for nb in NOTEBOOKS:
        nav.append({f"{nb.name[:2]} · {nb.title}": _page(nb, runs)})
    nav.append({"Results": "results.md"})
    return {
        "site_name": SITE_NAME,
        "site_description": "A notebook-driven course in building world models.",
        "use_directory_urls": False,  # pages open from disk (file://) as well as from a server
        "theme": {
            "name": "material",
            "font": False,  # no web fonts: the system's fonts, fetched from nowhere
            "features": ["navigation.footer", "content.code.copy"],
        },
        "nav": nav,
        "plugins": [
            "search",
            {
                "mkdocs-jupyter": {
                    "execute": False,  # the tour ran them; the site shows those outputs
                    "include_source": True,  # a download link to the executed notebook
                    "allow_errors": False,
                    "cache": False,
                    # formulas: the one thing fetched, and only where a page has some (offline,
                    # the TeX source shows instead)
                    "custom_mathjax_url": MATHJAX_URL,
                }
            },
        ],
        "extra_css": ["assets/hitchhiker.css"],
        "markdown_extensions": ["tables", "admonition", "attr_list", "md_in_html", "toc"],
    }


# --------------------------------------------------------------------------- build


def executed_notebook(path: Path) -> dict:
    """An executed notebook, checked: every code cell ran and none raised."""
    book = json.loads(path.read_text())
    for cell in book["cells"]:
        if cell["cell_type"] != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                raise SystemExit(
                    f"{path}: cell {cell.get('id')} raised {out.get('ename')}: {out.get('evalue')};"
                    " fix the notebook and run make tour again"
                )
        if cell["source"] and cell.get("execution_count") is None:
            raise SystemExit(
                f"{path}: cell {cell.get('id')} was not executed (an unfinished tour?)"
            )
    return book


def write_project(tour_dir: Path, build_dir: Path) -> dict[str, dict | None]:
    """Write the MkDocs project into ``build_dir``; return how each notebook was run (or None)."""
    import yaml

    if build_dir.exists():
        shutil.rmtree(build_dir)
    docs = build_dir / "docs"
    (docs / "notebooks").mkdir(parents=True)
    runs: dict[str, dict | None] = {}
    for nb in NOTEBOOKS:
        src = tour_dir / f"{nb.name}.ipynb"
        if not src.exists():
            print(f"site: {nb.name} has not been run (no {src}); its page says so")
            (docs / "notebooks" / f"{nb.name}.md").write_text(missing_page(nb))
            runs[nb.name] = None
            continue
        book = executed_notebook(src)
        if _sources(book) != _sources(json.loads(nb.path.read_text())):
            print(f"site: warning: {src} was run from an older {nb.path.name}; run make tour again")
        widgets = snapshot_widgets(book)
        # copies from a tour that did not record how it ran still make a page
        runs[nb.name] = book["metadata"].get("hitchhiker") or {"preset": "unrecorded"}
        (docs / "notebooks" / src.name).write_text(json.dumps(book, indent=1, ensure_ascii=False))
        print(f"site: {nb.name}: {widgets} widget snapshot(s)")
    (docs / "assets").mkdir()
    (docs / "assets" / "hitchhiker.css").write_text(CSS)
    (docs / "index.md").write_text(home_page(runs))
    (docs / "results.md").write_text(results_page())
    (build_dir / "mkdocs.yml").write_text(
        yaml.safe_dump(mkdocs_config(runs), sort_keys=False, allow_unicode=True)
    )
    return runs


def _sources(book: dict) -> list[str]:
    return [_text(c["source"]) for c in book["cells"] if c["cell_type"] == "code"]


def build(tour_dir: Path, out: Path, build_dir: Path) -> Path:
    """Write the project and run ``mkdocs build`` into ``out``; return the home page's path."""
    write_project(tour_dir, build_dir)
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-q"]
    cmd += ["-f", str(build_dir / "mkdocs.yml"), "-d", str(out.resolve())]
    # Material's notice that it is maintained until 2027: known, see the module docstring
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run(cmd, check=True, cwd=build_dir, env=env)
    return out / "index.html"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hitchhiker.site", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--tour", action="store_true", help="run make tour's notebooks first")
    ap.add_argument("--preset", help="the tour's preset (with --tour; default: what fits)")
    ap.add_argument("--only", nargs="*", help="with --tour: run only these notebooks")
    ap.add_argument("--tour-dir", default=str(ROOT / "runs" / "tour"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "site"))
    ap.add_argument("--build-dir", help="where the MkDocs project is written (default: OUT-src)")
    args = ap.parse_args(argv)
    if args.tour:
        from hitchhiker import tour

        tour_args = ["--out", args.tour_dir] + (["--preset", args.preset] if args.preset else [])
        tour.main(tour_args + (["--only", *args.only] if args.only else []))
    out = Path(args.out)
    build_dir = Path(args.build_dir) if args.build_dir else out.with_name(out.name + "-src")
    index = build(Path(args.tour_dir), out, build_dir)
    print(f"site: built {index.resolve().as_uri()} (open it in a browser)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
