"""Numbers a learner can trust: prose that quotes figures reads them, it never types them.

A figure typed into a notebook's text goes stale the day a model is retrained, and nothing
notices. So the course keeps two rules, and a test (tests/test_course_frame.py) enforces both:

1. **A number in a markdown cell is not a measurement.** Markdown may quote a number only when
   it is a fact of a paper or a definition (BERT hides 15% of tokens; MaskGIT decodes in 8 steps),
   and then the number is listed in :data:`QUOTED` with its source. Anything else that looks like a
   figure (a decimal, a percentage, a number with a unit such as ms, fps, s, x or dB) fails the test.
2. **A measured number is read where it was measured.** A code cell says it with :func:`say`,
   which fills a sentence from the shipped manifest (each checkpoint's figures,
   ``data/checkpoints/manifest.json``), from the benchmark (``data/bench.json``, written by
   ``python -m hitchhiker.bench --readme``) or from values the notebook just computed:

       say("The tokenizer reads back {stage1.tokenizer.tile_accuracy:.3f} of the tiles.")
       say("This run: {acc:.2f}.", acc=acc)

The placeholder is ``{name}`` or ``{name:format}``; a dotted name is a stored figure, a plain name
a keyword argument. An unknown name raises an error that lists the names that exist.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "data" / "checkpoints" / "manifest.json"
BENCH = ROOT / "data" / "bench.json"
"""The benchmark figures behind the README's results table (``bench --readme`` writes both)."""


@cache
def stored_figures() -> dict[str, float]:
    """Every stored figure by dotted name: the benchmark's, then each shipped checkpoint's.

    The benchmark wins where both have a name: it is the table the README quotes.
    """
    out: dict[str, float] = {}
    if MANIFEST.exists():
        for entry in json.loads(MANIFEST.read_text()).get("checkpoints", []):
            out.update({k: float(v) for k, v in entry.get("figures", {}).items()})
    if BENCH.exists():
        bench = json.loads(BENCH.read_text())
        out.update({k: float(v) for k, v in bench.items() if isinstance(v, (int, float))})
    return out


def bench_hardware() -> str:
    """The machine the stored benchmark was measured on (named wherever its numbers are quoted)."""
    if not BENCH.exists():
        return "not measured"
    data = json.loads(BENCH.read_text())
    return f"{data.get('hardware', 'unknown machine')}, preset {data.get('preset', '?')}"


def figure(name: str) -> float:
    """One stored figure, e.g. ``figure("stage1.tokenizer.tile_accuracy")``."""
    figs = stored_figures()
    if name not in figs:
        stem = name.rsplit(".", 1)[0]
        near = sorted(k for k in figs if k.startswith(stem)) or sorted(figs)[:12]
        raise KeyError(
            f"no stored figure {name!r} (not in {MANIFEST.name} nor {BENCH.name}); "
            f"names that exist include: {', '.join(near)}"
        )
    return figs[name]


PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)(?::([^{}]*))?\}")


def fill(template: str, **values: float) -> str:
    """``template`` with every ``{name}`` / ``{name:fmt}`` replaced by its value (see module doc)."""

    def one(m: re.Match) -> str:
        name, fmt = m.group(1), m.group(2) or ""
        if "." in name:
            value = figure(name)
        elif name in values:
            value = values[name]
        else:
            raise KeyError(
                f"{{{name}}} is neither a stored figure (dotted name) nor a keyword argument "
                f"(given: {', '.join(values) or 'none'})"
            )
        return format(value, fmt)

    return PLACEHOLDER.sub(one, template)


def against_goal(value: float, half: float, goal: float) -> str:
    """How a measured ``value`` ± ``half`` (its 95% interval) stands against a goal of at least
    ``goal``, in words: whether the goal is met, and whether the interval settles it.

    >>> against_goal(0.79, 0.17, 0.8)
    'falls short of the goal of 0.8, though its interval reaches it'
    """
    low, high = value - half, value + half
    if low >= goal:
        return f"meets the goal of {goal:g}, with its whole interval above it"
    if value >= goal:
        return f"meets the goal of {goal:g}, though its interval reaches below it"
    if high >= goal:
        return f"falls short of the goal of {goal:g}, though its interval reaches it"
    return f"falls short of the goal of {goal:g}, with its whole interval below it"


