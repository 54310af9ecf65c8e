"""Hitchhiker: a notebook-driven course in building world models.

The road (see README): masked models -> unified models -> interactive generative models ->
memory-augmented models -> agents living in a learned world. Every stage trains on, is measured
against, and is played inside one procedural world, :mod:`hitchhiker.world`.

- :mod:`.world`        the procedural world: tiles, maps, the environment, ground truth, captions
- :mod:`.masks`        Stage I, masks: MAE, masked text, the image tokenizer, MaskGIT, an AR baseline
- :mod:`.unified`      Stage II, unified models: one masked model for captions and views, an AR twin
- :mod:`.interactive`  Stage III, interactive: latent actions, masked dynamics, the diffusion engine
- :mod:`.tokens`       the token service: tokenizers by name, encoding, decoding, sample quality
- :mod:`.train`        the one training loop of every stage (resumable, DDP, mixed precision)
- :mod:`.zoo`          the shipped models: train one by its recipe, store it, load it back
- :mod:`.checkpoint`   checkpoints without pickle: safetensors for tensors, JSON for the rest
- :mod:`.config`       presets, devices, precision and typed configs
- :mod:`.metrics`      PSNR, SSIM, tile accuracy, frame validity, error versus horizon
- :mod:`.plots`        a live loss curve for notebooks
- :mod:`.play`         play a world live in the notebook
- :mod:`.course`       the notebooks, where the course lives, the cells every notebook opens with
- :mod:`.tour`         ``make tour``: run every notebook headless and collect its figures
- :mod:`.bench`        the benchmark behind every figure the README quotes

Nothing is imported here but the version: ``import hitchhiker.world`` (or any submodule) stays as
light as that submodule.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
