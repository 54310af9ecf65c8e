"""Two Stage III engines side by side, from their stored figures, with the verdict computed.

A sentence such as "the diffusion engine follows the actions better than the masked one" is true
only of the weights shipped today; a retrain may turn it around, and typed prose would not notice.
So the course never types a verdict: it reads both engines' figures (``stage3.<engine>.<figure>``,
from ``data/bench.json`` and the checkpoint manifest, through :mod:`hitchhiker.measured`) and
chooses the words by comparing them. Each score knows which way is better (accuracy up, error
down), and two figures are compared as they are shown (rounded to the shown digits), so a table
never calls 0.993 "better" than 0.993. Where the benchmark stored a figure's 95% interval
(``..._ci95``, a half-width over held-out episodes), a difference no larger than the two
half-widths combined, sqrt(h_a^2 + h_b^2), is no difference: the engines tie on that score.

    table({"diffusion": "diffusion", "masked": "dynamics"})   # a markdown template for say()
    word("diffusion", "dynamics", "fps_b1", "faster", "slower")  # "slower" (today)

Figure names: E engines (zoo names: "diffusion", "diffusion_noaug", "dynamics", ...), each score
read as ``stage3.<engine>.<key>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hitchhiker.interactive.benchmark import STAGE3_ENGINES
from hitchhiker.measured import figure, stored_figures


@dataclass(frozen=True)
class Score:
    """One stored figure of an engine, and which way is better."""

    key: str
    """The figure's name after ``stage3.<engine>.``, e.g. "action_following_16"."""
    what: str
    """A few words for the table."""
    higher_is_better: bool = True
    fmt: str = ".3f"
    """How it is shown (and rounded before two engines are compared)."""


QUALITY = (
    Score("teacher_forced_tile_accuracy", "next-frame tile accuracy from the real past", fmt=".4f"),
    Score("action_following_16", "action following over 16 free steps"),
    Score("seen_land_accuracy_32", "land seen and kept right over 32 free steps"),
    Score("delta_psnr_16", "controllability ΔPSNR, dB (recorded minus random actions)", fmt=".2f"),
    Score("fps_b1", "frames per second, batch 1", fmt=".0f"),
)
"""What the engines are compared on in notebook 05's scores (the README's Stage III rows)."""

SPACE = (
    Score("new_land_validity_32", "invented land drawn as real tiles (reader validity)"),
    QUALITY[2],
    Score("tile_error_h8", "tile error at step 8", higher_is_better=False),
    Score("tile_error_h64", "tile error at step 64", higher_is_better=False),
    QUALITY[1],
)
"""Notebook 05's "pixels or latents" comparison: does the engine still draw a world?"""

HORIZONS = (1, 8, 16, 32, 64)
"""The rollout steps at which the benchmark stores the tile error."""

DRIFT = tuple(
    Score(f"tile_error_h{h}", f"tile error at step {h}", higher_is_better=False) for h in HORIZONS
) + (QUALITY[1], QUALITY[2])
"""The drift experiment's scores: error versus horizon, then what free rollouts keep."""


def name(engine: str, key: str) -> str:
    """The dotted figure name of ``engine``'s ``key``: "stage3.<engine>.<key>"."""
    return f"stage3.{engine}.{key}"


def shown(engine: str, score: Score) -> float:
    """``engine``'s stored figure, rounded as it is shown."""
    return float(format(figure(name(engine, score.key)), score.fmt))


def half_width(engine: str, score: Score) -> float:
    """The half-width of ``engine``'s 95% interval on ``score`` (0 where none was stored)."""
    value = stored_figures().get(name(engine, score.key) + "_ci95", 0.0)
    return 0.0 if value != value else float(value)  # NaN: no interval


def score(key: str) -> Score:
    """The :class:`Score` called ``key`` (from :data:`QUALITY` or :data:`DRIFT`)."""
    for s in QUALITY + DRIFT + SPACE:
        if s.key == key:
            return s
    known = ", ".join(dict.fromkeys(s.key for s in QUALITY + DRIFT + SPACE))
    raise KeyError(f"no score {key!r}; known: {known}")


def ahead(a: str, b: str, s: Score | str) -> int:
    """+1 when engine ``a`` beats engine ``b`` on score ``s`` (as shown), -1 when it trails, 0 tie
    (equal as shown, or apart by no more than their 95% intervals allow)."""
    s = score(s) if isinstance(s, str) else s
    va, vb = shown(a, s), shown(b, s)
    if abs(va - vb) <= (half_width(a, s) ** 2 + half_width(b, s) ** 2) ** 0.5:
        return 0
    sign = (va > vb) - (va < vb)
    return sign if s.higher_is_better else -sign


def word(a: str, b: str, s: Score | str, better="better", worse="worse", same="as good") -> str:
    """The word that is true of engine ``a`` against ``b`` on score ``s``: ``better``, ``worse``
    or ``same``, chosen by comparing the stored figures."""
    return {1: better, -1: worse, 0: same}[ahead(a, b, s)]


def tally(a: str, b: str, scores=QUALITY) -> tuple[int, int]:
    """(scores on which ``a`` is ahead of ``b``, scores on which it trails)."""
    signs = [ahead(a, b, s) for s in scores]
    return signs.count(1), signs.count(-1)


def table(engines: dict[str, str], scores=QUALITY) -> str:
    """A markdown table of ``scores`` (rows) by engine (columns: label -> zoo name), and which
    engine is ahead on each row. The numbers are placeholders (``{stage3.<engine>.<key>:fmt}``)
    that :func:`hitchhiker.measured.say` fills from the stored figures; the "ahead" column is
    computed here from the same figures."""
    labels = list(engines)
    lines = [
        "| | " + " | ".join(labels) + " | ahead |",
        "| --- |" + " ---: |" * len(labels) + " --- |",
    ]
    for s in scores:
        cells = [
            f"{{{name(engines[lb], s.key)}:{s.fmt}}}"
            + (
                f" ± {{{name(engines[lb], s.key)}_ci95:{s.fmt}}}"
                if half_width(engines[lb], s)
                else ""
            )
            for lb in labels
        ]
        # the leaders: every engine no other engine beats outside the intervals
        leaders = [
            lb for lb in labels if all(ahead(engines[lb], engines[o], s) >= 0 for o in labels)
        ]
        lead = "tie" if len(leaders) == len(labels) else ", ".join(leaders) or "no clear lead"
        lines.append(f"| {s.what} | " + " | ".join(cells) + f" | {lead} |")
    return "\n".join(lines)


def fps_target(engine: str) -> float | None:
    """The benchmark's frames-per-second target for ``engine`` (e.g. 10 for ">= 10"), if any."""
    goal = STAGE3_ENGINES.get(engine, ("", "", False))[1]
    return float(goal.split()[-1]) if goal else None
