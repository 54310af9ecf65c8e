"""Stage I — masks: "mask, infill, generalise".

One recipe across modalities: hide part of the input and learn to fill it in. MAE on world views,
masked text on world captions (growing into masked-diffusion generation), a discrete image
tokenizer (VQ-VAE or FSQ), and MaskGIT with an autoregressive baseline — all on the one transformer
core in :mod:`hitchhiker.masks.core`, which later stages reuse. Each model lives in its own module;
its zoo recipe (Config with presets, build, fit, evaluate) in the ``*_recipe`` module next to it.

- :mod:`.core`                   the one transformer core: blocks, a KV cache, a masked-token model
- :mod:`.quantizers`             VQ (EMA codebook) and FSQ: a continuous latent -> one discrete token
- :mod:`.mae`                    MAE: patches, random masks, encoder + light decoder, masked PSNR
- :mod:`.mae_recipe`             recipe "mae": record views, train, masked PSNR and linear probes
- :mod:`.probe`                  linear probes: what frozen features know about the view
- :mod:`.text`                   masked text: caption vocabulary, BERT / diffusion corruption, sampler
- :mod:`.text_recipe`            recipe "text": caption views, train, accuracy and generation figures
- :mod:`.tokenizer`              the image tokenizer (view <-> 8x8 tokens) and what its codes mean
- :mod:`.tokenizer_recipe`       recipe "tokenizer": record views, train, reconstruction figures
- :mod:`.maskgit`                MaskGIT: mask schedules, the model, its parallel decoding loop, loss
- :mod:`.maskgit_recipe`         recipe "maskgit": tokenize views, train, sample quality and speed
- :mod:`.autoregressive`         the AR baseline: causal raster-order model, cached sampler, race
- :mod:`.autoregressive_recipe`  recipe "ar": MaskGIT's data and size, causal; raced against MaskGIT
- :mod:`.show_masks`             pictures for notebook 01: filled captions, MAE views, probe bars
- :mod:`.show_tokens`            pictures for notebook 02: decoding steps, speed, the codebook
"""

from .autoregressive import AutoregressiveModel
from .core import CoreConfig, KVCache, MaskedTokenModel, TokenGridModel, TransformerCore
from .mae import MAE
from .maskgit import MaskGIT
from .tokenizer import Tokenizer

__all__ = [
    "MAE",
    "AutoregressiveModel",
    "CoreConfig",
    "KVCache",
    "MaskGIT",
    "MaskedTokenModel",
    "TokenGridModel",
    "Tokenizer",
    "TransformerCore",
]
