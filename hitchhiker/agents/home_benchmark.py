"""Go home's rows of the Stage V benchmark: is memory worth anything on the task?

"Go home" (:mod:`.tasks`) walks the explorer out of sight of the house it started beside, then
asks it back. A policy that sees only the current frame must search; one that remembers its walk
out can retrace it. Each row is a success rate on held-out test worlds (one episode each), with its
95% interval, and the pairs are compared world by world:

- scripted policies (the map-reading script, retracing the remembered walk, heading for the nearest
  door in view, random): what memory is worth when nothing is learned;
- planners through notebook 06's memory dreams (:mod:`.home_planner`): the whole walk remembered,
  a window of the last frames, or no dream at all;
- one network taught with and without memory (recipe "home", in the real world; recipes
  "home_dream" and "home_dream_walls", only inside a memory dream).

:mod:`hitchhiker.agents.benchmark` registers these rows beside the flower picker's.
"""

from __future__ import annotations

from hitchhiker import zoo
from hitchhiker.agents.home_planner import HomePlanner, planner_home_play
from hitchhiker.agents.judge import real_returns, test_seeds
from hitchhiker.agents.scripted import HomeScript, LookHome, RandomPolicy, RetraceHome
from hitchhiker.bench import Figure
from hitchhiker.interactive.walls import blocked_in_play
from hitchhiker.memory.memory_engine import MemoryEngine
from hitchhiker.memory.memory_recipe import walk_records
from hitchhiker.metrics import mean_interval
from hitchhiker.world.dataset import LEARNING_WORLD, record

HOME = {
    "scripted": "shortest path with the true map (privileged)",
    "retrace": "retrace the remembered walk out (memory, no map)",
    "look": "the door of the nearest house in view (no memory, no map)",
    "random": "random policy",
}
"""Go-home policies (hitchhiker.agents.scripted), all scripted: what memory is worth on the task."""


def _success_rows(prefix: str, labels: dict[str, str]) -> list[Figure]:
    """One go-home success-rate row per policy of ``labels``, named ``{prefix}.{policy}.success``."""
    return [
        Figure(f"{prefix}.{k}.success", f"go home, success rate: {v}") for k, v in labels.items()
    ]


def _home_rows() -> list[Figure]:
    return _success_rows("stage5.go_home", HOME) + [
        Figure("stage5.go_home.episodes", "go home: held-out worlds (one episode each)")
    ]


LEARNED_HOME = {
    "memory": "learned with memory (a GRU over the walk out and the way back)",
    "no_memory": "learned without memory (the current frame only)",
}
"""The go-home policies of recipe "home" (hitchhiker.agents.home_agent): one network, taught by the
map-reading script with DAgger, with and without memory."""


def _learned_home_rows() -> list[Figure]:
    return _success_rows("stage5.home", LEARNED_HOME) + [
        Figure(
            "stage5.home.memory_minus_no_memory",
            "go home, learned: with memory minus without, world by world",
        ),
        Figure("stage5.home.episodes", "go home, learned: held-out worlds (one episode each)"),
        Figure("stage5.home.train_minutes", "wall time to train both go-home agents", "min"),
    ]


DREAM_HOME = {
    "memory": "learned only in the memory dream, with memory (the GRU), real world",
    "no_memory": "learned only in the memory dream, without memory (the current frame), real world",
}
"""The go-home policies of recipe "home_dream" (hitchhiker.agents.home_dream): recipe "home"'s
pair, taught by DAgger inside notebook 06's memory engine by the dream's own teacher."""


DREAMS = {
    "home_dream": "the memory dream",
    "home_dream_walls": "the memory dream that draws walls",
}
"""The go-home recipes learned only in a dream, and the dream: notebook 06's memory, or the one
started from Stage III's engine that learned walls (Stage IV's ``memory_walls``)."""


