"""Stage II's rows of the course benchmark (:mod:`hitchhiker.bench`): the masked unified model and
its autoregressive baseline, measured the same way (:func:`hitchhiker.unified.scoring.figures`)."""

from __future__ import annotations

from hitchhiker import zoo
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


MODELS = {"unified": "masked", "unified_ar": "autoregressive"}
"""The Stage II models the benchmark measures (zoo names), with the labels notebook 03 races them by."""

ROWS = (*_unified_rows("unified", "masked:", True), *_unified_rows("unified_ar", "AR:", False))
"""Stage II's rows of the table."""

RACE_COLUMNS = {
    "t2i facts": "t2i_fact_accuracy",
    "i2t precision": "i2t_precision",
    "i2t recall": "i2t_recall",
    "i2t parse rate": "i2t_parse_rate",
    "ms/sample b1": "ms_per_t2i_sample_b1",
    "ms/sample b16": "ms_per_t2i_sample_b16",
    "ms/caption b16": "ms_per_i2t_caption_b16",
}
"""Short column label -> figure (after ``stage2.<model>.``), for notebook 03's race chart."""


def model_figures(name: str, model, cfg) -> dict[str, float]:
    """The benchmark's Stage II figures of one loaded model (``name`` a key of :data:`MODELS`): its
    recipe's evaluation, :func:`hitchhiker.unified.scoring.figures` on the held-out test pairs.
    :func:`stage2_figures` reports exactly this for the shipped models. Notebook 03 shows the
    stored result (``data/bench.json``) and draws with :func:`.scoring.samples`, the draws these
    figures average, so the two cannot measure differently."""
    if name not in MODELS:
        raise ValueError(f"unknown Stage II model {name!r}; expected one of {', '.join(MODELS)}")
    return zoo.evaluate(name, model, cfg)


def race_rows(figures: dict[str, float]) -> dict[str, dict[str, float]]:
    """{model label: {column: value}} of :data:`RACE_COLUMNS` for each model of :data:`MODELS`
    whose figures are in ``figures`` (what :func:`model_figures` returned)."""
    rows = {}
    for name, label in MODELS.items():
        p = f"stage2.{name}."
        if any(k.startswith(p) for k in figures):
            rows[label] = {col: float(figures[p + fig]) for col, fig in RACE_COLUMNS.items()}
    return rows


@figures("stage2", *ROWS)
def stage2_figures(preset: str) -> dict[str, float]:
    """Evaluate the shipped Stage II models (fresh smoke-sized ones under the smoke preset)."""
    out: dict[str, float] = {}
    for name in MODELS:
        model, cfg = zoo.load_or_fit(name, preset)
        out.update(model_figures(name, model, cfg))
    return out
