"""Stage I's rows of the course benchmark (:mod:`hitchhiker.bench`): MAE, masked text, the
tokenizer, MaskGIT and its autoregressive baseline, each evaluated by its own recipe."""

from __future__ import annotations

from hitchhiker import zoo
from hitchhiker.bench import Figure, figures


@figures(
    "stage1",
    Figure("stage1.mae.masked_psnr_75", "MAE: PSNR of masked patches at 75% masking", "dB"),
    Figure(
        "stage1.mae.probe_acc",
        "linear probe on MAE features: tile kind of each caption region",
        "",
        "> random",
    ),
    Figure("stage1.mae.probe_acc_random", "same probe on a randomly initialised encoder"),
    Figure(
        "stage1.mae.probe_center_acc", "linear probe on MAE features: tile the explorer stands on"
    ),
    Figure("stage1.mae.probe_center_acc_random", "same probe on a randomly initialised encoder"),
    Figure("stage1.text.masked_acc_15", "masked text: accuracy on 15% masked caption words"),
    Figure("stage1.text.parse_rate", "masked diffusion: generated captions that parse"),
    Figure(
        "stage1.tokenizer.tile_accuracy",
        "tokenizer: tile accuracy of reconstructions",
        "",
        ">= 0.98",
    ),
    Figure("stage1.tokenizer.psnr", "tokenizer: reconstruction PSNR", "dB", ">= 26"),
    Figure(
        "stage1.tokenizer.heading_accuracy",
        "tokenizer: explorer heading read from reconstructions",
    ),
    Figure(
        "stage1.tokenizer.codebook_usage",
        "tokenizer: share of codes in use on test views",
        "",
        ">= 0.8",
    ),
    Figure(
        "stage1.maskgit.confident_share", "MaskGIT samples: tiles read confidently", "", ">= 0.9"
    ),
    Figure(
        "stage1.maskgit.kind_tv", "MaskGIT samples: tile-kind frequency distance to real views (TV)"
    ),
    Figure("stage1.ar.confident_share", "AR samples: tiles read confidently"),
    Figure("stage1.ar.kind_tv", "AR samples: tile-kind frequency distance to real views (TV)"),
    Figure(
        "stage1.maskgit.ms_per_image_b1", "MaskGIT (8 steps) sampling time per image, batch 1", "ms"
    ),
    Figure("stage1.ar.ms_per_image_b1", "AR (KV cache) sampling time per image, batch 1", "ms"),
    Figure("stage1.ar.maskgit_speedup_b1", "MaskGIT speed-up over AR, batch 1", "x", ">= 10"),
    Figure(
        "stage1.maskgit.ms_per_image_b16",
        "MaskGIT (8 steps) sampling time per image, batch 16",
        "ms",
    ),
    Figure("stage1.ar.ms_per_image_b16", "AR (KV cache) sampling time per image, batch 16", "ms"),
    Figure("stage1.ar.maskgit_speedup_b16", "MaskGIT speed-up over AR, batch 16", "x", ">= 10"),
)
def stage1_figures(preset: str) -> dict[str, float]:
    """Evaluate the shipped Stage I models (fresh smoke-sized ones under the smoke preset)."""
    out: dict[str, float] = {}
    for name in ("mae", "text", "tokenizer", "maskgit", "ar"):
        model, cfg = zoo.load_or_fit(name, preset)
        out.update(zoo.evaluate(name, model, cfg))
    for b in (1, 16):  # the speed-up from the two rows the table shows, so the three agree
        out[f"stage1.ar.maskgit_speedup_b{b}"] = (
            out[f"stage1.ar.ms_per_image_b{b}"] / out[f"stage1.maskgit.ms_per_image_b{b}"]
        )
    out.pop("stage1.ar.maskgit_ms_per_image_b1", None)  # AR's own race timings: not table rows
    out.pop("stage1.ar.maskgit_ms_per_image_b16", None)
    return out
