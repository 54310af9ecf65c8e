"""make site: the course's web pages, built by MkDocs from the notebooks make tour executed."""

import base64
import json
import re

import pytest

from hitchhiker import site, tour
from hitchhiker.course import NOTEBOOKS

RUN = "00_the_road"  # the quickest notebook, and it has a live widget


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Notebook 00 run by the tour at the smoke preset, then the site built from it."""
    tmp = tmp_path_factory.mktemp("site")
    assert tour.main(["--preset", "smoke", "--only", RUN, "--out", str(tmp / "tour")]) == 0
    index = site.build(tmp / "tour", tmp / "site", tmp / "site-src")
    return tmp, index


@pytest.mark.slow
def test_site_renders_the_executed_notebook_with_its_pictures_and_widget_snapshot(built):
    tmp, index = built
    assert index.exists()
    page = (tmp / "site" / "notebooks" / f"{RUN}.html").read_text()
    nb = next(n for n in NOTEBOOKS if n.name == RUN)
    assert nb.title in page
    # matplotlib figures, rendered by the tour, inlined in the page
    assert re.search(r'<img[^>]+src="data:image/png;base64,', page)
    # the live widget is a static snapshot with its picture, not a widget view needing a kernel
    snapshot = page[page.index('class="hh-widget-snapshot"') :]
    assert re.match(r"[^<]*>\s*(<div[^>]*>\s*)*<img[^>]*src=\"data:image/png;base64,", snapshot)
    assert "widget-view+json" not in page and "html-manager" not in page
    # nothing raised while the tour ran it, and the page was not executed again
    assert "Traceback" not in page
    executed = json.loads((tmp / "site-src" / "docs" / "notebooks" / f"{RUN}.ipynb").read_text())
    assert not [
        o for c in executed["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"
    ]
    assert executed["metadata"]["hitchhiker"]["preset"] == "smoke"


@pytest.mark.slow
def test_site_nav_lists_every_notebook_in_course_order(built):
    tmp, index = built
    home = index.read_text()
    order = []
    for name in re.findall(r'href="notebooks/(\w+)\.html"', home):
        if name not in order:
            order.append(name)
    assert order == [nb.name for nb in NOTEBOOKS]
    for nb in NOTEBOOKS:
        assert nb.title in home
        page = (tmp / "site" / "notebooks" / f"{nb.name}.html").read_text()
        assert nb.title in page
        if nb.name != RUN:
            assert "Not run in this build" in page
    assert "smoke" in home and (tmp / "site" / "results.html").exists()


def _state(models):
    return {mid: {"model_name": name, "state": state} for mid, (name, state) in models.items()}


def test_widget_snapshot_draws_the_saved_state():
    png = base64.b64encode(b"\x89PNG fake").decode()
    state = _state(
        {
            "box": ("VBoxModel", {"children": ["IPY_MODEL_img", "IPY_MODEL_btn", "IPY_MODEL_dd"]}),
            "img": ("ImageModel", {"format": "png"}),
            "btn": ("ButtonModel", {"description": "Reset"}),
            "dd": (
                "DropdownModel",
                {"description": "auto", "_options_labels": ["noop", "up"], "index": 1},
            ),
        }
    )
    state["img"]["buffers"] = [{"data": png, "encoding": "base64", "path": ["value"]}]
    html = site.widget_snapshot(state, "box")
    assert f'src="data:image/png;base64,{png}"' in html
    assert "<button disabled" in html and "Reset" in html
    assert "<option>up</option>" in html and site.SNAPSHOT_NOTE in html
    assert site.widget_snapshot(state, "missing") is None
    # a progress bar is shown as it stood, without the snapshot's frame and note
    bar = _state({"bar": ("FloatProgressModel", {"value": 8, "max": 8})})
    plain = site.widget_snapshot(bar, "bar")
    assert '<progress value="8" max="8">' in plain and site.SNAPSHOT_NOTE not in plain


def test_snapshot_widgets_replaces_widget_views_and_drops_the_cdn_state():
    state = _state({"lbl": ("LabelModel", {"value": "step 3"})})
    book = {
        "metadata": {"widgets": {site.WIDGET_STATE: {"state": state}}},
        "cells": [
            {
                "cell_type": "code",
                "outputs": [
                    {
                        "output_type": "execute_result",
                        "data": {site.WIDGET_VIEW: {"model_id": "lbl"}, "text/plain": "Label()"},
                    }
                ],
            }
        ],
    }
    assert site.snapshot_widgets(book) == 1
    data = book["cells"][0]["outputs"][0]["data"]
    assert site.WIDGET_VIEW not in data and "step 3" in data["text/html"]
    assert "widgets" not in book["metadata"]


def test_a_notebook_that_raised_is_refused(tmp_path):
    path = tmp_path / "nb.ipynb"
    cell = {"cell_type": "code", "id": "x", "source": "1/0", "execution_count": 1}
    cell["outputs"] = [
        {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero"}
    ]
    path.write_text(json.dumps({"cells": [cell], "metadata": {}}))
    with pytest.raises(SystemExit, match="ZeroDivisionError"):
        site.executed_notebook(path)


def test_home_page_follows_the_course_and_links_each_notebook():
    runs = {nb.name: None for nb in NOTEBOOKS}
    runs[RUN] = {"preset": "cpu", "hardware": "AMD EPYC (2 cores)", "seconds": 15.0}
    home = site.home_page(runs)
    links = re.findall(r"\]\(notebooks/(\w+)\.(ipynb|md)\)", home)
    assert [n for n, _ in links] == [nb.name for nb in NOTEBOOKS]
    assert dict(links)[RUN] == "ipynb" and "A smoke build" not in home
    nav = site.mkdocs_config(runs)["nav"]
    assert [list(item.values())[0] for item in nav[1:-1]] == [
        f"notebooks/{n}.{e}" for n, e in links
    ]