def _dream_home_rows(name: str = "home_dream") -> list[Figure]:
    p, where = f"stage5.{name}", DREAMS[name]
    rows = [
        Figure(f"{p}.{k}.success", f"go home, success rate: {v.replace('the memory dream', where)}")
        for k, v in DREAM_HOME.items()
    ]
    for k in DREAM_HOME:
        who = f"go home, {where}, {k.replace('_', ' ')}"
        rows += [
            Figure(f"{p}.{k}.dream_success", f"{who}: success in the dream, same worlds"),
            Figure(f"{p}.{k}.dream_minus_real", f"{who}: dream success minus real"),
            Figure(
                f"{p}.{k}.way_back_moves",
                f"{who}: moves of its dreamed ways back, each also made in the real world",
            ),
            Figure(
                f"{p}.{k}.blocked_in_dream", f"{who}: share of those moves the dream drew blocked"
            ),
            Figure(f"{p}.{k}.blocked_in_world", f"{who}: share the real world blocks"),
        ]
    return rows + [
        Figure(
            f"{p}.memory_minus_no_memory",
            f"go home, learned in {where}: with memory minus without, world by world",
        ),
        Figure(
            f"{p}.memory_over_real_trained",
            f"go home with memory, learned in {where}: success / real-trained success (recipe "
            "home)",
        ),
        Figure(
            f"{p}.training_moves",
            f"moves in the recorded play {where} learned from (Stage III's and IV's walks)",
        ),
        Figure(f"{p}.training_blocked", "of those, moves the world blocked"),
        Figure(f"{p}.episodes", f"go home, learned in {where}: held-out worlds"),
        Figure(f"{p}.train_minutes", f"wall time to train both go-home agents in {where}", "min"),
    ]


def training_walls(preset: str, name: str = "home_dream") -> dict[str, float]:
    """Moves, and moves the world blocked, in the recorded play the dream of go-home recipe
    ``name`` learned from: the train walks of its memory model and of the Stage III dynamics model
    that memory started from, recorded as their recipes record them."""
    memory = zoo.config_for(name, preset).dream_memory
    _, mcfg = zoo.load_or_fit(memory, preset)
    base = zoo.dependencies(memory, mcfg)["dynamics"].shipped_config.data
    recs = walk_records(mcfg, "train", mcfg.data.episodes)  # no frames to encode: moves only
    recs.append(
        record("train", base.episodes, base.episode_steps, base.policy, world=LEARNING_WORLD)
    )
    counts = [blocked_in_play(r.actions, r.positions) for r in recs]
    return {
        f"stage5.{name}.training_moves": float(sum(m for m, _ in counts)),
        f"stage5.{name}.training_blocked": float(sum(b for _, b in counts)),
    }


def dream_home_figures(
    preset: str, real_trained: dict[str, float], name: str = "home_dream"
) -> dict[str, float]:
    """Go-home recipe ``name``'s figures (:func:`hitchhiker.zoo.evaluate`, on recipe "home"'s
    test worlds) and the memory policy's success over the real-trained one's (``real_trained``:
    recipe "home"'s figures)."""
    out = zoo.evaluate(name, *zoo.load_or_fit(name, preset))
    out.update(training_walls(preset, name))
    real = real_trained["stage5.home.memory.success"]
    if real > 0:  # undefined over a zero success (a smoke run)
        out[f"stage5.{name}.memory_over_real_trained"] = out[f"stage5.{name}.memory.success"] / real
    return out


def go_home_figures(episodes: int = 64) -> dict[str, float]:
    """Success rates (mean and 95% interval) of the go-home policies on held-out test worlds,
    walked ``GoHome``'s default 8 moves out, 24 moves to come back."""
    policies = {
        "scripted": HomeScript,
        "retrace": RetraceHome,
        "look": LookHome,
        "random": RandomPolicy,
    }
    seeds = test_seeds(episodes)
    out = {"stage5.go_home.episodes": float(episodes)}
    for k, cls in policies.items():
        success = real_returns("go_home", cls(), seeds)
        out[f"stage5.go_home.{k}.success"], out[f"stage5.go_home.{k}.success_ci95"] = mean_interval(
            success
        )
    return out


