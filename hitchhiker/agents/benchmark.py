"""Stage V's rows of the course benchmark (:mod:`hitchhiker.bench`): the flower picker's real
returns on held-out worlds (mean and 95% interval over one episode per world) for every policy, the
dream returns of the learned agents beside them, the reward heads against the exact reward and
against the tile reader's on imagined frames, the dream's speed, the agent's training time and its
learning curve in the dream (real return on val worlds every 25 updates, to twice its budget); and
go home's success rates with and without memory: scripted policies, planners through the memory
dreams (the shipped memory's, and the one that learned walls), and one network learned both ways,
in the real world (recipe "home") and only in the dream (recipe "home_dream"); those go-home rows
and their figures live in :mod:`.home_benchmark`.

The figures are the shipped agents' (recipes "agent", "home" and "home_dream", re-measured by
:func:`hitchhiker.zoo.evaluate`); their training wall times are read from the manifest, measured when
the shipped files were trained."""

from __future__ import annotations

from hitchhiker import zoo
from hitchhiker.agents.agent_figures import (
    SEED_SETTINGS,
    curve_figures,
    loop_figures,
    seed_figures,
)
from hitchhiker.agents.agent_play import AgentPanel
from hitchhiker.agents.agent_recipe import Config as AgentConfig
from hitchhiker.agents.agent_recipe import engine_of
from hitchhiker.agents.capstone_walls import (
    REFUSED,
    capstone_dreams,
    capstone_wall_figures,
    refusal_figures,
)
from hitchhiker.agents.home_benchmark import DREAMS, home_figures, home_rows
from hitchhiker.agents.untuned_seeds import untuned_seed_figures
from hitchhiker.bench import Figure, figures

P = "stage5.agent"

POLICIES = {
    "random": "random policy (uniform actions)",
    "scripted": "scripted picker (reads the true map)",
    "real_trained": "actor-critic trained in the real world, as many real steps as the world model saw",
    "dream_trained": "actor-critic trained only in the dream",
    "planner": "random-shooting MPC through the dream (no policy trained), 32 worlds",
}


