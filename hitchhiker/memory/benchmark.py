"""Stage IV's rows of the course benchmark (:mod:`hitchhiker.bench`): the retrieval memory and the
state-space memory (with its screen-aligned ablation) on held-out walks that leave a place and come
back, their controls and policies, the moves the world refuses (a memory started from the engine that
learned walls beside the shipped one), and what memory costs as the history grows (:mod:`.cost`). Every accuracy is a mean over walks with its 95% interval
(``..._ci95``, shown as ± in the table)."""

from __future__ import annotations

import torch

from hitchhiker import zoo
from hitchhiker.bench import Figure, figures
from hitchhiker.memory.cost import (
    HISTORIES,
    history_walk,
    retrieval_cost,
    state_cost,
    window_cost,
)
from hitchhiker.memory.memory_engine import MemoryEngine
from hitchhiker.memory.state_memory_engine import StateMemoryEngine

WINDOWS = (4, 16, 64)
"""Plain windows timed (frames); 128 and more would hold 8,192+ tokens per frame of play."""

CONDITIONS = {
    "true_pose": "retrieval memory, true pose",
    "estimated_pose": "retrieval memory, estimated pose",
    "no_memory": "no memory (the Stage III engine)",
}

SETS = {
    "seen": "all land seen on the way out",
    "beyond_window": "land that left the window",
    "memory_needing": "memory-needing tiles (beyond the window, not the walk's dominant kind)",
}


PERIODS = (16, 32, 64)
"""K: steps from leaving a place to standing on it again, as the shipped recipe evaluates them in
both conditions."""

WAY_BACK_PERIODS = (128, 256)
"""Longer K, condition (i) only (the recipe's ``way_back_periods``)."""

GOALS = {
    ("estimated_pose", 256, "way_back_memory_needing"): ">= 0.95",
    ("estimated_pose", 64, "revisit_seen_land"): ">= 0.90",
}

VARIANTS = {
    "oracle": "oracle memory (the real way back written, true pose): the read path's ceiling",
    "policy_recency": "the 2 newest frames retrieved (recency), estimated pose",
    "policy_random": "2 frames retrieved at random, estimated pose",
    "policy_novel_writes": "only novel views written, estimated pose",
    "policy_capacity8": "a budget of 8 frames, the least covering forgotten, estimated pose",
}
"""Controls and policies measured at the longest K of :data:`PERIODS`, condition (i)."""

UPDATE_LABELS = {
    "policy_no_update": "no update (nothing remembered is ever overwritten), estimated pose",
    "policy_update_all": "every cell a newer frame shows overwritten, estimated pose",
    "policy_window_late": "what changed overwritten only once it leaves the window (the window "
    "not read first), estimated pose",
}
"""The update rules measured beside the trained one (what changed is overwritten)."""

STATE_CONDITIONS = {
    "true_pose": "state-space memory (world-aligned grid), true pose",
    "estimated_pose": "state-space memory (world-aligned grid), estimated pose",
}
SCREEN_LABEL = "state-space memory, screen-aligned grid (ablation), estimated pose"
WINDOW_LABEL = "no memory, a plain window of 16 frames (Stage III's model fine-tuned to it)"


WALL_MEMORIES = {
    "memory": "retrieval memory (from Stage III's dynamics, loop and random walks)",
    "memory_walls": "retrieval memory from the engine that learned walls, loop and bumping walks",
}
"""The frame-bank memories probed on the moves the world refuses (Stage III's wall probes)."""

WALLS_K = PERIODS[-1]
"""The revisit period at which the walls memory's revisits are set beside the shipped one's."""


