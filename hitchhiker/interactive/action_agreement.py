"""How well discovered codes agree with the true actions: the figures that score latent actions.

A latent action model (:mod:`.latent_action_model`) names each transition with a code it chose itself;
the simulator knows the true action. Codes and actions are two labellings of the same transitions,
so they are compared as clusterings (X code, Y true action, n(x, y) their contingency counts):

    NMI(X; Y)   = I(X; Y) / sqrt(H(X) H(Y))     1: a relabelling, ~0: independent
    purity      = 1/n sum_x max_y n(x, y)       each code read as its most frequent action
    consistency = 1/n sum_y max_x n(x, y)       each action read as its most frequent code

Purity alone rewards many codes (one per transition is perfectly pure); consistency catches that,
since a leaking bottleneck spreads one action over hundreds of codes. Everything here is a pure
function of label arrays, plus a heat map of the count table, plus two readings of a recording's
ground truth: which transitions showed on screen (:func:`effective_transitions`: the explorer moved,
turned, or changed a tile; a noop, a move into a wall or an interaction that changes nothing look
alike, and no model can tell them apart) and which cells of the next frame were out of view before
(:func:`revealed_cells`: the land a scroll reveals, unpredictable from frame t).

Shapes: n transitions, X codes, A true actions, E episodes, T steps, R x C view tiles.
"""

from __future__ import annotations

import numpy as np

from hitchhiker.world import ACTION_NAMES
from hitchhiker.world.dataset import Recording


