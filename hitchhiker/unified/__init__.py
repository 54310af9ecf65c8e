"""Stage II — unified models: one backbone, one paradigm for captions and views.

One masked transformer over [caption tokens | view tokens] does text-to-image, image-to-text, joint
generation and infilling with the same weights; an autoregressive, Chameleon-style baseline predicts
the same tokens one at a time. Each model lives in its own module; its zoo recipe (Config with
presets, build, fit, tune_decoding, evaluate) in the ``*_recipe`` module next to it.

- :mod:`.sequence`               the shared [caption | view] layout, vocabulary and recorded pairs
- :mod:`.masked_model`           the unified masked model: all four tasks, one decoding loop
- :mod:`.objective`              its one training objective: masked cross-entropy, a task per sequence
- :mod:`.masked_recipe`          recipe "unified": train, tune decoding on val, score on test
- :mod:`.autoregressive`         the Chameleon-style AR baseline: causal, either order, cached
- :mod:`.autoregressive_recipe`  recipe "unified_ar": the same data and budget, next-token loss
- :mod:`.grammar`                the caption grammar as a decoder's guard rail
- :mod:`.self_check`             draw n candidates, check each with the model itself, keep the best
- :mod:`.facts`                  generated views and captions scored fact by fact against the truth
- :mod:`.scoring`                both recipes measured the same way: held-out pairs, facts, clock
- :mod:`.show_unified`           pictures and widgets for notebook 03
- :mod:`.history`                what the runs before the shipped models recorded, with provenance
"""

from .autoregressive import UnifiedAR
from .facts import atomic_facts, caption_scores, fact_share, i2t_scores, t2i_scores
from .masked_model import UnifiedModel
from .sequence import CAPTION_LEN, Layout, Pairs, encode_captions, record_pairs

__all__ = [
    "CAPTION_LEN",
    "Layout",
    "Pairs",
    "UnifiedAR",
    "UnifiedModel",
    "atomic_facts",
    "caption_scores",
    "encode_captions",
    "fact_share",
    "i2t_scores",
    "record_pairs",
    "t2i_scores",
]