def _wall_rows() -> list[Figure]:
    rows = []
    for name, label in WALL_MEMORIES.items():
        rows += [
            Figure(f"stage4.{name}.blocked_moves_drawn_blocked",
                   f"{label}: moves the world blocks, drawn blocked (wall probes, 64 test episodes)"),
            Figure(f"stage4.{name}.free_moves_drawn_moved",
                   f"{label}: free moves drawn right (the same probes)"),
            Figure(f"stage4.{name}.training_blocked_share",
                   f"{label}: share of its training walks' moves the world blocked"),
        ]  # fmt: skip
    for cond in ("estimated_pose", "no_memory"):
        for s in ("seen", "memory_needing"):
            rows.append(
                Figure(
                    f"stage4.memory_walls.{cond}.k{WALLS_K}.way_back_{s}_accuracy",
                    f"walls memory, K = {WALLS_K}, (i): {CONDITIONS[cond]}, {SETS[s]}",
                )
            )
    return rows + [
        Figure(
            f"stage4.memory_walls.estimated_pose.k{WALLS_K}.revisit_seen_land_accuracy",
            f"walls memory, K = {WALLS_K}, (ii) whole walk imagined: estimated pose, land seen",
        ),
        Figure(
            f"stage4.memory_walls.estimated_pose.k{WAY_BACK_PERIODS[-1]}"
            ".way_back_memory_needing_accuracy",
            f"walls memory, K = {WAY_BACK_PERIODS[-1]}, (i): estimated pose, memory-needing tiles",
        ),
        Figure(
            f"stage4.memory_walls.estimated_pose.k{WALLS_K}_edits.way_back_edits_accuracy",
            f"walls memory, K = {WALLS_K}, walks that edit, (i): estimated pose, edits found",
        ),
    ]


def wall_figures(preset: str) -> dict[str, float]:
    """The frame-bank memories of :data:`WALL_MEMORIES` on Stage III's wall probes (a probe's four
    real frames are the window, the bank empty: what the fine-tuning kept of the wall rule), how
    often the world blocked a move of their training walks, and the walls memory's revisit figures
    (its recipe's evaluation, :func:`hitchhiker.zoo.evaluate`)."""
    from hitchhiker.interactive.walls import blocked_in_play, evaluate_walls
    from hitchhiker.memory.memory_recipe import walk_records

    episodes = 8 if preset == "smoke" else 64
    out: dict[str, float] = {}
    for name in WALL_MEMORIES:
        model, cfg = zoo.load_or_fit(name, preset)
        engine = MemoryEngine(model, zoo.dependencies(name, cfg)["tokenizer"], cfg=cfg)
        out |= evaluate_walls(engine, f"stage4.{name}", cfg.train.seed, episodes=episodes)
        counts = [
            blocked_in_play(r.actions, r.positions)
            for r in walk_records(cfg, "train", cfg.data.episodes)
        ]
        out[f"stage4.{name}.training_blocked_share"] = sum(b for _, b in counts) / sum(
            m for m, _ in counts
        )
        if name == "memory_walls":
            out |= zoo.evaluate(name, model, cfg)
    return out


def _window_rows() -> list[Figure]:
    """The longer plain window's rows (recipe "window16"): its cells "beyond the window" are those
    that left the 4-frame window, as in the memories' rows."""
    rows = []
    for k in PERIODS:
        for s in ("seen", "memory_needing"):
            rows.append(
                Figure(
                    f"stage4.window16.plain_window.k{k}.way_back_{s}_accuracy",
                    f"K = {k}, (i) real way out, way back imagined: {WINDOW_LABEL}, {SETS[s]}",
                )
            )
        rows.append(
            Figure(
                f"stage4.window16.plain_window.k{k}.revisit_seen_land_accuracy",
                f"K = {k}, (ii) whole walk imagined: {WINDOW_LABEL}, land seen",
            )
        )
    rows.append(
        Figure(
            f"stage4.window16.plain_window.k{PERIODS[-1]}_edits.way_back_edits_accuracy",
            f"K = {PERIODS[-1]}, walks that edit, (i): {WINDOW_LABEL}, the player's edits found "
            "on return",
        )
    )
    return rows