def _rows() -> tuple[Figure, ...]:
    rows = [
        Figure(f"{P}.{k}.real_return", f"flower picker, real return: {label}")
        for k, label in POLICIES.items()
    ]
    rows += [
        Figure(
            f"{P}.dream_over_real_trained",
            "real return of the dream-trained agent / of the real-trained one",
            "",
            ">= 0.8",
        ),
        Figure(
            f"{P}.dream_over_random", "real return of the dream-trained agent / random", "", ">= 3"
        ),
        Figure(f"{P}.planner_over_random", "real return of the planner / random (same 32 worlds)"),
    ]
    n, first = AgentConfig.untuned_episodes, AgentConfig.untuned_first  # the cpu preset's
    untuned = f"{n} test worlds nobody tuned on (test episodes {first}+)"
    rows += [
        Figure(f"{P}.untuned.{k}.real_return", f"{untuned}, real return: {POLICIES[k]}")
        for k in ("random", "real_trained", "dream_trained")
    ]
    rows += [
        Figure(
            f"{P}.untuned.dream_minus_real_trained",
            f"{untuned}: dream-trained minus real-trained, world by world",
        ),
        Figure(
            f"{P}.untuned.dream_over_real_trained",
            f"{untuned}: dream-trained / real-trained",
            "",
            ">= 0.8",
        ),
        Figure(f"{P}.untuned.dream_over_random", f"{untuned}: dream-trained / random", "", ">= 3"),
        Figure(
            f"{P}.real_steps", "real transitions the world model saw (and the real-trained agent)"
        ),
    ]
    for k in ("real_trained", "dream_trained"):
        rows += [
            Figure(f"{P}.{k}.dream_return", f"dream return: {POLICIES[k]}"),
            Figure(f"{P}.{k}.dream_minus_real", f"dream return minus real return: {POLICIES[k]}"),
        ]
    for t in (0.5, 1.0):
        rows += [
            Figure(
                f"{P}.dream_trained.t{t:g}.dream_return",
                f"dream-trained agent, dream return with the dream sampled at temperature {t:g}",
            ),
            Figure(
                f"{P}.dream_trained.t{t:g}.dream_minus_real",
                f"the same minus its real return (temperature {t:g})",
            ),
        ]
    for where, label in (
        ("real", "reward head against the exact reward, real test play"),
        ("dream", "reward head against the tile reader's reward, imagined frames"),
    ):
        rows += [
            Figure(f"{P}.head_{where}_agreement", f"{label}: agreement"),
            Figure(f"{P}.head_{where}_recall", f"{label}: recall of rewarded steps"),
            Figure(f"{P}.head_{where}_precision", f"{label}: precision of predicted rewards"),
            Figure(f"{P}.head_{where}_true_rewards", f"{label}: rewarded steps (truth)"),
            Figure(f"{P}.head_{where}_predicted_rewards", f"{label}: rewarded steps (head)"),
        ]
    rows += _curve_rows() + _seed_rows() + _capstone_rows() + _walls_agent_rows()
    rows += _untuned_seed_rows()
    rows.append(Figure(f"{P}.loop.seeds", "closed loop: repeats, each with its own seed"))
    rows.append(
        Figure(
            f"{P}.loop.picks", "closed loop: real picks of the shipped agent on the judged worlds"
        )
    )
    for r in range(3):
        when = (
            "the shipped agent and engine"
            if r == 0
            else f"after round {r} (own play, dynamics and heads refit, dream)"
        )
        rows += [
            Figure(f"{P}.loop.r{r}.real_return", f"closed loop, {when}: real return, seed mean"),
            Figure(f"{P}.loop.r{r}.dream_minus_real", f"closed loop, {when}: dream minus real"),
            Figure(
                f"{P}.loop.r{r}.picks_cleared",
                f"closed loop, {when}: real picks the dream clears too (flower to grass)",
            ),
        ]
        if r:
            rows += [
                Figure(
                    f"{P}.loop.r{r}.seed_min",
                    f"closed loop, {when}: real return of the lowest seed",
                ),
                Figure(
                    f"{P}.loop.r{r}.seed_max",
                    f"closed loop, {when}: real return of the highest seed",
                ),
            ]
    rows.append(
        Figure(
            f"{P}.loop.last_minus_shipped",
            "closed loop: last round minus the shipped agent, world by world (seed mean)",
        )
    )
    rows += [
        Figure(
            f"{P}.imagined_per_second_b64",
            "imagined transitions per second, batch 64 (masked dynamics + heads)",
            "/s",
            ">= 2000",
        ),
        Figure(
            f"{P}.train_minutes",
            "wall time to train the shipped agent (heads, dream, control)",
            "min",
        ),
        Figure(f"{P}.dream_train_minutes", "of which training in the dream", "min"),
    ]
    return tuple(rows)


def _capstone_rows() -> list[Figure]:
    """The capstone's four dreams at the walls the agent meets (:mod:`.capstone_walls`)."""
    c, worlds = f"{P}.capstone", f"{CAPSTONE_WORLDS} test worlds"
    rows = [
        Figure(
            f"{c}.blocked_moves", f"capstone: the agent's moves the real world refused, {worlds}"
        ),
        Figure(f"{c}.free_moves", "capstone: the agent's free moves, same worlds"),
        Figure(f"{c}.worlds", "capstone: held-out test worlds the agent played"),
        Figure(f"{c}.worlds_bumped", "capstone: worlds where the agent bumped at all"),
    ]
    for name, label in CAPSTONE_LABELS.items():
        rows += [
            Figure(
                f"{c}.{name}.blocked_drawn_blocked", f"capstone, {label}: refused moves drawn still"
            ),
            Figure(f"{c}.{name}.free_drawn_moved", f"capstone, {label}: free moves drawn moved"),
        ]
    return rows


