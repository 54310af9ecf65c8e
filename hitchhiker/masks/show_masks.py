"""Pictures and widgets for notebook 01 (masks): caption infilling, generation step by step, MAE
reconstructions under a mask-ratio slider, and the linear-probe bar chart.

The notebook tells the story; these helpers keep its cells one line long. Every function draws with
matplotlib (or prints), returns what it drew, and never trains anything.

Shapes: B views, N caption tokens, H = W = 64 pixels, P = 8 patch side.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from hitchhiker.masks import mae as mae_mod
from hitchhiker.masks import text as text_mod


def mark_fill(masked, filled, truth=None) -> str:
    """One caption with the words the model wrote in [brackets]; a wrong one as [got≠truth]."""
    masked, filled = torch.as_tensor(masked), torch.as_tensor(filled)
    hidden = (masked == len(text_mod.VOCAB)).tolist()
    words, start = [], True
    for i, tok in enumerate(filled.tolist()):
        if tok == text_mod.PAD_ID:
            break
        word = text_mod.VOCAB[tok]
        shown = word.capitalize() if start else word
        if hidden[i]:
            wrong = truth is not None and int(truth[i]) != tok
            shown = f"[{shown}≠{text_mod.VOCAB[int(truth[i])]}]" if wrong else f"[{shown}]"
        if word in ",." and words and not hidden[i]:
            words[-1] += shown  # punctuation sticks to its word, as the caption writer puts it
        else:
            words.append(shown)
        start = word == "."
    return " ".join(words)


def print_steps(
    history: list[torch.Tensor], row: int = 0, every: int = 1, mask_text: str = "_"
) -> list[str]:
    """Print (and return) one sample after every ``every``-th unmasking round and the last one;
    [MASK] shows as ``mask_text``."""
    lines = []
    for k, ids in enumerate(history):
        if (k + 1) % every and k != len(history) - 1:
            continue
        ids = ids[row]
        shown = text_mod.decode(ids, mask_text)  # up to the first pad the model has written
        left = int((ids == len(text_mod.VOCAB)).sum())
        lines.append(f"round {k + 1:>2} ({left:>2} masked): {shown}")
    print("\n".join(lines))
    return lines


def masked_view(images: torch.Tensor, mask: torch.Tensor, patch: int = 8, grey: float = 0.5):
    """(B, 3, H, W) with the hidden patches painted grey: what the encoder is *not* shown."""
    p = mae_mod.patchify(images, patch).clone()
    p[mask] = grey
    return mae_mod.unpatchify(p, patch)


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


def show_mae(model, images: torch.Tensor, ratio: float = 0.75, seed: int = 0, size: float = 1.8):
    """Rows: masked input, reconstruction (visible patches pasted back), original; one column per
    view. Returns the figure."""
    model.eval()
    device = next(model.parameters()).device
    images = images.to(device)
    gen = torch.Generator().manual_seed(seed)
    mask = mae_mod.random_mask(len(images), model.cfg.num_patches, ratio, generator=gen)
    mask = mask.to(device)
    recon = model.reconstruct(images, mask)
    rows = [
        ("masked input", masked_view(images, mask, model.cfg.patch_size)),
        ("reconstruction", recon),
        ("original", images),
    ]
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(size * n, size * 3 + 0.4), squeeze=False)
    for r, (name, batch) in enumerate(rows):
        for c, img in enumerate(_hwc(batch)):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=9)
    psnr = mae_mod.masked_psnr(model, images.cpu(), ratio, seed=seed)
    hidden = mae_mod.num_masked(model.cfg.num_patches, ratio)
    fig.suptitle(
        f"{hidden} of {model.cfg.num_patches} patches hidden ({ratio:.0%}): "
        f"PSNR on hidden patches {psnr:.1f} dB",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def mae_slider(model, images: torch.Tensor, ratio: float = 0.75):
    """A mask-ratio slider and a seed slider over :func:`show_mae` (ipywidgets 7.7 and 8)."""
    out = widgets.Output()

    def redraw(ratio: float, seed: int):
        with out:
            out.clear_output(wait=True)
            fig = show_mae(model, images, ratio, seed)
            display(fig)
            plt.close(fig)

    ratio_w = widgets.FloatSlider(
        value=ratio, min=0.0, max=0.95, step=0.05, description="mask ratio", continuous_update=False
    )
    seed_w = widgets.IntSlider(
        value=0, min=0, max=20, description="mask seed", continuous_update=False
    )
    ui = widgets.interactive(redraw, ratio=ratio_w, seed=seed_w)
    redraw(ratio_w.value, seed_w.value)
    return widgets.VBox([widgets.HBox(ui.children[:2]), out])


def show_probe(figures: dict[str, float], prefix: str = "stage1.mae."):
    """Bar chart: linear probes on the MAE encoder vs a random encoder of the same shape."""
    tasks = [
        ("probe_acc", "what lies where:\n8 regions' kinds (acc.)"),
        ("probe_center_acc", "stands on\n(accuracy)"),
        ("probe_r2", "kind shares\n(R²)"),
    ]
    tasks = [(k, label) for k, label in tasks if prefix + k in figures]
    x = np.arange(len(tasks))
    fig, ax = plt.subplots(figsize=(2.2 * len(tasks) + 1.5, 3.6))
    for dx, suffix, name, colour in (
        (-0.27, "", "MAE encoder", "tab:blue"),
        (0.0, "_random", "random encoder", "tab:gray"),
        (0.27, "_majority", "majority class", "tab:olive"),
    ):
        vals = [figures.get(prefix + k + suffix, np.nan) for k, _ in tasks]
        bars = ax.bar(x + dx, vals, 0.27, label=name, color=colour)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, [label for _, label in tasks])
    ax.set_ylim(0, 1.25)
    ax.set_title("linear probes on frozen, mean-pooled features (held-out worlds)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncol=3, frameon=False)
    fig.tight_layout()
    return fig
