"""Notebook 07's plots draw the stored benchmark's figures: each bar and line is the figure it
names, so the picture and the prose that quotes the same figures cannot disagree."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from hitchhiker import zoo
from hitchhiker.agents import show_agents as show
from hitchhiker.measured import figure


@pytest.fixture(scope="module")
def cfg():
    """The shipped flower agent's config: the one the stored stage-5 figures were measured with."""
    return zoo.load("agent").shipped_config


@pytest.fixture(autouse=True)
def no_windows(monkeypatch):
    figs = []
    monkeypatch.setattr(plt, "show", lambda: figs.append(plt.gcf()))
    yield figs
    plt.close("all")


def bar_heights(ax) -> list[float]:
    return [p.get_height() for p in ax.patches]


def test_the_curve_and_the_seed_study_are_the_stored_figures(cfg, no_windows):
    ns, at = show.plot_curve(cfg)
    assert ns[0] == cfg.curve_every and ns[-1] == cfg.curve_updates
    real = [figure(f"stage5.agent.curve.u{n:03d}.real_return") for n in ns]
    np.testing.assert_array_equal(at["real_return"], real)
    left = no_windows[-1].axes[0]
    np.testing.assert_array_equal(left.lines[0].get_ydata(), real)

    ns, runs, control = show.plot_seed_study(cfg)
    assert set(runs) == set(show.SEED_TITLES) and set(runs["shipped"]) == set(cfg.seed_study)
    s = cfg.seed_study[-1]
    got = [figure(f"stage5.agent.seeds.cleanrl.s{s}.u{n:03d}.real_return") for n in ns]
    np.testing.assert_array_equal(runs["cleanrl"][s], got)
    assert min(figure(f"stage5.agent.seeds.s{s}.real_trained") for s in cfg.seed_study) <= control


def test_the_bars_are_the_stored_figures(cfg, no_windows):
    show.plot_home_dream()
    ax = no_windows[-1].axes[0]
    assert bar_heights(ax) == [
        figure(f"stage5.{r}.{m}.success")
        for r in ("home", "home_dream")
        for m in ("memory", "no_memory")
    ]
    show.plot_refusals(cfg)
    left, right = no_windows[-1].axes
    assert bar_heights(left)[-1] == figure(
        "stage5.agent_walls.refusals.dream_trained.refused_share"
    )
    assert bar_heights(right)[0] == figure("stage5.agent.untuned.real_trained.real_return")
    show.plot_capstone_walls()
    heights = bar_heights(no_windows[-1].axes[0])
    assert len(heights) == 2 * len(show.CAPSTONE_DREAMS)  # refused drawn still, then free moved
    assert heights[2] == figure("stage5.agent.capstone.walls.blocked_drawn_blocked")
    show.plot_memory_walls()
    left, right = no_windows[-1].axes
    assert bar_heights(right)[1] == figure("stage5.home_dream_walls.memory.success")


def test_the_loop_and_the_untuned_seeds_are_the_stored_figures(cfg, no_windows):
    got = show.plot_loop(cfg)
    rounds = range(cfg.loop_rounds + 1)
    assert got["real_return"] == [figure(f"stage5.agent.loop.r{k}.real_return") for k in rounds]
    assert got["low"][0] == got["high"][0] == got["real_return"][0]  # the shipped agent: one run
    assert all(lo <= hi for lo, hi in zip(got["low"], got["high"]))

    recipes = {"flower dream": "stage5.agent.untuned_seeds"}
    by_seed = show.plot_untuned_seeds(cfg, recipes)
    runs = by_seed["flower dream"]
    assert runs == [
        figure(f"stage5.agent.untuned_seeds.s{s}.real_return") for s in cfg.untuned_seeds
    ]
    ax = no_windows[-1].axes[0]
    assert bar_heights(ax) == [figure("stage5.agent.untuned_seeds.real_return")]
    assert min(runs) <= bar_heights(ax)[0] <= max(runs)  # seed-averaged lies between the seeds
    shipped = [t.get_text() for t in ax.texts if "(shipped)" in t.get_text()]
    assert shipped == [f"seed {cfg.seed} (shipped)"]