def _state_rows() -> list[Figure]:
    """The state-space memory's rows (recipe "state_memory") and its screen-aligned ablation's."""
    rows = []
    for k in PERIODS + WAY_BACK_PERIODS:
        for cond, label in STATE_CONDITIONS.items():
            for s in ("seen", "memory_needing"):
                goal = (
                    ">= 0.95" if (cond, k, s) == ("estimated_pose", 256, "memory_needing") else ""
                )
                rows.append(
                    Figure(
                        f"stage4.state_memory.{cond}.k{k}.way_back_{s}_accuracy",
                        f"K = {k}, (i) real way out, way back imagined: {label}, {SETS[s]}",
                        "",
                        goal,
                    )
                )
            if k in PERIODS:
                rows.append(
                    Figure(
                        f"stage4.state_memory.{cond}.k{k}.revisit_seen_land_accuracy",
                        f"K = {k}, (ii) whole walk imagined: {label}, land seen",
                    )
                )
    k = PERIODS[-1]
    rows.append(
        Figure(
            f"stage4.state_memory.estimated_pose.k{k}_edits.way_back_edits_accuracy",
            f"K = {k}, walks that edit, (i): {STATE_CONDITIONS['estimated_pose']}, the player's "
            "edits found on return",
        )
    )
    for s in ("seen", "memory_needing"):
        rows.append(
            Figure(
                f"stage4.state_memory_screen.estimated_pose.k{k}.way_back_{s}_accuracy",
                f"K = {k}, (i): {SCREEN_LABEL}, {SETS[s]}",
            )
        )
    rows.append(
        Figure(
            f"stage4.state_memory_screen.estimated_pose.k{k}.revisit_seen_land_accuracy",
            f"K = {k}, (ii) whole walk imagined: {SCREEN_LABEL}, land seen",
        )
    )
    return rows


def _cost_rows(kind: str, label: str, holds: str, ratio_goal: str) -> list[Figure]:
    """The rows :func:`history_cost_figures` fills for one memory."""
    rows = []
    for h in HISTORIES:
        rows += [
            Figure(f"stage4.cost.{kind}.ms_h{h}", f"{label}, {h} frames of history", "ms"),
            Figure(f"stage4.cost.{kind}.kb_h{h}", f"its {holds} at {h} frames of history", "kB"),
        ]
    longest, shortest = HISTORIES[-1], HISTORIES[0]
    return rows + [
        Figure(
            f"stage4.cost.{kind}.ms_ratio",
            f"{label}: ms per frame at {longest} frames of history / at {shortest}",
            "",
            ratio_goal,
        ),
        Figure(
            f"stage4.cost.{kind}.fps_b1",
            f"{label} on, {longest} frames of history: frames per second, batch 1",
            "fps",
            ">= 50",
        ),
    ]


def _rows() -> tuple[Figure, ...]:
    rows = []
    for k in PERIODS + WAY_BACK_PERIODS:
        rows.append(Figure(f"stage4.memory.k{k}.revisit_walks", f"K = {k}: held-out walks"))
        for cond, label in CONDITIONS.items():
            for s, what in SETS.items():
                rows.append(
                    Figure(
                        f"stage4.memory.{cond}.k{k}.way_back_{s}_accuracy",
                        f"K = {k}, (i) real way out, way back imagined: {label}, {what}",
                        "",
                        GOALS.get((cond, k, f"way_back_{s}"), ""),
                    )
                )
            if k in WAY_BACK_PERIODS:
                continue  # condition (i) only
            rows += [
                Figure(
                    f"stage4.memory.{cond}.k{k}.revisit_seen_land_accuracy",
                    f"K = {k}, (ii) whole walk imagined: {label}, land seen",
                    "",
                    GOALS.get((cond, k, "revisit_seen_land"), ""),
                ),
                Figure(
                    f"stage4.memory.{cond}.k{k}.revisit_tile_accuracy",
                    f"K = {k}, (ii) whole walk imagined: {label}, the view on return",
                ),
            ]
    k = PERIODS[-1]
    for cond, label in VARIANTS.items():
        for s in ("seen", "memory_needing"):
            rows.append(
                Figure(
                    f"stage4.memory.{cond}.k{k}.way_back_{s}_accuracy",
                    f"K = {k}, (i): {label}, {SETS[s]}",
                )
            )
    edits = f"k{PERIODS[-1]}_edits"
    for cond, label in UPDATE_LABELS.items():
        rows.append(
            Figure(
                f"stage4.memory.{cond}.{edits}.way_back_edits_accuracy",
                f"K = {PERIODS[-1]}, walks that edit, (i): {label}, the player's edits found on "
                "return",
            )
        )
    rows.append(
        Figure(
            f"stage4.memory.{edits}.revisit_walks", f"K = {PERIODS[-1]}: held-out walks that edit"
        )
    )
    for cond, label in CONDITIONS.items():
        rows += [
            Figure(
                f"stage4.memory.{cond}.{edits}.way_back_edits_accuracy",
                f"K = {PERIODS[-1]}, walks that edit, (i): {label}, the player's edits found on "
                "return",
                "",
                ">= 0.95" if cond == "estimated_pose" else "",
            ),
            Figure(
                f"stage4.memory.{cond}.{edits}.way_back_memory_needing_accuracy",
                f"K = {PERIODS[-1]}, walks that edit, (i): {label}, memory-needing tiles",
            ),
            Figure(
                f"stage4.memory.{cond}.{edits}.revisit_edits_accuracy",
                f"K = {PERIODS[-1]}, walks that edit, (ii): {label}, edits drawn and kept",
            ),
        ]
    rows += _wall_rows()
    rows += _state_rows()
    rows += _window_rows()
    rows += _cost_rows("retrieval", "retrieval memory", "bank", "")
    rows += _cost_rows("state", "state-space memory", "grid", "<= 1.25")
    for w in WINDOWS:
        rows.append(Figure(f"stage4.cost.window.ms_w{w}", f"plain window of {w} frames", "ms"))
    rows.append(
        Figure(
            "stage4.cost.window.ms_ratio",
            f"plain window: ms per frame at {WINDOWS[-1]} frames / at {WINDOWS[0]}",
        )
    )
    return tuple(rows)


