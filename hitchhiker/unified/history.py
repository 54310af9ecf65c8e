"""How the shipped Stage II models came to be: the runs before them, as a table with provenance.

The shipped models' own figures live beside their weights (``data/checkpoints/manifest.json``)
and in the benchmark (``data/bench.json``), and can be re-measured at any time. The runs that led
to them cannot: their checkpoints were not kept. What they measured is recorded here, once, each
figure with the commit that recorded it, so that notebook 03 can *plot* and *tabulate* the
history instead of typing its numbers into prose.

What the runs showed, in short (notebook 03, appendix):

* **data, not the recipe, held the autoregressive baseline back.** At 512 recorded episodes
  (each pair seen many times in 9000 steps) the causal model learned its captions early and then
  drew ever worse views: it learned to continue the training views token by token. The masked
  model, which sees each pair under a fresh random mask, kept improving (Prabhudesai et al., 2025,
  "Diffusion Beats Autoregressive in Data-Constrained Settings", arXiv:2507.15857). At 2048
  episodes the baseline stopped getting worse;
* **relative positions helped the masked model read.** Rotary position embedding on half of each
  head made "the region named four words on" one pattern wherever a sentence starts;
* **several fixes did not help** (training in the decoding state, weighting fact words, more
  image-to-text draws, a deeper model, other judges of candidate captions).

Every record is a :class:`Record`; :func:`find` and :func:`value` look them up, :func:`plot_data`
draws the data story and :func:`table` renders a topic as a Markdown table.

Figures (``Record.figure``):

    t2i_facts         share of the facts a caption asks for that hold in the view drawn from it
    i2t_precision     share of the facts a written caption states that are true of the view
    t2i_facts_train   t2i_facts on captions of *training* pairs
    train_loss        training loss at the end of the run
    kind_2, kind_3    share of hidden kind words read right, in the 2nd / 3rd kind sentence of a
                      true caption, every other word visible (:func:`.scoring.kind_reading`)
    region_reading    share of captions that give each of the 8 regions its true kind, regions in
                      the order a caption names them (:func:`.facts.region_accuracy`); a tuple
    region_mean       region_reading averaged over the regions
    parse_rate        share of written captions that parse (before the caption grammar)
    oracle_precision  precision if the best candidate caption were always kept
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt

FIGURES = {
    "t2i_facts": "text → image: requested facts that hold",
    "i2t_precision": "image → text: stated facts that are true",
    "t2i_facts_train": "text → image on training captions",
    "train_loss": "training loss at the end",
    "kind_2": "kind word of the 2nd kind sentence read right",
    "kind_3": "kind word of the 3rd kind sentence read right",
    "region_reading": "regions given their true kind, in caption order",
    "region_mean": "regions given their true kind, mean",
    "parse_rate": "captions that parse",
    "oracle_precision": "precision if the best candidate were always kept",
}
"""Short name of each recorded figure -> what it measures."""

TOPICS = {
    "training": "checkpoints along one run, 512 recorded episodes",
    "data": "four times the data: the same budget on 512 and on 2048 recorded episodes",
    "positions": "learned absolute positions, then rotary positions on half of each head",
    "decoding": "decoding choices on the val split (the shipped models)",
    "tried": "fixes measured that did not help",
    "regions": "region by region",
}
"""Topic of each group of records -> what the group compares."""


@dataclass(frozen=True)
class Record:
    """One recorded figure of one run."""

    topic: str
    """Which comparison it belongs to (a key of :data:`TOPICS`)."""
    model: str
    """"masked" (the unified model) or "autoregressive" (the baseline)."""
    figure: str
    """What was measured (a key of :data:`FIGURES`)."""
    value: float | tuple[float, ...]
    """The figure as recorded (a tuple for ``region_reading``)."""
    episodes: int
    """Recorded training episodes (32 views each)."""
    steps: int
    """Training steps of 64 sequences."""
    setting: str = ""
    """What sets this run or decoding apart ("" for the recipe of its time)."""
    split: str = "val"
    """Held-out split scored: "val" or "test" ("train" for training pairs)."""
    pairs: int | None = 128
    """Pairs scored (None: not recorded)."""
    source: str = ""
    """The commit that recorded the figure (``git show <source>``)."""


_M, _AR = "masked", "autoregressive"
_CURVE = "926a7d9"  # checkpoints of the 512-episode runs, scored on val (masked: 12 steps)
_DATA = "13567bd"  # 2048 episodes: both models retrained, re-tuned, re-measured
_ROPE = "6d237e9"  # rotary position embedding on half of each head
_PROBE = "4e5517c"  # scoring.kind_reading: reading apart from decoding
_STEPS = (1500, 3000, 4500, 6000, 7500, 9000)


def _curve(model: str, figure: str, values) -> list[Record]:
    """Checkpoints of one 512-episode run (None: that checkpoint was not scored)."""
    return [
        Record("training", model, figure, v, 512, s, source=_CURVE)
        for s, v in zip(_STEPS, values)
        if v is not None
    ]


# fmt: off
RECORDS: tuple[Record, ...] = (
    # --- one run, checkpoint by checkpoint (512 episodes; the masked model drawing in 12 steps)
    *_curve(_M, "i2t_precision", (0.707, 0.791, 0.832, 0.833, 0.863, 0.865)),
    *_curve(_M, "t2i_facts", (0.793, 0.861, 0.897, 0.927, 0.951, 0.958)),
    *_curve(_AR, "i2t_precision", (0.894, 0.905, None, 0.911, 0.916, 0.911)),
    *_curve(_AR, "t2i_facts", (0.840, 0.812, None, 0.751, 0.699, 0.683)),
    Record("training", _M, "train_loss", 1.03, 512, 9000, split="train", source=_CURVE),
    Record("training", _AR, "train_loss", 0.29, 512, 9000, split="train", source=_CURVE),
    Record("training", _M, "t2i_facts_train", 0.97, 512, 9000, split="train", source=_CURVE),
    Record("training", _AR, "t2i_facts_train", 0.69, 512, 9000, split="train", source=_CURVE),
    # --- the same budget on four times the data (each model with the decoding it ships with)
    Record("data", _M, "t2i_facts", 0.960, 512, 9000, source=_DATA),
    Record("data", _M, "t2i_facts", 0.987, 2048, 9000, source=_DATA),
    Record("data", _M, "i2t_precision", 0.865, 512, 9000, "one caption", source=_DATA),
    Record("data", _M, "i2t_precision", 0.879, 2048, 9000, "one caption", source=_DATA),
    # 6c30e7d had recorded 0.900 for this one, and 0.899 to 0.903 over four caption draws
    Record("data", _M, "i2t_precision", 0.903, 512, 9000, "best of 8", source=_DATA),
    Record("data", _M, "i2t_precision", 0.921, 2048, 9000, "best of 8", source=_DATA),
    Record("data", _AR, "t2i_facts", 0.683, 512, 9000, source=_DATA),
    Record("data", _AR, "t2i_facts", 0.958, 2048, 9000, source=_DATA),
    Record("data", _AR, "i2t_precision", 0.911, 512, 9000, source=_DATA),
    Record("data", _AR, "i2t_precision", 0.962, 2048, 9000, source=_DATA),
    # --- positions: absolute only, then rotary on half of each head
    Record("positions", _M, "kind_2", 0.80, 512, 3000, "absolute", pairs=None, source=_PROBE),
    Record("positions", _M, "kind_3", 0.54, 512, 3000, "absolute", pairs=None, source=_PROBE),
    Record("positions", _M, "kind_2", 0.90, 512, 3000, "rotary", pairs=None, source=_PROBE),
    Record("positions", _M, "kind_3", 0.65, 512, 3000, "rotary", pairs=None, source=_PROBE),
    Record("positions", _M, "kind_2", 0.94, 512, 9000, "rotary", pairs=256, source=_CURVE),
    Record("positions", _M, "kind_3", 0.90, 512, 9000, "rotary", pairs=256, source=_CURVE),
    Record("positions", _M, "kind_2", 0.99, 2048, 9000, "rotary", pairs=256, source=_DATA),
    Record("positions", _M, "kind_3", 0.94, 2048, 9000, "rotary", pairs=256, source=_DATA),
    Record("positions", _M, "i2t_precision", 0.755, 512, 3000, "absolute", "test", source=_ROPE),
    Record("positions", _M, "i2t_precision", 0.797, 512, 3000, "rotary", "test", source=_ROPE),
    Record("positions", _M, "t2i_facts", 0.801, 512, 3000, "absolute", "test", source=_ROPE),
    Record("positions", _M, "t2i_facts", 0.833, 512, 3000, "rotary", "test", source=_ROPE),
    Record("positions", _AR, "i2t_precision", 0.888, 512, 3000, "absolute", "test", source=_ROPE),
    Record("positions", _AR, "i2t_precision", 0.886, 512, 3000, "rotary", "test", source=_ROPE),
    Record("positions", _AR, "t2i_facts", 0.867, 512, 3000, "absolute", "test", source=_ROPE),
    Record("positions", _AR, "t2i_facts", 0.847, 512, 3000, "rotary", "test", source=_ROPE),
    # --- decoding choices of the shipped models (2048 episodes, 9000 steps)
    Record("decoding", _M, "t2i_facts", 0.987, 2048, 9000, "one view", source=_DATA),
    Record("decoding", _M, "t2i_facts", 0.948, 2048, 9000, "one view, no guidance", source=_DATA),
    Record("decoding", _M, "t2i_facts", 0.991, 2048, 9000, "best of 4 views", source=_DATA),
    Record("decoding", _M, "i2t_precision", 0.614, 2048, 9000, "all at once", source=_DATA),
    Record("decoding", _M, "i2t_precision", 0.498, 2048, 9000, "blocks of 8", source=_DATA),
    Record("decoding", _M, "i2t_precision", 0.852, 2048, 9000, "left to right", source=_DATA),
    Record("decoding", _M, "i2t_precision", 0.879, 2048, 9000, "grammar", source=_DATA),
    Record("decoding", _M, "i2t_precision", 0.921, 2048, 9000, "grammar, best of 8", source=_DATA),
    Record("decoding", _M, "i2t_precision", 0.870, 2048, 9000, "grammar", "test", source=_DATA),
    Record("decoding", _AR, "i2t_precision", 0.962, 2048, 9000, "one caption", source=_DATA),
    Record("decoding", _AR, "i2t_precision", 0.965, 2048, 9000, "best of 8", source=_DATA),
    # --- fixes that did not help (at most 512 episodes)
    Record("tried", _M, "parse_rate", 0.48, 256, 400, "no grammar, uniform draws", source="51be0bc"),
    Record("tried", _M, "parse_rate", 0.31, 256, 400, "no grammar, cosine + half suffix", source="51be0bc"),
    Record("tried", _M, "i2t_precision", 0.807, 512, 3000, "uniform draws", source="592fe80"),
    Record("tried", _M, "i2t_precision", 0.805, 512, 3000, "half suffix draws", source="592fe80"),
    Record("tried", _M, "t2i_facts", 0.842, 512, 3000, "uniform draws", source="592fe80"),
    Record("tried", _M, "t2i_facts", 0.829, 512, 3000, "half suffix draws", source="592fe80"),
    Record("tried", _M, "i2t_precision", 0.755, 512, 1000, "rotary, uniform draws", source=_ROPE),
    Record("tried", _M, "i2t_precision", 0.742, 512, 1000, "rotary, half suffix draws", source=_ROPE),
    Record("tried", _M, "i2t_precision", 0.758, 512, 1000, "rotary, more i2t draws", source=_ROPE),
    Record("tried", _M, "i2t_precision", 0.753, 512, 2000, "rotary, 8 blocks", source="d645fbf"),
    Record("tried", _M, "region_mean", 0.70, 512, 1000, "fact words weight 1", pairs=64, source="592fe80"),
    Record("tried", _M, "region_mean", 0.70, 512, 1000, "fact words weight 5", pairs=64, source="592fe80"),
    Record("tried", _M, "t2i_facts", 0.75, 512, 1000, "fact words weight 1", pairs=64, source="592fe80"),
    Record("tried", _M, "t2i_facts", 0.71, 512, 1000, "fact words weight 5", pairs=64, source="592fe80"),
    Record("tried", _M, "i2t_precision", 0.825, 512, 1000, "rotary, greedy", pairs=64, source=_ROPE),
    Record("tried", _M, "i2t_precision", 0.821, 512, 1000, "rotary, by view likelihood", pairs=64, source=_ROPE),
    Record("tried", _M, "i2t_precision", 0.752, 512, 1000, "rotary, greedy (2nd run)", pairs=64, source=_ROPE),
    Record("tried", _M, "i2t_precision", 0.743, 512, 1000, "rotary, by own likelihood", pairs=64, source=_ROPE),
    Record("tried", _M, "oracle_precision", 0.848, 512, 1000, "rotary, best of 9", pairs=64, source=_ROPE),
    Record("tried", _M, "i2t_precision", 0.865, 512, 9000, "one caption", source="77d36d5"),
    Record("tried", _M, "i2t_precision", 0.817, 512, 9000, "facts searched", source="77d36d5"),
    # --- region by region, val (the shipped models' reading on test is computed in notebook 03)
    Record("regions", _M, "region_reading", (0.98, 0.84, 0.77, 0.70, 0.73, 0.68, 0.70, 0.64),
           512, 3000, "absolute", pairs=None, source=_ROPE),
    Record("regions", _M, "region_reading", (0.98, 0.88, 0.84, 0.72, 0.74, 0.65, 0.74, 0.70),
           512, 3000, "rotary", pairs=None, source=_ROPE),
    Record("regions", _M, "region_reading", (0.95, 0.94, 0.92, 0.86, 0.84, 0.70, 0.84, 0.69),
           2048, 9000, "one caption", pairs=None, source=_DATA),
)
# fmt: on
"""Every recorded figure of the runs before the shipped models (see the module doc)."""


def find(**match) -> list[Record]:
    """The records whose fields equal every keyword, e.g. ``find(topic="data", model="masked")``."""
    bad = set(match) - set(Record.__dataclass_fields__)
    if bad:
        raise TypeError(f"Record has no field {', '.join(sorted(bad))}")
    return [r for r in RECORDS if all(getattr(r, k) == v for k, v in match.items())]


def value(**match) -> float:
    """The value of the one record matching every keyword (an error names the candidates)."""
    hits = find(**match)
    if len(hits) != 1:
        raise LookupError(f"{len(hits)} records match {match}: {hits[:4]}")
    return hits[0].value


def plot_data():
    """The data story: val figures of both models along one run on 512 recorded episodes, and
    where the same 9000 steps on 2048 episodes ended (each pair seen about four times less often)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    colors = {_M: "C0", _AR: "C1"}
    for ax, figure in zip(axes, ("t2i_facts", "i2t_precision")):
        for model, c in colors.items():
            run = find(topic="training", model=model, figure=figure)
            ax.plot(
                [r.steps for r in run],
                [r.value for r in run],
                "o-",
                c=c,
                label=f"{model}, 512 episodes",
            )
            more = find(topic="data", model=model, figure=figure, episodes=2048)
            more = [r for r in more if r.setting in ("", "one caption")]
            ax.plot(
                [r.steps for r in more],
                [r.value for r in more],
                "*",
                ms=14,
                c=c,
                label=f"{model}, 2048 episodes",
            )
        ax.set_title(FIGURES[figure], fontsize=10)
        ax.set_xlabel("training steps (of 64 sequences)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share (val split, 128 pairs)")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def table(topic: str) -> str:
    """The records of ``topic`` as a Markdown table (values as recorded, with their commit)."""
    if topic not in TOPICS:
        raise KeyError(f"unknown topic {topic!r}; topics: {', '.join(TOPICS)}")
    lines = [
        f"*{TOPICS[topic]}*",
        "",
        "| model | figure | setting | episodes | steps | split (pairs) | value | recorded in |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in find(topic=topic):
        v = (
            ", ".join(f"{x:.2f}" for x in r.value)
            if isinstance(r.value, tuple)
            else f"{r.value:.3g}"
        )
        lines.append(
            f"| {r.model} | {FIGURES[r.figure]} | {r.setting or '—'} | {r.episodes} | {r.steps} "
            f"| {r.split} ({r.pairs or '?'}) | {v} | `{r.source}` |"
        )
    return "\n".join(lines)


def show(topic: str):
    """Display :func:`table` as Markdown (plain text outside Jupyter)."""
    text = table(topic)
    try:
        from IPython.display import Markdown, display

        display(Markdown(text))
    except ImportError:  # pragma: no cover - IPython comes with the lab extras
        print(text)
    return text
