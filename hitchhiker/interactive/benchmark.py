"""Stage III's rows of the course benchmark (:mod:`hitchhiker.bench`): latent actions, and every
engine scored against the simulator (:func:`hitchhiker.interactive.rollout.evaluate_engine`)."""

from __future__ import annotations

from hitchhiker import zoo
from hitchhiker.bench import Figure, figures


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
    )


STAGE3_ENGINES = {
    "dynamics": ("masked dynamics, true actions", ">= 25", True),
    "dynamics_noaug": ("masked dynamics, no context noise", "", False),
    "dynamics_latent": ("masked dynamics, latent actions", "", False),
    "diffusion": ("diffusion engine (tokenizer latents), 2 steps", ">= 10", True),
    "diffusion_noaug": ("diffusion engine, no context noise", "", False),
    "diffusion_pixels": ("diffusion engine in pixels (DIAMOND's space)", "", False),
}


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
)
def stage3_figures(preset: str) -> dict[str, float]:
    """Evaluate the shipped Stage III models (fresh smoke-sized ones under the smoke preset)."""
    out: dict[str, float] = {}
    for name in ("lam", "lam_leaky", *STAGE3_ENGINES):
        model, cfg = zoo.load_or_fit(name, preset)
        out.update(zoo.evaluate(name, model, cfg))
    return out