class Shown(str):
    """Text :func:`say` has already shown: a cell that ends with ``say(...)`` does not echo it a
    second time as the cell's result (IPython calls ``_ipython_display_`` instead of printing)."""

    def _ipython_display_(self):
        pass


def say(template: str, **values: float):
    """Show ``template`` filled with measured values as Markdown (plain text outside Jupyter);
    returns the text."""
    text = Shown(fill(template, **values))
    try:
        from IPython.display import Markdown, display

        display(Markdown(text))
    except ImportError:  # pragma: no cover - IPython comes with the lab extras
        print(text)
    return text


# --------------------------------------------------------------------------- the prose rule

QUOTED: dict[str, dict[str, str]] = {
    # notebook number -> {number as written: where it comes from}. Only papers' facts and
    # definitions belong here; a measurement goes through say().
    "00": {},
    "01": {
        "15%": "BERT masks 15% of the tokens (Devlin et al., 2019)",
        "75%": "MAE hides 75% of the patches (He et al., 2022)",
        "80%": "BERT turns 80% of the picked tokens into [MASK] (Devlin et al., 2019, §3.1)",
        "10%": "BERT turns 10% of the picked tokens into a random token and keeps 10% (Devlin et al., 2019, §3.1)",
    },
    "02": {
        "64×": "MaskGIT accelerates autoregressive decoding by up to 64x (Chang et al., 2022, "
        "https://arxiv.org/abs/2202.04200, abstract)",
    },
    "03": {},
    "04": {},
    "05": {"95%": "the level of the intervals the benchmark reports (a definition)"},
    "06": {
        "25.32 dB": "WorldMem, beyond the context window, ground-truth pose (Xiao et al., 2025, "
        "https://arxiv.org/abs/2504.12369, Table 8)",
        "23.13 dB": "WorldMem with predicted pose (Xiao et al., 2025, Table 8)",
        "18.32 dB": "WorldMem with random retrieval (Xiao et al., 2025, retrieval ablation)",
    },
    "07": {
        "95%": "the level of the intervals the benchmark reports (a definition)",
    },
}

_UNIT = r"(?:ms|fps|FPS|steps/s|frames/s|s|sec|seconds|min|minutes|h|hours|x|×|dB|GB|MB|KB|k|M)"
FIGURE_LIKE = re.compile(
    r"(?<![\w.\-/#])("
    r"\d[\d,]*\.\d+(?:\s?(?:%|" + _UNIT + r"))?"  # a decimal, maybe with a unit
    r"|\d[\d,]*\s?%"  # a percentage
    r"|\d[\d,]*\s?" + _UNIT + r"(?![\w])"  # a number with a unit
    r")(?![\w.]*\d)"
)
"""What counts as a quoted figure in prose (outside code, math, links and HTML tags)."""

_NOT_PROSE = [
    re.compile(r"```.*?```", re.S),  # fenced code
    re.compile(r"`[^`\n]*`"),  # inline code
    re.compile(r"\$\$.*?\$\$", re.S),  # display math
    re.compile(r"\$[^$\n]*\$"),  # inline math
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"<[^>\n]*>"),  # HTML tags and comments
    re.compile(r"https?://\S+"),  # bare addresses
    re.compile(r"arXiv[:\s]*\d{4}\.\d{4,5}(?:v\d+)?", re.I),  # paper ids, not figures
]


def quoted_numbers(markdown: str) -> list[str]:
    """The figure-like numbers a markdown text quotes in its prose."""
    for pattern in _NOT_PROSE:
        markdown = pattern.sub(" ", markdown)
    return [m.group(1).strip() for m in FIGURE_LIKE.finditer(markdown)]


def unsourced_numbers(notebook: Path | str, generated_ids: tuple[str, ...] = ()) -> list[str]:
    """Numbers a notebook's markdown quotes without a source in :data:`QUOTED`, as
    ``"cell <id>: <number>"`` lines (empty when the notebook keeps the rule).

    ``generated_ids`` are cells written by code (the opening, from :mod:`hitchhiker.course`),
    whose numbers come from measured data, not from a hand.
    """
    path = Path(notebook)
    allowed = QUOTED.get(path.name[:2], {})
    book = json.loads(path.read_text())
    bad = []
    for cell in book["cells"]:
        if cell["cell_type"] != "markdown" or cell.get("id") in generated_ids:
            continue
        for number in quoted_numbers("".join(cell["source"])):
            if number not in allowed:
                bad.append(f"cell {cell.get('id')}: {number}")
    return bad
