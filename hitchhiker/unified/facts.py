"""Facts, checked exactly: score a generated view against its caption, and a caption against a view.

A caption of the world (:mod:`hitchhiker.world.captions`) is a rendering of a :class:`Facts`; we
split it into *atomic facts*, each true or false on its own:

    ("facing", north)            where the explorer faces                     1 fact
    ("standing_on", grass)       the tile under the explorer                  1 fact
    ("region", "north-west", water)  the dominant kind of each compass region     8 facts
    ("sheep", "east")            a region that holds a sheep                  0-8 facts

With A(.) the set of atomic facts, the figures are shares of sets:

    text-to-image:  accuracy  = |A(asked) & A(read(view))| / |A(asked)|
                    (the generated view is read back with the ground-truth tile reader)
    image-to-text:  precision = |A(said) & A(true)| / |A(said)|     (is what it says true?)
                    recall    = |A(said) & A(true)| / |A(true)|     (does it say what is there?)

A generated caption that does not parse states no facts: precision and recall 0 for it, and the
parse rate is reported beside them. Everything here is a pure function of its inputs.

Shapes: B batch (frames, captions), R x C view tiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hitchhiker.world.captions import REGIONS, Facts, parse_caption, view_facts
from hitchhiker.world.reader import read_tiles

Fact = tuple[str, ...]


def atomic_facts(facts: Facts) -> frozenset[Fact]:
    """The atomic facts of a :class:`Facts`: facing, standing on, 8 region kinds, sheep regions."""
    if not isinstance(facts, Facts):
        raise TypeError(f"expected a Facts; got {type(facts).__name__}")
    out = {("facing", facts.facing), ("standing_on", facts.standing_on)}
    out |= {("region", r, facts.regions[r]) for r in REGIONS}
    out |= {("sheep", r) for r in facts.animals}
    return frozenset(out)


def fact_share(asked: Facts, got: Facts) -> float:
    """Share of the atomic facts of ``asked`` that also hold in ``got``."""
    want = atomic_facts(asked)
    return len(want & atomic_facts(got)) / len(want)


def facts_of_frames(frames: np.ndarray) -> list[Facts]:
    """Read frames (B, H, W, 3) uint8 with the ground-truth reader and state their facts."""
    reading = read_tiles(np.asarray(frames))
    return [view_facts(k, h, a) for k, h, a in zip(reading.kinds, reading.heading, reading.animals)]


def t2i_scores(asked: Sequence[Facts], frames: np.ndarray) -> np.ndarray:
    """(B,) share of each caption's requested facts that hold in its generated frame."""
    if len(asked) != len(frames):
        raise ValueError(f"{len(asked)} requested captions but {len(frames)} frames")
    return np.array([fact_share(a, g) for a, g in zip(asked, facts_of_frames(frames))])


def caption_scores(caption: str, truth: Facts) -> tuple[float, float, bool]:
    """(precision, recall, parsed) of one generated caption against the facts of its view."""
    try:
        said = atomic_facts(parse_caption(caption))
    except ValueError:
        return 0.0, 0.0, False
    true = atomic_facts(truth)
    hits = len(said & true)
    return hits / len(said), hits / len(true), True


def i2t_scores(captions: Sequence[str], truths: Sequence[Facts]) -> dict[str, float]:
    """Mean precision, recall and parse rate of generated captions against their views' facts."""
    if len(captions) != len(truths) or not len(captions):
        raise ValueError(
            f"need as many captions as views, at least one; got {len(captions)} and {len(truths)}"
        )
    scores = np.array([caption_scores(c, t) for c, t in zip(captions, truths)], dtype=float)
    return {
        "precision": float(scores[:, 0].mean()),
        "recall": float(scores[:, 1].mean()),
        "parse_rate": float(scores[:, 2].mean()),
    }


def region_accuracy(captions: Sequence[str], truths: Sequence[Facts]) -> np.ndarray:
    """(8,) share of captions that give each region (REGIONS order) its true dominant kind; a
    caption that does not parse counts wrong on every region."""
    if len(captions) != len(truths) or not len(captions):
        raise ValueError(f"need as many captions as views; got {len(captions)} and {len(truths)}")
    right = np.zeros((len(captions), len(REGIONS)))
    for row, (c, t) in enumerate(zip(captions, truths)):
        try:
            said = parse_caption(c)
        except ValueError:
            continue
        right[row] = [said.regions[r] == t.regions[r] for r in REGIONS]
    return right.mean(0)


def fact_table(asked: Facts, got: Facts | None) -> list[tuple[str, bool]]:
    """One line per atomic fact of ``asked`` ("region north-west: water") and whether it holds in
    ``got`` (``None``: nothing could be read, every fact fails). For the notebook's tick lists."""
    have = atomic_facts(got) if got is not None else frozenset()
    return [(fact_label(f), f in have) for f in sorted(atomic_facts(asked), key=_order)]


def fact_label(f: Fact) -> str:
    """Plain words for one atomic fact: "facing north", "north-west: water", "sheep to the east"."""
    if f[0] == "facing":
        return f"facing {f[1]}"
    if f[0] == "standing_on":
        return f"standing on {f[1]}"
    if f[0] == "region":
        return f"{f[1]}: {f[2]}"
    return f"sheep to the {f[1]}"


def _order(f: Fact) -> tuple:
    kinds = ("facing", "standing_on", "region", "sheep")
    region = REGIONS.index(f[1]) if f[0] in ("region", "sheep") else -1
    return kinds.index(f[0]), region