CAPSTONE_WORLDS = 64
"""Held-out test worlds the capstone's dreams are measured on (2 in smoke)."""
CAPSTONE_LABELS = {
    "flower_dream": "the dream the agent trained in",
    "memory": "memory dream",
    "walls": "dream with walls (dynamics_walls)",
    "memory_walls": "memory dream with walls",
}


def capstone_figures(model, cfg, deps, worlds: int) -> dict[str, float]:
    """:func:`~.capstone_walls.capstone_wall_figures` of the agent on the first test worlds."""
    panel = AgentPanel(
        engine_of(cfg, deps),
        model.heads,
        model.policy,
        **capstone_dreams(deps["tokenizer"], cfg.tokenizer),
    )
    return capstone_wall_figures(panel, range(worlds), f"{P}.capstone")


WALLS_AGENT = {
    "dream_trained.real_return": "real return",
    "dream_trained.dream_return": "dream return",
    "dream_over_real_trained": "real return / the real-trained control's (same 64 worlds)",
    "untuned.dream_trained.real_return": "real return, 512 untuned test worlds",
    "untuned.dream_over_real_trained": "real return / the control's, 512 untuned test worlds",
    "untuned.minus_agent": "real return minus the flower agent's, 512 untuned worlds, paired",
    "train_minutes": "wall time to train it (heads, dream, control)",
}
"""Rows of the agent trained in the dream with walls (recipe variant ``agent_walls``), beside the
flower agent's; the rest of its figures stay in the json."""


def _walls_agent_rows() -> list[Figure]:
    """What walls cost each agent in the real world (:func:`~.capstone_walls.refusal_figures`),
    and the agent trained in the dream of ``dynamics_walls``."""
    labels = {
        "random": "random policy",
        "real_trained": "real-trained control",
        "dream_trained": "agent trained in the dream",
    }
    rows = []
    for name, who in (("agent", ""), ("agent_walls", " (the dream with walls)")):
        r = f"stage5.{name}.refusals"
        rows += [
            Figure(
                f"{r}.{p}.refused_share",
                f"{labels[p]}{who}: share of its real moves refused, 64 test worlds",
            )
            for p in (REFUSED if name == "agent" else ("dream_trained",))
        ]
        rows.append(
            Figure(
                f"{r}.dream_minus_real_trained",
                f"share refused{who}: dream-trained minus the control, world by world",
            )
        )
    for key, label in WALLS_AGENT.items():
        unit = "min" if key.endswith("minutes") else ""
        goal = ">= 0.8" if key.endswith("dream_over_real_trained") else ""
        rows.append(
            Figure(
                f"stage5.agent_walls.{key}", f"trained in the dream with walls: {label}", unit, goal
            )
        )
    return rows


def _untuned_seed_rows() -> list[Figure]:
    """Both recipes trained again per seed, judged on the untuned worlds (:mod:`.untuned_seeds`)."""
    worlds = f"{AgentConfig.untuned_episodes} untuned test worlds"
    rows = []
    for name, who in (("agent", "flower dream"), ("agent_walls", "dream with walls")):
        key, at = f"stage5.{name}.untuned_seeds", f"seed study, {who}"
        rows += [
            Figure(f"{key}.s{s}.real_return", f"{at}: real return of seed {s}'s agent, {worlds}")
            for s in AgentConfig.untuned_seeds
        ]
        rows += [
            Figure(f"{key}.real_return", f"{at}: real return, seed-averaged world by world"),
            Figure(f"{key}.seed_min", f"{at}: real return of the lowest seed"),
            Figure(f"{key}.seed_max", f"{at}: real return of the highest seed"),
            Figure(
                f"{key}.over_real_trained",
                f"{at}: seed-averaged real return / the shipped control's",
                goal=">= 0.8",
            ),
        ]
    rows.append(
        Figure(
            "stage5.agent_walls.untuned_seeds.minus_agent",
            "seed study: dream with walls minus flower dream, seed-averaged, world by world",
        )
    )
    return rows


