"""Stage II's rows of the course benchmark (:mod:`hitchhiker.bench`): the masked unified model and
its autoregressive baseline, measured the same way (:func:`hitchhiker.unified.scoring.figures`)."""

from __future__ import annotations

from hitchhiker.bench import Figure, figures


def _unified_rows(name: str, label: str, goals: bool) -> tuple[Figure, ...]:
    g = (lambda goal: goal) if goals else (lambda goal: "")
    return (
        Figure(
            f"stage2.{name}.t2i_fact_accuracy",
            f"{label} text-to-image: requested facts that hold in the view",
            "",
            g(">= 0.80"),
        ),
        Figure(
            f"stage2.{name}.i2t_precision",
            f"{label} image-to-text: stated facts true of the view",
            "",
            g(">= 0.90"),
        ),
        Figure(f"stage2.{name}.i2t_recall", f"{label} image-to-text: view facts stated"),
        Figure(f"stage2.{name}.i2t_parse_rate", f"{label} image-to-text: captions that parse"),
        Figure(
            f"stage2.{name}.ms_per_t2i_sample_b1",
            f"{label} text-to-image time per sample, batch 1",
            "ms",
        ),
        Figure(
            f"stage2.{name}.ms_per_t2i_sample_b16",
            f"{label} text-to-image time per sample, batch 16",
            "ms",
        ),
        Figure(
            f"stage2.{name}.ms_per_i2t_caption_b16",
            f"{label} image-to-text time per caption, batch 16",
            "ms",
        ),
    )


@figures(
    "stage2",
    *_unified_rows("unified", "masked:", True),
    *_unified_rows("unified_ar", "AR:", False),
)
def stage2_figures(preset: str) -> dict[str, float]:
    """Evaluate the shipped Stage II models (fresh smoke-sized ones under the smoke preset)."""
    from hitchhiker import zoo

    out: dict[str, float] = {}
    for name in ("unified", "unified_ar"):
        model, cfg = zoo.load_or_fit(name, preset)
        out.update(zoo.recipe(name).evaluate(model, cfg))
    return out
