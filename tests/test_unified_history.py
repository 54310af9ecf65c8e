"""The recorded history of the Stage II runs: a table notebook 03 plots and quotes from."""

import re

import matplotlib
import pytest

from hitchhiker.unified import history

matplotlib.use("Agg")


def test_every_record_names_a_known_topic_figure_and_a_commit():
    assert history.RECORDS
    for r in history.RECORDS:
        assert r.topic in history.TOPICS and r.figure in history.FIGURES, r
        assert r.model in ("masked", "autoregressive") and r.split in ("val", "test", "train"), r
        assert re.fullmatch(r"[0-9a-f]{7}", r.source), r
        values = r.value if isinstance(r.value, tuple) else (r.value,)
        if r.figure != "train_loss":
            assert all(0 <= v <= 1 for v in values), r


def test_each_setting_is_recorded_once():
    keys = [
        (r.topic, r.model, r.figure, r.episodes, r.steps, r.setting, r.split)
        for r in history.RECORDS
    ]
    assert len(keys) == len(set(keys))


def test_value_finds_exactly_one_record_or_says_why():
    best = history.value(topic="data", model="masked", figure="i2t_precision", episodes=512,
                         setting="best of 8")  # fmt: skip
    assert best == 0.903  # one value for this setting (0.900 was also written once)
    with pytest.raises(LookupError, match="records match"):
        history.value(topic="data", model="masked")
    with pytest.raises(TypeError, match="no field"):
        history.find(colour="red")


def test_tables_and_the_data_plot_render():
    for topic in history.TOPICS:
        table = history.table(topic)
        assert table.count("\n|") == 2 + len(history.find(topic=topic))  # head, rule, rows
    fig = history.plot_data()
    assert len(fig.axes) == 2 and all(ax.lines for ax in fig.axes)
