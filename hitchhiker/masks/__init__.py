"""Stage I — masks: "mask, infill, generalise".

One recipe across modalities: hide part of the input and learn to fill it in. MAE on world views,
masked text on world captions (growing into masked-diffusion generation), a discrete image
tokenizer (VQ-VAE or FSQ), and MaskGIT with an autoregressive baseline — all on the one transformer
core in :mod:`hitchhiker.masks.core`, which later stages reuse.
"""

from .core import CoreConfig, KVCache, MaskedTokenModel, TokenGridModel, TransformerCore

__all__ = ["CoreConfig", "KVCache", "MaskedTokenModel", "TokenGridModel", "TransformerCore"]
