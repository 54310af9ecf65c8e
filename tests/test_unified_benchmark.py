"""Stage II's benchmark rows and the one code path notebook 03's race shares with them."""

import numpy as np
import pytest
import torch

from hitchhiker import zoo
from hitchhiker.masks.core import CoreConfig
from hitchhiker.tokens import OracleTokenizer
from hitchhiker.unified import benchmark, scoring
from hitchhiker.unified import masked_recipe as um
from hitchhiker.unified import sequence as sq

pytestmark = pytest.mark.usefixtures("one_thread")


def _figures(name, base):
    return {f"stage2.{name}.{f}": base + i for i, f in enumerate(benchmark.RACE_COLUMNS.values())}


def test_race_rows_label_each_model_column_by_column():
    figures = _figures("unified", 0.0) | _figures("unified_ar", 10.0)
    figures["stage2.unified.t2i_fact_accuracy_unguided"] = 99.0  # not a race column
    rows = benchmark.race_rows(figures)
    assert list(rows) == ["masked", "autoregressive"]
    assert list(rows["masked"]) == list(benchmark.RACE_COLUMNS)
    assert rows["masked"]["t2i facts"] == 0.0 and rows["masked"]["ms/caption b16"] == 6.0
    assert rows["autoregressive"]["i2t precision"] == 11.0
    assert list(benchmark.race_rows(_figures("unified_ar", 1.0))) == ["autoregressive"]


def test_rows_of_the_table_are_the_race_figures_of_both_models():
    names = {r.name for r in benchmark.ROWS}
    assert names == {
        f"stage2.{m}.{f}" for m in benchmark.MODELS for f in benchmark.RACE_COLUMNS.values()
    }


def test_model_figures_is_the_recipes_evaluation(monkeypatch):
    calls = []

    def evaluate(name, model, cfg):  # the zoo hands the recipe its dependencies
        calls.append((name, model, cfg))
        return {"stage2.unified_ar.i2t_precision": 0.5}

    monkeypatch.setattr(zoo, "evaluate", evaluate)
    assert benchmark.model_figures("unified_ar", "M", "C") == {
        "stage2.unified_ar.i2t_precision": 0.5
    }
    assert calls == [("unified_ar", "M", "C")]
    with pytest.raises(ValueError, match="unified_ar"):
        benchmark.model_figures("dynamics", "M", "C")


def test_samples_are_what_the_figures_average():
    """scoring.figures scores scoring.samples: its draws are the benchmark's, pair by pair."""
    tok = OracleTokenizer()
    pairs = sq.record_pairs("test", 1, 16, tok)[0]
    pairs = pairs.subset(np.arange(3))
    torch.manual_seed(0)
    lay = sq.Layout(9)
    model = um.UnifiedModel(CoreConfig(lay.vocab_size, lay.seq_len, 32, 1, 2, modalities=2), lay)
    model.eval()
    drawn = scoring.samples(model, pairs, tok, seed=3)
    assert drawn.views.shape == (3, 64, 64, 3) and drawn.views.dtype == np.uint8
    assert drawn.t2i.shape == (3,) and len(drawn.captions) == 3
    assert float(drawn.t2i.mean()) == scoring.t2i_accuracy(model, pairs, tok, seed=3)
    assert drawn.i2t == scoring.i2t_figures(model, pairs, seed=3)