def walls_agent_figures(walls, walls_cfg, tokenizer) -> dict[str, float]:
    """The agent trained in the dream with walls (``walls``, recipe ``agent_walls``): its own
    figures and what walls cost it. Its real return minus the flower agent's on the untuned
    worlds comes with the seed study, which judges both shipped agents there anyway."""
    out = zoo.evaluate("agent_walls", walls, walls_cfg)
    out.update(refusal_figures(walls, walls_cfg, tokenizer))
    return out


def _curve_rows() -> list[Figure]:
    """The learning curve in the dream (:func:`~.agent_figures.curve_figures`), at the cpu
    preset's snapshots."""
    cfg = AgentConfig
    val = f"{cfg.curve_worlds} val worlds"
    rows = [Figure(f"{P}.curve.real_trained", f"learning curve: real return of the control, {val}")]
    for n in range(cfg.curve_every, cfg.curve_updates + 1, cfg.curve_every):
        at = f"learning curve in the dream, after {n} updates"
        rows += [
            Figure(f"{P}.curve.u{n:03d}.real_return", f"{at}: real return, {val}"),
            Figure(f"{P}.curve.u{n:03d}.dream_return", f"{at}: dream return of its rollouts"),
            Figure(f"{P}.curve.u{n:03d}.entropy", f"{at}: policy entropy", "nats"),
            Figure(f"{P}.curve.u{n:03d}.value_loss", f"{at}: critic loss"),
        ]
    return rows


def _seed_rows() -> list[Figure]:
    """The seed study (:func:`~.agent_figures.seed_figures`), at the cpu preset's seeds and
    snapshots: real returns (the critic's loss, dream return and entropy stay in the json)."""
    cfg = AgentConfig
    val = f"{cfg.curve_worlds} val worlds"
    rows = [
        Figure(f"{P}.seeds.s{s}.real_trained", f"seed study, seed {s}: the control, {val}")
        for s in cfg.seed_study
    ]
    for setting in SEED_SETTINGS:
        critic = "the recipe's critic" if setting == "shipped" else "cleanrl's critic settings"
        for n in range(cfg.seed_study_every, cfg.curve_updates + 1, cfg.seed_study_every):
            at = f"seed study, {critic}, after {n} updates"
            rows.append(Figure(f"{P}.seeds.{setting}.u{n:03d}.mean", f"{at}: mean over seeds"))
            rows += [
                Figure(f"{P}.seeds.{setting}.s{s}.u{n:03d}.real_return", f"{at}, seed {s}: {val}")
                for s in cfg.seed_study
            ]
    return rows


@figures(
    "stage5",
    *_rows(),
    *home_rows(),
)
def stage5_figures(preset: str) -> dict[str, float]:
    """Evaluate the shipped agents (fresh smoke-sized ones under the smoke preset)."""
    model, cfg = zoo.load_or_fit("agent", preset)
    out = zoo.evaluate("agent", model, cfg)
    deps = zoo.dependencies("agent", cfg)  # the tokenizer and dynamics, loaded once for both
    out.update(loop_figures(model, cfg, deps))
    curve = curve_figures(model, cfg, deps)
    out.update(curve)
    out.update(seed_figures(model, cfg, deps, curve))
    out.update(capstone_figures(model, cfg, deps, 2 if preset == "smoke" else CAPSTONE_WORLDS))
    out.update(refusal_figures(model, cfg, deps["tokenizer"]))
    walls = zoo.load_or_fit("agent_walls", preset)
    out.update(walls_agent_figures(*walls, deps["tokenizer"]))
    out.update(untuned_seed_figures({"agent": (model, cfg), "agent_walls": walls}, preset))
    out.update(home_figures(preset))
    for name in ("agent", "agent_walls", "home", *DREAMS):
        if preset != "smoke" and zoo.path_of(name).is_file():
            # The manifest's, measured when the shipped file was trained (not stored_figures():
            # there the stored benchmark wins, and it holds the figures of the file shipped before).
            shipped = zoo.manifest_entry(name)["figures"]
            out.update({k: v for k, v in shipped.items() if k.endswith("train_minutes")})
    return out
