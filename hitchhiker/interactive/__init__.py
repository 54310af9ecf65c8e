"""Stage III — interactive: close the loop, one frame per action, fast enough to play.

A world model p(o[t+1] | o[<=t], a[t]) answers each action with the next frame. Every engine of this
stage — the simulator itself, the masked dynamics model, the diffusion engine — speaks the same
interface (``reset(seed)``, ``step(action)``, batched ``rollout(...)``), so one evaluation and one
live widget serve them all.

- :mod:`.latent_actions`  Genie's latent action model: discrete actions discovered from unlabelled
  video through a small quantised bottleneck; :mod:`.action_agreement` scores its codes against
  the true actions (NMI, purity, consistency)
- :mod:`.masked_dynamics_model`, :mod:`.dynamics`, :mod:`.masked_dynamics_engine`  masked dynamics (Genie,
  MineWorld): a spatio-temporal transformer over Stage I tokens (the model; its recipe), MaskGIT
  decoding, cached for play
- :mod:`.edm`, :mod:`.unet`, :mod:`.diffusion`  the diffusion engine (GameNGen, DIAMOND): an EDM
  denoiser in pixel space conditioned on past frames and actions, with context-noise augmentation
- :mod:`.truth`           held-out ground truth, and the reference engines (the simulator itself,
  and a frozen world that copies the last frame)
- :mod:`.rollout`         evaluation against the simulator: teacher-forced accuracy, action
  following, seen-land accuracy, error versus horizon, Genie's delta-PSNR, frames per second
- :mod:`.revisit`         walk away and come back: how much of the land seen before an engine
  redraws right (the seed of Stage IV's memory benchmark)
- :mod:`.dream_play`      play a dreamed world live, side by side with the real one
- :mod:`.benchmark`       Stage III's rows of the course benchmark (:mod:`hitchhiker.bench`)

Imports are lazy on purpose: ``import hitchhiker.interactive`` loads no model code (and no torch
model definitions); import the submodule you need.
"""

from __future__ import annotations

import importlib

SUBMODULES = (
    "latent_actions",
    "action_agreement",
    "masked_dynamics_model",
    "masked_dynamics_recipe",
    "masked_dynamics_engine",
    "edm",
    "unet",
    "diffusion_recipe",
    "truth",
    "rollout",
    "dream_play",
    "revisit",
    "benchmark",
)
"""The Stage III modules, importable as attributes on first use (``interactive.rollout``)."""

__all__ = list(SUBMODULES)


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
