"""Stage III's rows of the course benchmark (:mod:`hitchhiker.bench`): latent actions, and every
engine scored against the simulator (:func:`hitchhiker.interactive.rollout.evaluate_engine`) and
on the moves the simulator blocks (:mod:`hitchhiker.interactive.walls`)."""

from __future__ import annotations

from hitchhiker import zoo
from hitchhiker.bench import Figure, figures
from hitchhiker.interactive import diffusion_recipe, masked_dynamics_recipe
from hitchhiker.interactive.walls import blocked_in_play, evaluate_walls
from hitchhiker.world.dataset import LEARNING_WORLD, record


def _engine_rows(name: str, label: str, fps_goal: str, main: bool) -> tuple[Figure, ...]:
    g = (lambda goal: goal) if main else (lambda goal: "")
    return (
        Figure(
            f"stage3.{name}.teacher_forced_tile_accuracy",
            f"{label}: next-frame tile accuracy, teacher-forced, on land the inputs showed",
            "",
            g(">= 0.98"),
        ),
        Figure(
            f"stage3.{name}.teacher_forced_tile_accuracy_all",
            f"{label}: the same on every tile, incl. the row a move reveals",
        ),
        Figure(
            f"stage3.{name}.teacher_forced_validity",
            f"{label}: reader validity of those teacher-forced cells (drawn as real tiles)",
        ),
        Figure(
            f"stage3.{name}.action_following_16",
            f"{label}: action following over 16-step rollouts",
            "",
            g(">= 0.95"),
        ),
        Figure(
            f"stage3.{name}.seen_land_accuracy_32",
            f"{label}: 32-step rollouts, tile accuracy on land shown and kept in the window",
            "",
            g(">= 0.90 (better engine)"),
        ),
        Figure(
            f"stage3.{name}.seen_land_accuracy_ever_32",
            f"{label}: same on land shown at any earlier time (needs memory: Stage IV)",
        ),
        Figure(
            f"stage3.{name}.new_land_validity_32",
            f"{label}: reader validity of land never shown (invented)",
            "",
            g(">= 0.90"),
        ),
        *(
            Figure(
                f"stage3.{name}.tile_error_h{h}",
                f"{label}: tile error at step {h}",
                "",
                g("no worse than the masked engine's") if h == 64 and name != "dynamics" else "",
            )
            for h in (1, 8, 16, 32, 64)
        ),
        Figure(
            f"stage3.{name}.delta_psnr_16",
            f"{label}: controllability ΔPSNR (recorded minus random actions)",
            "dB",
            g("> 0"),
        ),
        Figure(f"stage3.{name}.fps_b1", f"{label}: frames per second, batch 1", "fps", fps_goal),
        Figure(
            f"stage3.{name}.blocked_moves_drawn_blocked",
            f"{label}: moves the world blocks (water, rock, houses, stuck sheep), drawn blocked",
        ),
        Figure(
            f"stage3.{name}.free_moves_drawn_moved",
            f"{label}: free moves from the same real moments, drawn scrolled the right way",
        ),
        Figure(
            f"stage3.{name}.training_blocked_share",
            f"{label}: share of the moves in its training play that the world blocked",
        ),
    )


STAGE3_ENGINES = {
    "dynamics": ("masked dynamics, true actions", ">= 25", True),
    "dynamics_noaug": ("masked dynamics, no context noise", "", False),
    "dynamics_latent": ("masked dynamics, latent actions", "", False),
    "dynamics_walls": ("masked dynamics, trained on play that bumps into walls", "", False),
    "diffusion": ("diffusion engine (tokenizer latents), 2 steps", ">= 10", True),
    "diffusion_noaug": ("diffusion engine, no context noise", "", False),
    "diffusion_pixels": ("diffusion engine in pixels (DIAMOND's space)", "", False),
}


UNTUNED_WALLS = ("dynamics", "dynamics_walls")
"""The engines whose wall probes are also run on val worlds: the bumping walk's rate and
``dynamics_walls``' training length were chosen looking at the test probes."""


@figures(
    "stage3",
    Figure("stage3.lam.nmi", "latent actions: NMI with the true actions", "", ">= 0.8"),
    Figure("stage3.lam.purity", "latent actions: purity (code -> majority action)"),
    Figure("stage3.lam.nmi_effective", "the same on transitions that changed the frame"),
    Figure(
        "stage3.lam_leaky.nmi",
        "a leaky (too wide) bottleneck: NMI with the true actions",
        "",
        "low",
    ),
    Figure("stage3.lam_leaky.next_frame_loss", "its next-frame loss (the leak's gain)"),
    Figure("stage3.lam.next_frame_loss", "next-frame loss of the narrow bottleneck"),
    *(
        r
        for name, (label, fps, main) in STAGE3_ENGINES.items()
        for r in _engine_rows(name, label, fps, main)
    ),
    *(
        Figure(
            f"stage3.{name}.untuned_{figure}",
            f"{STAGE3_ENGINES[name][0]}: {what}, on val worlds (not looked at while choosing the "
            "bumping walk and the training length)",
        )
        for name in UNTUNED_WALLS
        for figure, what in (
            ("blocked_moves_drawn_blocked", "blocked moves drawn blocked"),
            ("free_moves_drawn_moved", "free moves drawn right"),
        )
    ),
)
def stage3_figures(preset: str) -> dict[str, float]:
    """Evaluate the shipped Stage III models (fresh smoke-sized ones under the smoke preset)."""
    out: dict[str, float] = {}
    for name in ("lam", "lam_leaky", *STAGE3_ENGINES):
        model, cfg = zoo.load_or_fit(name, preset)
        out.update(zoo.evaluate(name, model, cfg))
    return out | wall_rows(preset)


def stage3_engine(name: str, model, cfg):
    """The engine that plays Stage III model ``name`` at its recipe's decoding settings."""
    deps = zoo.dependencies(name, cfg)
    if name.startswith("diffusion"):
        return diffusion_recipe.engine_of(model, deps, cfg.decode_steps, cfg.train.seed)
    return masked_dynamics_recipe.engine_of(model, cfg, deps)


def wall_rows(preset: str, names=tuple(STAGE3_ENGINES)) -> dict[str, float]:
    """Every engine on the same wall probes (:mod:`.walls`): 64 test episodes, a probed moment
    every 4 steps (8 episodes under the smoke preset), and as many val episodes for
    :data:`UNTUNED_WALLS`; and how often the world blocked a move in the play it was trained on."""
    episodes = 8 if preset == "smoke" else 64
    out: dict[str, float] = {}
    for name in names:
        model, cfg = zoo.load_or_fit(name, preset)
        engine = stage3_engine(name, model, cfg)
        out |= evaluate_walls(engine, f"stage3.{name}", cfg.train.seed, episodes=episodes)
        if name in UNTUNED_WALLS:
            val = evaluate_walls(engine, "v", cfg.train.seed, split="val", episodes=episodes)
            for key in ("blocked_moves_drawn_blocked", "free_moves_drawn_moved"):
                for end in ("", "_ci95"):
                    out[f"stage3.{name}.untuned_{key}{end}"] = val[f"v.{key}{end}"]
        data = cfg.data
        rec = record(
            "train",
            data.episodes,
            data.episode_steps,
            data.policy,
            world=LEARNING_WORLD,
            progress=False,
        )
        moves, blocked = blocked_in_play(rec.actions, rec.positions)
        out[f"stage3.{name}.training_blocked_share"] = blocked / moves
    return out
