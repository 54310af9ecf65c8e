"""Stage III — interactive: close the loop, one frame per action, fast enough to play.

A world model p(o[t+1] | o[<=t], a[t]) answers each action with the next frame. Every engine of this
stage — the simulator itself, the masked dynamics model, the diffusion engine — speaks the same
contract (``reset(seed)``, ``step(action)``, batched ``rollout(...)``: :mod:`hitchhiker.engine`), so
one evaluation and one live widget serve them all. Each model lives in its own module; its zoo recipe (Config with
presets, VARIANTS, build, fit, evaluate) in the ``*_recipe`` module next to it.

- :mod:`.latent_action_model`     Genie's latent action model: discrete actions discovered from
  unlabelled video through a small quantised bottleneck, and the latent action of every transition
- :mod:`.latent_action_recipe`    recipe "lam" (and "lam_leaky"): train it without labels, score it
- :mod:`.action_agreement`        its codes scored against the true actions (NMI, purity,
  consistency), and which transitions showed on screen
- :mod:`.masked_dynamics_model`   masked dynamics (Genie, MineWorld): a spatio-temporal transformer
  over Stage I tokens
- :mod:`.masked_dynamics_recipe`  recipe "dynamics" (and its variants): train it, score the engine
- :mod:`.masked_dynamics_engine`  the dynamics model behind the engine interface: MaskGIT decoding,
  cached for play
- :mod:`.edm`                     EDM: the denoiser's preconditioning, training noise, few-step sampler
- :mod:`.unet`                    a small U-Net denoiser, conditioned on past frames and actions
- :mod:`.diffusion_engine`        the diffusion engine (GameNGen, DIAMOND): the EDM denoiser played
  frame by frame, over the Stage I tokenizer's latents (or pixels)
- :mod:`.diffusion_recipe`        recipe "diffusion" (and "diffusion_noaug", "diffusion_pixels"):
  train it, score the engine
- :mod:`.truth`                   held-out ground truth, and the reference engines (the simulator
  itself, and a frozen world that copies the last frame)
- :mod:`.rollout`                 evaluation against the simulator: teacher-forced accuracy, action
  following, seen-land accuracy, error versus horizon, Genie's delta-PSNR, frames per second
- :mod:`.revisit`                 walk away and come back: how much of the land seen before an
  engine redraws right (the seed of Stage IV's memory benchmark)
- :mod:`.dream_play`              play a dreamed world live, side by side with the real one
- :mod:`.show_dynamics`           pictures of Stage III's token models for notebook 04
- :mod:`.benchmark`               Stage III's rows of the course benchmark (:mod:`hitchhiker.bench`)
"""

from .latent_action_model import LatentActionModel
from .masked_dynamics_engine import DynamicsEngine
from .masked_dynamics_model import DynamicsModel

__all__ = ["DynamicsEngine", "DynamicsModel", "LatentActionModel"]
