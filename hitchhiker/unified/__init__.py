"""Stage II — unified models: one backbone, one paradigm for captions and views.

One masked transformer over [caption tokens | view tokens] (:mod:`.masked_model`, trained by the
one objective of :mod:`.objective`, recipe :mod:`.unified`) does text-to-image, image-to-text,
joint generation and infilling with the same weights; an autoregressive, Chameleon-style baseline
(:mod:`.autoregressive`) predicts the same tokens one at a time. :mod:`.sequence` lays out the
shared sequence and vocabulary; :mod:`.facts` scores generated views and captions fact by fact
against the world's exact ground truth, and :mod:`.scoring` measures both recipes the same way.
"""

from .facts import atomic_facts, caption_scores, fact_share, i2t_scores, t2i_scores
from .sequence import CAPTION_LEN, Layout, Pairs, encode_captions, record_pairs

__all__ = [
    "CAPTION_LEN",
    "Layout",
    "Pairs",
    "atomic_facts",
    "caption_scores",
    "encode_captions",
    "fact_share",
    "i2t_scores",
    "record_pairs",
    "t2i_scores",
]
