"""Linear probes: what do frozen features know about the view?

A representation is only as good as what a *linear* read-out can get from it (Alain & Bengio 2016,
"Understanding intermediate layers using linear classifier probes"; MAE's own evaluation protocol).
We freeze an encoder, mean-pool its tokens over all patches into one feature vector f (D,) per view,
standardise the features on the probe's training set, and fit

* **classifiers** for the facts a caption states — the dominant tile kind of each of the 8 compass
  regions around the explorer (8 tasks of 9 classes; ``probe_acc`` is their mean accuracy) — and
  for the kind the explorer stands on (``probe_center_acc``): multinomial logistic regression with
  an L2 penalty, ``p(k | f) = softmax(W f + b)_k``, fitted by L-BFGS, scored on held-out worlds;
* a **regressor** for the share of each tile kind in the view (9 numbers summing to 1), ridge
  regression in closed form, ``W = (F^T F + lambda I)^-1 F^T Y``; scored by R^2 = 1 - SSE / SST on
  held-out worlds (SST summed over the 9 outputs, so common kinds weigh more).

The same probes on a randomly initialised encoder of the same shape tell how much of the score
the architecture gives for free; the gap is what pre-training bought. Random features are a fair
random projection of the pixels, and that is already enough for labels that are nearly linear in
the pixels: the kind shares (close to a linear function of the mean patch colour) and, on our
small encoders, the centre tile. The region facts — *what lies where* — are where pre-training
pays, and they are the headline figure.

Shapes: M views, D feature width, K = 9 tile kinds, R x C view tiles.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hitchhiker.world.captions import region_masks
from hitchhiker.world.dataset import LEARNING_WORLD, record, views
from hitchhiker.world.tiles import NUM_KINDS


def standing_on(tiles: np.ndarray) -> np.ndarray:
    """(M,) kind of the centre cell (where the explorer stands) of (M, R, C) tile grids."""
    tiles = np.asarray(tiles)
    if tiles.ndim != 3:
        raise ValueError(f"expected tile grids shaped (M, R, C); got {tiles.shape}")
    return tiles[:, tiles.shape[1] // 2, tiles.shape[2] // 2].astype(np.int64)


def kind_shares(tiles: np.ndarray) -> np.ndarray:
    """(M, K) share of the view's cells holding each tile kind (rows sum to 1)."""
    tiles = np.asarray(tiles)
    if tiles.ndim != 3:
        raise ValueError(f"expected tile grids shaped (M, R, C); got {tiles.shape}")
    flat = tiles.reshape(len(tiles), -1)
    return (flat[..., None] == np.arange(NUM_KINDS)).mean(1)


@torch.no_grad()
def encoder_features(model: nn.Module, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(M, D) float32 CPU features from ``model.features`` (frozen, eval mode)."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        model.features(images[i : i + batch].to(device)).float().cpu()
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out)


def region_kinds(tiles: np.ndarray) -> np.ndarray:
    """(M, 8) dominant kind of each compass region (the facts a caption states), REGIONS order."""
    tiles = np.asarray(tiles)
    if tiles.ndim != 3:
        raise ValueError(f"expected tile grids shaped (M, R, C); got {tiles.shape}")
    masks = region_masks(*tiles.shape[1:])  # (8, R, C)
    onehot = tiles[:, None, :, :, None] == np.arange(NUM_KINDS)  # (M, 1, R, C, K)
    counts = (masks[None, ..., None] & onehot).sum(axis=(2, 3))  # (M, 8, K)
    return counts.argmax(-1)  # ties to the lower kind, as captions do


def _standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def _check_pair(x: torch.Tensor, y, what: str) -> None:
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(
            f"{what}: expected features (M, D) and M labels; got {tuple(x.shape)} and {len(y)} labels"
        )


def probe_accuracy(
    train_x: torch.Tensor,
    train_y: np.ndarray,
    test_x: torch.Tensor,
    test_y: np.ndarray,
    l2: float = 1e-3,
    iters: int = 200,
) -> float:
    """Held-out accuracy of an L2-regularised multinomial logistic regression on the features."""
    _check_pair(train_x, train_y, "train")
    _check_pair(test_x, test_y, "test")
    xtr, xte = _standardise(train_x.double(), test_x.double())
    ytr = torch.as_tensor(train_y, dtype=torch.long)
    classes = int(max(ytr.max().item(), int(np.max(test_y)))) + 1
    w = torch.zeros(xtr.shape[1], classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(xtr @ w + b, ytr) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (xte @ w + b).argmax(1).numpy()
    return float((pred == np.asarray(test_y)).mean())


def probe_r2(
    train_x: torch.Tensor,
    train_y: np.ndarray,
    test_x: torch.Tensor,
    test_y: np.ndarray,
    ridge: float = 1.0,
) -> float:
    """Held-out R^2 of ridge regression from the features to the (M, K) targets."""
    _check_pair(train_x, train_y, "train")
    _check_pair(test_x, test_y, "test")
    xtr, xte = _standardise(train_x.double(), test_x.double())
    ytr = torch.as_tensor(np.asarray(train_y), dtype=torch.float64)
    yte = torch.as_tensor(np.asarray(test_y), dtype=torch.float64)
    mu = ytr.mean(0)
    eye = torch.eye(xtr.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(xtr.T @ xtr + ridge * eye, xtr.T @ (ytr - mu))
    pred = xte @ w + mu
    sse = (pred - yte).pow(2).sum()
    sst = (yte - yte.mean(0)).pow(2).sum()
    return float(1 - sse / sst)


def probe_encoders(trained: nn.Module, random: nn.Module, cfg) -> dict[str, float]:
    """Both probes on a trained and a random encoder: probe fitted on train-split views, scored on
    held-out (test-split) views. ``cfg`` is an MAE config (probe sizes; ``cfg.data``: the held-out
    episodes and the policy)."""
    data = cfg.data
    fit_rec = record(
        "train", cfg.probe_episodes, cfg.probe_steps, data.policy, world=LEARNING_WORLD
    )
    test_rec = record(
        "test", data.eval_episodes, data.held_out_steps, data.policy, world=LEARNING_WORLD
    )
    (fit_x, fit_t), (test_x, test_t) = views(fit_rec), views(test_rec)
    device = next(trained.parameters()).device
    random = random.to(device)
    out = {}
    rtr, rte = region_kinds(fit_t), region_kinds(test_t)
    for name, model in (("", trained), ("_random", random)):
        ftr, fte = encoder_features(model, fit_x), encoder_features(model, test_x)
        out[f"stage1.mae.probe_acc{name}"] = float(
            np.mean([probe_accuracy(ftr, rtr[:, i], fte, rte[:, i]) for i in range(rtr.shape[1])])
        )
        out[f"stage1.mae.probe_center_acc{name}"] = probe_accuracy(
            ftr, standing_on(fit_t), fte, standing_on(test_t)
        )
        out[f"stage1.mae.probe_r2{name}"] = probe_r2(
            ftr, kind_shares(fit_t), fte, kind_shares(test_t)
        )
    out["stage1.mae.probe_acc_majority"] = float(
        np.mean([_majority(rtr[:, i], rte[:, i]) for i in range(rtr.shape[1])])
    )
    out["stage1.mae.probe_center_acc_majority"] = _majority(standing_on(fit_t), standing_on(test_t))
    return out


def _majority(train_y: np.ndarray, test_y: np.ndarray) -> float:
    """Accuracy of always answering the most frequent training class."""
    return float((np.asarray(test_y) == np.bincount(train_y, minlength=NUM_KINDS).argmax()).mean())
