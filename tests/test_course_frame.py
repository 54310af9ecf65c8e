"""Every notebook has the course's frame, and its prose quotes no number it did not read.

The frame (see hitchhiker/course.py and hitchhiker/exercises): a generated opening (goals, the
road with this stop marked, what it assumes, measured run times); the key loop written out in
plain torch on the page (a code cell whose id starts with ``on-page``, asserted equal to the
package); a closing with 4-6 exercises that each say what to expect, at least one that the
learner implements and the package checks (its solution one click away in a ``<details>``
block), a summary and references.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil

import pytest

from hitchhiker import exercises, measured
from hitchhiker.course import NOTEBOOKS, title_cell_source

BOOKS = [nb for nb in NOTEBOOKS if nb.path.exists()]
IDS = [nb.name for nb in BOOKS]
CHECK_CALL = re.compile(r"exercises\.check\(\s*[\"'](\d\d\.[\w.-]+)[\"']\s*,\s*(\w+)")
SOLUTION = re.compile(r"<details>.*?```python\n(.*?)```.*?</details>", re.S)
DEV_PROCESS = re.compile(r"\bissues?\b|val sweep|the sweep asks|\bCI\b|closing note", re.I)


def cells(nb, kind=None):
    book = json.loads(nb.path.read_text())
    return [c for c in book["cells"] if kind is None or c["cell_type"] == kind]


def text(cell) -> str:
    return "".join(cell["source"])


@pytest.mark.parametrize("nb", BOOKS, ids=IDS)
def test_opening_says_goals_road_assumptions_and_time(nb):
    assert 3 <= len(nb.goals) <= 5, "3-5 goals"
    assert nb.assumes and nb.runtimes
    title = title_cell_source(nb)
    assert "you are here" in title and "What you will learn" in title and "It assumes" in title


@pytest.mark.parametrize("nb", BOOKS, ids=IDS)
def test_closing_has_exercises_summary_references(nb):
    by_id = {c.get("id"): c for c in cells(nb)}
    for cid, heading in [
        ("exercises", "## Exercises"),
        ("summary", "## Summary"),
        ("references", "## References"),
    ]:
        assert cid in by_id, f"{nb.name}: no markdown cell with id {cid!r}"
        assert text(by_id[cid]).lstrip().startswith(heading), (
            f"{nb.name}: {cid} opens with {heading}"
        )
    items = re.findall(r"^\d+\.\s", text(by_id["exercises"]), re.M)
    assert 4 <= len(items) <= 6, f"{nb.name}: 4-6 numbered exercises, found {len(items)}"
    blocks = re.split(r"^\d+\.\s", text(by_id["exercises"]), flags=re.M)[1:]
    for i, block in enumerate(blocks, 1):
        assert re.search(r"expect", block, re.I), (
            f"{nb.name}: exercise {i} does not say what to expect"
        )
    assert re.search(r"^- ", text(by_id["references"]), re.M), "references are a list"


@pytest.mark.parametrize("nb", BOOKS, ids=IDS)
def test_key_loop_is_on_the_page_and_asserted(nb):
    on_page = [c for c in cells(nb, "code") if str(c.get("id", "")).startswith("on-page")]
    assert on_page, f"{nb.name}: no code cell with an id starting 'on-page'"
    for c in on_page:
        src = text(c)
        lines = [ln for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        assert 12 <= len(lines) <= 45, f"{nb.name}: {c['id']} has {len(lines)} lines of code"
        assert "assert" in src, f"{nb.name}: {c['id']} must assert it equals the package"


@pytest.mark.parametrize("nb", BOOKS, ids=IDS)
def test_implement_exercise_is_checked_and_its_solution_passes(nb):
    code = [text(c) for c in cells(nb, "code")]
    calls = [(m.group(1), m.group(2), src) for src in code for m in CHECK_CALL.finditer(src)]
    assert calls, f"{nb.name}: no exercises.check(...) cell"
    solutions = [s for c in cells(nb, "markdown") for s in SOLUTION.findall(text(c))]
    for name, fn_name, skeleton in calls:
        assert name.startswith(nb.name[:2]), f"{name} belongs to another notebook"
        exercises.get(name)
        ns: dict = {}
        with contextlib.redirect_stdout(io.StringIO()):
            exec(skeleton, ns)  # the cell as the learner finds it: runs, and does not pass
        assert not exercises.check(name, ns[fn_name], verbose=False), f"{name}: skeleton passes"
        mine = [s for s in solutions if re.search(rf"def {fn_name}\b", s)]
        assert mine, f"{nb.name}: no <details> solution defining {fn_name}"
        sol: dict = {}
        exec(mine[0], sol)
        assert exercises.check(name, sol[fn_name], verbose=False), f"{name}: solution fails"


def test_every_registered_exercise_is_in_a_notebook():
    used = {
        m.group(1) for nb in BOOKS for c in cells(nb, "code") for m in CHECK_CALL.finditer(text(c))
    }
    assert set(exercises.names()) <= used


def test_checker_reports_instead_of_raising():
    name = exercises.names()[0]

    def broken(*args):
        raise RuntimeError("oops")

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert not exercises.check(name, broken)
        assert not exercises.check(name, lambda *a: None)
    assert "RuntimeError: oops" in out.getvalue() and "not done yet" in out.getvalue()
    with pytest.raises(KeyError, match="known"):
        exercises.get("99.nothing")


@pytest.mark.parametrize("nb", BOOKS, ids=IDS)
def test_prose_quotes_no_unsourced_number(nb):
    bad = measured.unsourced_numbers(nb.path, generated_ids=("title",))
    assert not bad, (
        f"{nb.name} types numbers into its prose: {bad}. Say a measured number with "
        "hitchhiker.measured.say(...) from a code cell; list a paper's fact in measured.QUOTED."
    )


@pytest.mark.parametrize("nb", BOOKS, ids=IDS)
def test_prose_tells_the_course_not_its_making(nb):
    for c in cells(nb, "markdown"):
        if c.get("id") == "title":
            continue
        m = DEV_PROCESS.search(text(c))
        assert not m, (
            f"{nb.name} cell {c.get('id')}: development talk in the learner's text: {m.group(0)!r}"
        )


def test_a_planted_stale_number_is_caught(tmp_path):
    """The rule catches the failure it exists for: a figure typed into prose."""
    nb = BOOKS[-1]
    copy = tmp_path / nb.path.name
    shutil.copy(nb.path, copy)
    book = json.loads(copy.read_text())
    cell = next(c for c in book["cells"] if c["cell_type"] == "markdown" and c.get("id") != "title")
    cell["source"] = ["The engine follows the actions 0.93 of the time, at 113 fps.\n"] + cell[
        "source"
    ]
    copy.write_text(json.dumps(book))
    bad = measured.unsourced_numbers(copy, generated_ids=("title",))
    assert any(b.endswith(": 0.93") for b in bad) and any(b.endswith(": 113 fps") for b in bad)


def test_say_reads_stored_figures_and_refuses_unknown_ones():
    name = next(iter(measured.stored_figures()))
    assert measured.fill("{" + name + ":.3f}") == format(measured.figure(name), ".3f")
    assert measured.fill("{x:.1f} ms", x=2.25) == "2.2 ms"
    with pytest.raises(KeyError, match="names that exist"):
        measured.fill("{stage9.nothing.here}")
    with pytest.raises(KeyError, match="keyword"):
        measured.fill("{unknown}")
    assert measured.quoted_numbers("`0.5` and $0.25$ and [x](a/0.3) but 0.75 and 12 ms") == [
        "0.75",
        "12 ms",
    ]


def test_bench_json_is_the_readme_table():
    from hitchhiker import bench
    from hitchhiker.course import README

    stored = json.loads(measured.BENCH.read_text())
    table = README.read_text().split("<!-- bench:begin -->")[1].split("<!-- bench:end -->")[0]
    assert bench.markdown(stored).strip() == table.strip()


def test_a_cell_ending_in_say_shows_its_text_once():
    # say() displays the text as Markdown; the value it returns must not be echoed as the cell's
    # result too (every measured sentence of a notebook would otherwise show twice).
    from IPython.core.formatters import DisplayFormatter

    with contextlib.redirect_stdout(io.StringIO()):
        text = measured.say("measured {x:.2f}", x=0.5)
    assert text == "measured 0.50"
    assert DisplayFormatter().format(text) == ({}, {})