def history_cost_figures(engine, measure, kind: str, frames: int = 8) -> dict[str, float]:
    """``stage4.cost.<kind>.*``: ms per frame and kB held by a memory ``engine`` at each history
    length (``measure``: :func:`~.cost.retrieval_cost` or :func:`~.cost.state_cost`), their ratio
    from the shortest to the longest, and frames per second at the longest."""
    out: dict[str, float] = {}
    walk, actions = history_walk(HISTORIES[-1])
    tokens = engine.encode(walk)
    for h in HISTORIES:
        c = measure(engine, tokens[:, :h], actions[:, : h - 1], frames)
        out[f"stage4.cost.{kind}.ms_h{h}"] = c["ms"]
        out[f"stage4.cost.{kind}.kb_h{h}"] = c["bytes"] / 1024
    ms = [out[f"stage4.cost.{kind}.ms_h{h}"] for h in HISTORIES]
    out[f"stage4.cost.{kind}.ms_ratio"] = ms[-1] / ms[0]
    out[f"stage4.cost.{kind}.fps_b1"] = 1000 / ms[-1]
    return out


def state_cost_figures(model, cfg, tokenizer, frames: int = 8) -> dict[str, float]:
    """ms per frame and kB held at each history length, state-space memory."""
    engine = StateMemoryEngine(model, tokenizer, cfg=cfg)
    return history_cost_figures(engine, state_cost, "state", frames)


def cost_figures(model, cfg, tokenizer, frames: int = 8) -> dict[str, float]:
    """ms per frame and kB held at each history length (retrieval memory) and window (plain)."""
    engine = MemoryEngine(model, tokenizer, cfg=cfg)
    out = history_cost_figures(engine, retrieval_cost, "retrieval", frames)
    for w in WINDOWS:
        out[f"stage4.cost.window.ms_w{w}"] = window_cost(model, tokenizer, cfg, w, frames)["ms"]
    out["stage4.cost.window.ms_ratio"] = (
        out[f"stage4.cost.window.ms_w{WINDOWS[-1]}"] / out[f"stage4.cost.window.ms_w{WINDOWS[0]}"]
    )
    return out


@figures("stage4", *_rows())
def stage4_figures(preset: str) -> dict[str, float]:
    """Evaluate the shipped memory model (a fresh smoke-sized one under the smoke preset)."""
    frames = 2 if preset == "smoke" else 8
    model, cfg = zoo.load_or_fit("memory", preset)
    out = zoo.evaluate("memory", model, cfg)
    tokenizer = zoo.dependencies("memory", cfg)["tokenizer"]
    with torch.inference_mode():
        out.update(cost_figures(model, cfg, tokenizer, frames))
    for name in ("state_memory", "state_memory_screen", "window16"):
        model, cfg = zoo.load_or_fit(name, preset)
        out.update(zoo.evaluate(name, model, cfg))
        if name == "state_memory":
            tokenizer = zoo.dependencies(name, cfg)["tokenizer"]
            with torch.inference_mode():
                out.update(state_cost_figures(model, cfg, tokenizer, frames))
    return out | wall_figures(preset)
