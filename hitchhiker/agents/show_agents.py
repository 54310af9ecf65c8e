"""Stage V's plots for notebook 07: the stored benchmark's figures, drawn.

Every plot here reads :func:`hitchhiker.measured.figure` (the figures ``python -m hitchhiker.bench``
stored in ``data/bench.json``, or the manifest's), so the notebook's pictures and its prose show the
same measured numbers. Each function draws one figure and returns the series it drew, so the
notebook's sentences can quote them without reading the benchmark twice.

Error bars are 95% intervals over held-out worlds (one episode each). Names: ``n`` update counts,
``s`` seeds, ``k`` closed-loop rounds; ``cfg`` is the recipe's Config (``agent`` or ``agent_walls``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from hitchhiker.measured import figure

BLUE, GREEN, ORANGE, PURPLE, GREY = "#37a", "#3a7", "#a73", "#a37", "#999"


def stored_bars(ax, bars: dict[str, str], end: str, colors=None) -> list[float]:
    """One bar per ``label -> figure prefix`` of ``bars``: the stored ``{prefix}.{end}`` with its
    95% interval (``{prefix}.{end}_ci95``), the labels under the bars. Returns the heights."""
    heights = [figure(f"{p}.{end}") for p in bars.values()]
    ax.bar(
        range(len(bars)),
        heights,
        yerr=[figure(f"{p}.{end}_ci95") for p in bars.values()],
        capsize=3,
        color=colors,
    )
    ax.set_xticks(range(len(bars)), list(bars))
    return heights


def _paired_bars(ax, groups: dict[str, str], series: tuple[tuple[str, str], ...], colors=None):
    """Two bars per group: ``figure(group + end)`` for each ``(end, label)`` of ``series``, each
    with its interval; the groups' labels under them."""
    x = np.arange(len(groups))
    for i, (end, label) in enumerate(series):
        ax.bar(
            x + 0.38 * i,
            [figure(p + end) for p in groups.values()],
            0.36,
            label=label,
            yerr=[figure(p + end + "_ci95") for p in groups.values()],
            capsize=3,
            color=None if colors is None else colors[i],
        )
    ax.set_xticks(x + 0.19, list(groups))
    ax.set_ylim(0, 1.25)
    ax.legend(fontsize=8, loc="upper center", ncol=2)


def plot_curve(cfg, prefix: str = "stage5.agent.curve") -> tuple[np.ndarray, dict]:
    """The learning curve in the dream: real return on val worlds every ``curve_every`` updates
    beside the control (left); the dream's own return, the policy's entropy and the critic's loss
    (right). Returns (update counts (n,), {series: (n,)})."""
    ns = np.arange(cfg.curve_every, cfg.curve_updates + 1, cfg.curve_every)
    keys = ("real_return", "real_return_ci95", "dream_return", "entropy", "value_loss")
    at = {k: np.array([figure(f"{prefix}.u{n:03d}.{k}") for n in ns]) for k in keys}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.2))
    real, ci = at["real_return"], at["real_return_ci95"]
    left.fill_between(ns, real - ci, real + ci, color=BLUE, alpha=0.2)
    left.plot(ns, real, "o-", color=BLUE, label="dream-trained: real return")
    left.axhline(
        figure(f"{prefix}.real_trained"), color=GREEN, ls="--", label="real-trained control"
    )
    left.axvline(cfg.updates, color=GREY, lw=1, label="where the shipped agent stopped")
    left.set_xlabel("updates in the dream")
    left.set_ylabel("flowers picked (val worlds)")
    left.legend(fontsize=8)
    right.plot(ns, at["dream_return"], "o-", label="dream return of its rollouts")
    right.plot(ns, at["entropy"], "^-", label="policy entropy (nats)")
    twin = right.twinx()  # the critic's loss lives on another scale
    twin.plot(ns, at["value_loss"], "s--", color=ORANGE, label="critic loss (right axis)")
    right.set_xlabel("updates in the dream")
    handles = [
        sum(x, []) for x in zip(right.get_legend_handles_labels(), twin.get_legend_handles_labels())
    ]
    fig.legend(*handles, loc="upper right", fontsize=8, bbox_to_anchor=(0.9, 0.88))
    plt.tight_layout()
    plt.show()
    return ns, at


SEED_TITLES = {
    "shipped": "the recipe's critic (loss x 1, clip 10)",
    "cleanrl": "cleanrl's critic (loss x 0.5, clip 0.5)",
}
"""The two critic settings of the learning-curve seed study, as the plot titles them."""


