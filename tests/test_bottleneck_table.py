"""The narrow-versus-leaky bottleneck table of notebook 04, built from evaluation figures."""

import pytest

from hitchhiker.interactive import action_agreement as aa


def _figures(name, loss, nmi=0.5, consistency=0.6, codes=8.0):
    p = f"stage3.{name}."
    return {
        p + "next_frame_loss": loss,
        p + "nmi": nmi,
        p + "nmi_effective": 0.9,
        p + "consistency": consistency,
        p + "codes_used": codes,
        p + "purity": 0.7,
    }


def test_rows_take_each_model_held_out_and_training_figures():
    scores = {
        "lam": (_figures("lam", 1.5, 0.8, 0.9, 8.0), _figures("lam", 1.4)),
        "lam_leaky": (_figures("lam_leaky", 1.2, 0.1, 0.05, 300.0), _figures("lam_leaky", 0.3)),
    }
    assert aa.bottleneck_rows(scores) == [
        {"model": "lam", "held_out_loss": 1.5, "training_loss": 1.4, "nmi": 0.8,
         "consistency": 0.9, "codes_used": 8.0},
        {"model": "lam_leaky", "held_out_loss": 1.2, "training_loss": 0.3, "nmi": 0.1,
         "consistency": 0.05, "codes_used": 300.0},
    ]  # fmt: skip


def test_figures_keep_only_the_table_columns_with_their_names():
    got = aa.bottleneck_figures(_figures("lam_leaky", 1.2))
    assert got == {
        "stage3.lam_leaky.next_frame_loss": 1.2,
        "stage3.lam_leaky.nmi": 0.5,
        "stage3.lam_leaky.consistency": 0.6,
        "stage3.lam_leaky.codes_used": 8.0,
    }  # nmi_effective and purity are not columns


def test_a_missing_figure_is_named():
    held_out = _figures("lam", 1.5)
    del held_out["stage3.lam.consistency"]
    with pytest.raises(KeyError, match="stage3.lam.consistency"):
        aa.bottleneck_rows({"lam": (held_out, _figures("lam", 1.0))})
    with pytest.raises(KeyError, match="training: stage3.lam.next_frame_loss"):
        aa.bottleneck_rows({"lam": (_figures("lam", 1.5), {})})