PLANNED_HOME = {
    "memory": "planner through the memory dream (the whole walk remembered, home the pose (0, 0))",
    "no_memory": "planner through the window dream (the last W frames: a door in view is the goal)",
    "blind": "planner without a dream (each plan dead-reckoned from the remembered pose)",
}
"""The go-home planners of :mod:`.home_planner`, through notebook 06's memory engine."""

PLANNER_DREAMS = {
    "memory": ("stage5.go_home.planner", tuple(PLANNED_HOME), "notebook 06's memory dream"),
    "memory_walls": (
        "stage5.go_home.planner_walls",
        ("memory", "no_memory"),  # blind plans without a dream: the same as above
        "the dream of the memory that learned walls",
    ),
}
"""Memory model -> (figure prefix, planners run through its dream, where they plan)."""


def _planned_home_rows(memory: str = "memory") -> list[Figure]:
    p, modes, where = PLANNER_DREAMS[memory]
    labels = {m: PLANNED_HOME[m].replace("the memory dream", where) for m in modes}
    rows = _success_rows(p, labels)
    for m in modes:
        rows.append(
            Figure(
                f"{p}.{m}.refused",
                f"go home, {m.replace('_', ' ')} planner ({where}): share of its real moves the "
                "world refused",
            )
        )
    return rows + [
        Figure(
            f"{p}.memory_minus_no_memory",
            f"go home, planners through {where}: whole walk minus window, world by world",
        ),
        Figure(f"{p}.episodes", f"go home, planners through {where}: held-out worlds"),
    ]


def go_home_planner_figures(
    preset: str, episodes: int = 32, memory: str = "memory"
) -> dict[str, float]:
    """Success rates of the go-home planners (:mod:`.home_planner`, its default search) on the
    first ``episodes`` test worlds of :func:`go_home_figures`, through the dream of the shipped
    memory model ``memory`` (a fresh smoke one under the smoke preset), and the share of each
    planner's real moves the world refused (a dream that draws no walls plans into them)."""
    p, modes, _ = PLANNER_DREAMS[memory]
    model, cfg = zoo.load_or_fit(memory, preset)
    engine = MemoryEngine(model, zoo.dependencies(memory, cfg)["tokenizer"], cfg=cfg)
    seeds = test_seeds(episodes)
    out, got = {f"{p}.episodes": float(episodes)}, {}
    for mode in modes:
        play = planner_home_play(HomePlanner(engine, mode), seeds)
        got[mode] = play.success
        out[f"{p}.{mode}.success"], out[f"{p}.{mode}.success_ci95"] = mean_interval(play.success)
        out[f"{p}.{mode}.refused"] = play.refused / max(1, play.moves)
    key = f"{p}.memory_minus_no_memory"
    out[key], out[f"{key}_ci95"] = mean_interval(got["memory"] - got["no_memory"])
    return out


def home_rows() -> list[Figure]:
    """Every go-home row, in the table's order: scripted, planned, learned, learned in a dream."""
    return [
        *_home_rows(),
        *(r for memory in PLANNER_DREAMS for r in _planned_home_rows(memory)),
        *_learned_home_rows(),
        *(r for name in DREAMS for r in _dream_home_rows(name)),
    ]


def home_figures(preset: str) -> dict[str, float]:
    """The figures of :func:`home_rows`: the scripted policies and the planners on held-out worlds,
    then the shipped go-home recipes (fresh smoke-sized ones under the smoke preset)."""
    smoke = preset == "smoke"
    out = go_home_figures(4 if smoke else 64)
    for memory in PLANNER_DREAMS:
        out.update(go_home_planner_figures(preset, 2 if smoke else 32, memory))
    out.update(zoo.evaluate("home", *zoo.load_or_fit("home", preset)))
    for name in DREAMS:
        out.update(dream_home_figures(preset, out, name))
    return out