def plot_seed_study(cfg, prefix: str = "stage5.agent.seeds") -> tuple[np.ndarray, dict, float]:
    """One panel per critic setting: each seed's real return on val worlds along training, their
    mean and the control. Returns (update counts (n,), {setting: {seed: (n,)}}, control's mean)."""
    ns = np.arange(cfg.seed_study_every, cfg.curve_updates + 1, cfg.seed_study_every)
    runs = {
        setting: {
            s: np.array([figure(f"{prefix}.{setting}.s{s}.u{n:03d}.real_return") for n in ns])
            for s in cfg.seed_study
        }
        for setting in SEED_TITLES
    }
    control = float(np.mean([figure(f"{prefix}.s{s}.real_trained") for s in cfg.seed_study]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
    for ax, (setting, by_seed) in zip(axes, runs.items()):
        for s, real in by_seed.items():
            curve_seed = setting == "shipped" and s == cfg.seed
            label = f"seed {s}" + (" (the curve above)" if curve_seed else "")
            ax.plot(ns, real, "o-", alpha=0.55, label=label)
        mean = [figure(f"{prefix}.{setting}.u{n:03d}.mean") for n in ns]
        ax.plot(ns, mean, "k-", lw=2.5, label="mean over seeds")
        ax.axhline(control, color=GREEN, ls="--", label="real-trained control")
        ax.axvline(cfg.updates, color=GREY, lw=1)
        ax.set_title(SEED_TITLES[setting], fontsize=10)
        ax.set_xlabel("updates in the dream")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("flowers picked (val worlds)")
    plt.tight_layout()
    plt.show()
    return ns, runs, control


def plot_home_dream(real: str = "stage5.home", dream: str = "stage5.home_dream"):
    """Go home in the real world: the real-trained and the dream-trained pair, with and without
    memory, and (black dashes) the dream-trained pair's success inside the dream."""
    bars = {
        "real-trained\nmemory": f"{real}.memory",
        "real-trained\nframe only": f"{real}.no_memory",
        "dream-trained\nmemory": f"{dream}.memory",
        "dream-trained\nframe only": f"{dream}.no_memory",
    }
    fig, ax = plt.subplots(figsize=(7, 3))
    stored_bars(ax, bars, "success", [GREEN, ORANGE, BLUE, PURPLE])
    keys = list(bars.values())
    for i in (2, 3):
        ax.plot(i, figure(f"{keys[i]}.dream_success"), "k_", markersize=22, mew=2)
    ax.set_ylabel("got home")
    ax.set_ylim(0, 1.05)
    ax.set_title("go home, real world (95% intervals); black dash: in the dream")
    plt.show()


def plot_memory_walls(dream: str = "stage5.home_dream", walls: str = "stage5.home_dream_walls"):
    """Left: notebook 04's wall probes on the two memory engines. Right: go home with memory,
    learned only in each engine's dream, in the real world and in the dream."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.2))
    engines = {
        "shipped memory\n(no walls in its play)": "stage4.memory",
        "memory from the\nengine that learned walls": "stage4.memory_walls",
    }
    probes = (
        (".blocked_moves_drawn_blocked", "blocked moves drawn blocked"),
        (".free_moves_drawn_moved", "free moves drawn right"),
    )
    _paired_bars(left, engines, probes)
    left.set_title("the memory engines on notebook 04's wall probes")
    dreams = {"memory dream": dream, "memory dream\nwith walls": walls}
    where = ((".memory.success", "real world"), (".memory.dream_success", "in the dream"))
    _paired_bars(right, dreams, where, colors=(BLUE, GREY))
    right.set_title("go home with memory, learned only in the dream")
    plt.tight_layout()
    plt.show()


def plot_loop(cfg, prefix: str = "stage5.agent.loop") -> dict[str, list]:
    """The closed loop, round by round: real return (seed mean, its interval, and the seeds'
    range) and dream return (left); the share of real picks each round's dream turns to grass
    (right). Returns {series: one value per round, the shipped agent first}."""
    rounds = list(range(cfg.loop_rounds + 1))
    got = {
        k: [figure(f"{prefix}.r{r}.{k}") for r in rounds]
        for k in ("real_return", "real_return_ci95", "dream_return", "picks_cleared")
    }
    real = got["real_return"]
    # Round 0 is the shipped agent: one run, so its range is the point itself.
    got["low"] = [real[0]] + [figure(f"{prefix}.r{r}.seed_min") for r in rounds[1:]]
    got["high"] = [real[0]] + [figure(f"{prefix}.r{r}.seed_max") for r in rounds[1:]]
    seeds, picks = int(figure(f"{prefix}.seeds")), int(figure(f"{prefix}.picks"))
    names = ["shipped"] + [f"round {r}" for r in rounds[1:]]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 2.8), gridspec_kw={"width_ratios": [3, 2]})
    ax.fill_between(
        rounds, got["low"], got["high"], alpha=0.2, label=f"lowest to highest of {seeds} seeds"
    )
    ax.errorbar(
        rounds,
        real,
        yerr=got["real_return_ci95"],
        marker="o",
        capsize=3,
        label="real return, seed mean",
    )
    ax.plot(rounds, got["dream_return"], "s--", label="dream return, seed mean")
    ax.set_xticks(rounds, names)
    ax.set_ylabel("flowers")
    ax.legend(fontsize=8)
    ax.set_title("play, refit dynamics and heads, train in the dream", fontsize=10)
    bx.bar(rounds, got["picks_cleared"], color="tab:green")
    bx.set_ylim(0, 1)
    bx.set_xticks(rounds, names)
    bx.set_title(
        f"the dream turns a picked flower to grass\n(of {picks} real picks; the world: all)",
        fontsize=10,
    )
    plt.tight_layout()
    plt.show()
    return got


CAPSTONE_DREAMS = {
    "flower_dream": "the dream it\ntrained in",
    "memory": "memory",
    "walls": "walls\n(dynamics_walls)",
    "memory_walls": "memory\n+ walls",
}
"""The capstone's four dreams (``stage5.agent.capstone.<dream>``), as the plot labels them."""


def plot_capstone_walls(prefix: str = "stage5.agent.capstone"):
    """Each capstone dream at the walls the dream-trained agent meets: refused moves it draws
    still, free moves it draws moved."""
    fig, ax = plt.subplots(figsize=(8, 3))
    groups = {label: f"{prefix}.{d}" for d, label in CAPSTONE_DREAMS.items()}
    series = (
        (".blocked_drawn_blocked", "refused moves drawn still"),
        (".free_drawn_moved", "free moves drawn moved"),
    )
    _paired_bars(ax, groups, series)
    ax.set_title(
        "the capstone's dreams at the walls the dream-trained agent meets (stored, 95% intervals)"
    )
    plt.tight_layout()
    plt.show()


def plot_refusals(cfg, agent: str = "stage5.agent", walls: str = "stage5.agent_walls"):
    """Left: the share of each policy's moves the real world refused. Right: real return on the
    untuned test worlds of the control and both dream-trained agents."""
    refused = {
        "random": f"{agent}.refusals.random",
        "real-trained\n(the control)": f"{agent}.refusals.real_trained",
        "dream-trained\n(no walls)": f"{agent}.refusals.dream_trained",
        "dream-trained\n(walls)": f"{walls}.refusals.dream_trained",
    }
    real = {
        "real-trained\n(the control)": f"{agent}.untuned.real_trained",
        "dream-trained\n(no walls)": f"{agent}.untuned.dream_trained",
        "dream-trained\n(walls)": f"{walls}.untuned.dream_trained",
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3))
    stored_bars(left, refused, "refused_share", [GREY, GREEN, BLUE, ORANGE])
    stored_bars(right, real, "real_return", [GREEN, BLUE, ORANGE])
    left.set_ylabel("share of its moves")
    left.set_title(f"moves the real world refused ({cfg.eval_episodes} test worlds)")
    right.set_ylabel("flowers picked")
    right.set_title(f"real return, {cfg.untuned_episodes} untuned test worlds")
    plt.tight_layout()
    plt.show()


def plot_untuned_seeds(cfg, recipes: dict[str, str]) -> dict[str, list[float]]:
    """Per recipe (label -> figure prefix ``stage5.<recipe>.untuned_seeds``): the seed-averaged
    real return on the untuned worlds with its interval, one labelled dot per seed (``cfg.seed``'s
    is the shipped agent) and the recipe's control as a dashed line. Returns {label: per seed}."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    by_seed = {}
    for x, (who, key) in enumerate(recipes.items()):
        runs = by_seed[who] = [figure(f"{key}.s{s}.real_return") for s in cfg.untuned_seeds]
        first = x == 0  # one legend entry per kind of mark
        ax.bar(
            x,
            figure(f"{key}.real_return"),
            yerr=figure(f"{key}.real_return_ci95"),
            capsize=4,
            color=[BLUE, ORANGE][x % 2],
            alpha=0.6,
            label="seed-averaged, world by world" if first else None,
        )
        ax.plot(
            [x + 0.2] * len(runs), runs, "ko", ms=5, label="one seed's agent" if first else None
        )
        for s, r in zip(cfg.untuned_seeds, runs):
            shipped = " (shipped)" if s == cfg.seed else ""
            ax.annotate(
                f"seed {s}{shipped}",
                (x + 0.2, r),
                xytext=(6, -3),
                textcoords="offset points",
                fontsize=8,
            )
        ax.plot(
            [x - 0.4, x + 0.4],
            [figure(f"{key}.real_trained")] * 2,
            color=GREEN,
            ls="--",
            lw=2,
            label="its real-trained control" if first else None,
        )
    ax.set_xticks(range(len(recipes)), [f"trained in the\n{who}" for who in recipes])
    ax.set_ylabel("flowers picked")
    ax.set_title(f"{len(cfg.untuned_seeds)} seeds each, {cfg.untuned_episodes} untuned test worlds")
    ax.legend(fontsize=8, loc="lower right")
    plt.tight_layout()
    plt.show()
    return by_seed