def contingency(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Counts n(x, y) of two equally long label arrays (rows: x's values, columns: y's, sorted)."""
    x, y = np.asarray(x).reshape(-1), np.asarray(y).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"label arrays differ in length: {x.shape} vs {y.shape}")
    _, xi = np.unique(x, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    table = np.zeros((xi.max(initial=-1) + 1, yi.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(table, (xi, yi), 1)
    return table


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def nmi(x: np.ndarray, y: np.ndarray, average: str = "geometric") -> float:
    """Normalised mutual information I(X;Y) / sqrt(H(X) H(Y)) (``average="arithmetic"``: divide by
    (H(X) + H(Y)) / 2, scikit-learn's default). 1 when one labelling is a relabelling of the other,
    ~0 when independent; two constant labellings count as 1, one constant labelling as 0."""
    if average not in ("geometric", "arithmetic"):
        raise ValueError(f"average must be 'geometric' or 'arithmetic'; got {average!r}")
    table = contingency(x, y)
    if table.size == 0:
        raise ValueError("nmi of empty label arrays is undefined")
    joint = table / table.sum()
    hx, hy = _entropy(joint.sum(1)), _entropy(joint.sum(0))
    if hx == 0 or hy == 0:
        return 1.0 if hx == hy else 0.0
    mi = hx + hy - _entropy(joint.ravel())
    norm = np.sqrt(hx * hy) if average == "geometric" else (hx + hy) / 2
    return float(np.clip(mi / norm, 0.0, 1.0))


def purity(codes: np.ndarray, actions: np.ndarray) -> float:
    """Accuracy of reading each code as its most frequent action."""
    table = contingency(codes, actions)
    return float(table.max(1).sum() / table.sum())


def consistency(codes: np.ndarray, actions: np.ndarray) -> float:
    """Share of transitions whose code is their action's most frequent code (purity read the
    other way round): low when one action is spread over many codes, as a leaking bottleneck does."""
    return purity(actions, codes)


def plot_confusion(counts: np.ndarray, ax=None, actions=None, max_codes: int = 32):
    """Heat map of a (codes x actions) count table, each action's column normalised to 1.

    Only codes that occur are drawn (the most frequent ``max_codes`` of them). Returns the axes.
    """
    import matplotlib.pyplot as plt  # lazy: matplotlib is heavy, and training never draws

    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(f"expected a (codes, actions) count table; got shape {counts.shape}")
    actions = list(actions) if actions is not None else ACTION_NAMES[: counts.shape[1]]
    used = np.flatnonzero(counts.sum(1))
    used = used[np.argsort(-counts[used].sum(1), kind="stable")[:max_codes]]
    used.sort()
    table = counts[used]
    share = table / np.maximum(table.sum(0, keepdims=True), 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.6 * len(actions) + 1.5, 0.3 * len(used) + 1.2))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (r, c), n in np.ndenumerate(table):
        if n:
            ax.text(c, r, str(n), ha="center", va="center", fontsize=7,
                    color="white" if share[r, c] > 0.6 else "black")  # fmt: skip
    ax.set_xticks(range(len(actions)), actions, rotation=45, ha="right")
    ax.set_yticks(range(len(used)), [str(u) for u in used])
    ax.set_xlabel("true action")
    ax.set_ylabel("latent action")
    ax.set_title(f"latent vs true actions ({len(used)} codes used)")
    return ax


def revealed_cells(rec: Recording) -> np.ndarray:
    """(E, T, R, C) bool: the view cells of frame t+1 that were out of view at frame t.

    A move scrolls the view by one tile, so one edge row or column is new land that frame t cannot
    predict: only a bottleneck that leaks frame t+1 helps there.
    """
    d = rec.positions[:, 1:] - rec.positions[:, :-1]  # (E, T, 2) row, column step
    out = np.zeros(d.shape[:2] + rec.tiles.shape[-2:], dtype=bool)
    out[..., 0, :] |= (d[..., 0] < 0)[..., None]  # moved north: a new top row
    out[..., -1, :] |= (d[..., 0] > 0)[..., None]
    out[..., :, 0] |= (d[..., 1] < 0)[..., None]  # moved west: a new left column
    out[..., :, -1] |= (d[..., 1] > 0)[..., None]
    return out


def effective_transitions(rec: Recording) -> np.ndarray:
    """(E, T) bool: the action showed on screen (the explorer moved or turned, or a tile changed).

    Only interaction changes tile kinds, and sheep are not tiles, so a changed tile grid without a
    move is the explorer's own doing.
    """
    moved = (rec.positions[:, 1:] != rec.positions[:, :-1]).any(-1)
    turned = rec.headings[:, 1:] != rec.headings[:, :-1]
    changed = (rec.tiles[:, 1:] != rec.tiles[:, :-1]).any((-2, -1)) & ~moved
    return moved | turned | changed


# ----------------------------------------------------------------------------- the leak's table
BOTTLENECK_FIGURES = ("next_frame_loss", "nmi", "consistency", "codes_used")
"""The figures (last part of the dotted name) that tell a narrow bottleneck from a leaking one."""


def bottleneck_figures(figures: dict[str, float]) -> dict[str, float]:
    """The :data:`BOTTLENECK_FIGURES` among one model's evaluation figures (dotted names kept)."""
    return {k: v for k, v in figures.items() if k.rsplit(".", 1)[-1] in BOTTLENECK_FIGURES}


def bottleneck_rows(scores: dict[str, tuple[dict, dict]]) -> list[dict]:
    """The narrow-versus-leaky table, one row per model.

    ``scores`` maps a model name (its figures are ``stage3.<name>.*``, as
    :func:`hitchhiker.interactive.latent_action_recipe.evaluate` names them) to its figures on held-out
    play and on play it trained on. Each row: ``model``, ``held_out_loss`` and ``training_loss``
    (next-frame loss: a leak lowers the training one most), and on held-out play ``nmi``,
    ``consistency`` and ``codes_used``.
    """
    rows = []
    for name, (held_out, training) in scores.items():
        p = f"stage3.{name}."
        missing = [
            f"{which}: {p}{f}"
            for which, figures, names in (
                ("held out", held_out, BOTTLENECK_FIGURES),
                ("training", training, ("next_frame_loss",)),
            )
            for f in names
            if p + f not in figures
        ]
        if missing:
            raise KeyError(f"figures missing for {name!r}: {', '.join(missing)}")
        rows.append(
            {
                "model": name,
                "held_out_loss": float(held_out[p + "next_frame_loss"]),
                "training_loss": float(training[p + "next_frame_loss"]),
                "nmi": float(held_out[p + "nmi"]),
                "consistency": float(held_out[p + "consistency"]),
                "codes_used": float(held_out[p + "codes_used"]),
            }
        )
    return rows
