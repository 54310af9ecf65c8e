"""Engines compared by their stored figures: the verdict words follow the numbers, both ways."""

from __future__ import annotations

import pytest

from hitchhiker import measured
from hitchhiker.interactive import versus


@pytest.fixture
def figures(monkeypatch):
    """Two made-up engines' figures in place of the stored ones."""
    fake = {
        "stage3.a.action_following_16": 0.9,
        "stage3.b.action_following_16": 0.8,
        "stage3.a.tile_error_h8": 0.5,
        "stage3.b.tile_error_h8": 0.3,
        "stage3.a.fps_b1": 100.2,
        "stage3.b.fps_b1": 99.9,
    }
    monkeypatch.setattr(versus, "figure", fake.__getitem__)
    monkeypatch.setattr(measured, "figure", fake.__getitem__)
    return fake


def test_higher_or_lower_is_better_per_score(figures):
    assert versus.ahead("a", "b", "action_following_16") == 1
    assert versus.ahead("b", "a", "action_following_16") == -1
    # an error: lower is better
    assert versus.word("a", "b", "tile_error_h8") == "worse"
    assert versus.word("b", "a", "tile_error_h8", "better", "worse") == "better"
    # compared as shown (".0f"): 100 against 100 is a tie
    assert versus.word("a", "b", "fps_b1", "faster", "slower", "as fast") == "as fast"
    keys = [k.rsplit(".", 1)[1] for k in figures if k.startswith("stage3.a.")]
    assert versus.tally("a", "b", [versus.score(k) for k in keys]) == (1, 1)


def test_a_difference_inside_the_intervals_is_a_tie(figures, monkeypatch):
    with_ci = {**figures, "stage3.a.action_following_16_ci95": 0.08}
    monkeypatch.setattr(versus, "stored_figures", lambda: with_ci)
    assert versus.ahead("a", "b", "action_following_16") == 1  # 0.1 apart > 0.08
    with_ci["stage3.b.action_following_16_ci95"] = 0.08  # combined: 0.113 > 0.1
    assert versus.ahead("a", "b", "action_following_16") == 0
    assert versus.word("a", "b", "action_following_16", same="as good") == "as good"
    table = versus.table({"A": "a", "B": "b"}, [versus.score("action_following_16")])
    assert "± {stage3.a.action_following_16_ci95:.3f}" in table
    assert table.splitlines()[2].endswith("| tie |")


def test_table_names_the_leader_and_leaves_numbers_to_say(figures):
    rows = [versus.score("action_following_16"), versus.score("tile_error_h8")]
    table = versus.table({"A": "a", "B": "b"}, rows)
    assert "{stage3.a.action_following_16:.3f}" in table
    lines = table.splitlines()
    assert lines[2].endswith("| A |") and lines[3].endswith("| B |")
    with pytest.raises(KeyError, match="no score"):
        versus.score("nothing")


def test_stored_figures_exist_for_every_score():
    """Every score the notebook compares is stored for both shipped engines it names."""
    names = measured.stored_figures()
    for engine in ("diffusion", "diffusion_noaug", "diffusion_pixels", "dynamics"):
        for s in versus.QUALITY + versus.DRIFT + versus.SPACE:
            assert versus.name(engine, s.key) in names
    assert versus.fps_target("diffusion") > 0
