"""The diffusion engine: a diffusion world model (:mod:`.diffusion_recipe`) played one frame at a time.

``reset(seed)`` renders world ``seed``'s first real frame with the simulator and fills the context
window with it (W copies, noop actions between them); each ``step(action)`` draws pure noise and
denoises it in ``decode_steps`` steps into the next frame, conditioned on the last W frames and
actions; the frame, rounded to uint8, joins the context and the oldest leaves. ``rollout`` does the
same for a batch, from a real context (padded or cut to W by :func:`hitchhiker.engine.pad_context`).
The contract, its argument checks and its padding live in :mod:`hitchhiker.engine`; the model, its
training and its evaluation in :mod:`.diffusion_recipe`.

Frames enter and leave the engine as uint8 (H, W, 3), so ``step`` and ``rollout`` see exactly the
frames the player sees. In between they live in the model's space (:meth:`DiffusionEngine.encode`,
:meth:`DiffusionEngine.decode`): pixels in [-1, 1], channel-first (:func:`to_model_space`,
:func:`to_uint8`), or, for a model that denoises the Stage I tokenizer's latents, the scaled code
vectors of the frame's tokens; a denoised latent is snapped to its nearest code and the tokenizer
paints it.

Shapes: B batch, W context frames, T imagined steps, H x W_px = 64 x 64 pixels, C = 3 channels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from hitchhiker.engine import action_index, check_rollout_args, check_seed, pad_context
from hitchhiker.tokens import decode_tokens, encode_frames
from hitchhiker.world import ACTION_NAMES, Action
from hitchhiker.world.dataset import LEARNING_WORLD
from hitchhiker.world.env import HitchhikerWorld

if TYPE_CHECKING:  # the recipe imports this module: a runtime import would be a cycle
    from hitchhiker.interactive.diffusion_recipe import DiffusionModel


def to_model_space(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) or float [0, 1] (..., 3, H, W) -> float (..., 3, H, W) in [-1, 1]."""
    if frames.dtype == torch.uint8:
        frames = frames.movedim(-1, -3).float() / 255.0
    return frames * 2 - 1


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3), rounded."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1)


class DiffusionEngine:
    """The diffusion model behind the engine contract (:mod:`hitchhiker.engine`).

    ``reset(seed)`` renders the first real frame of world ``seed`` with the simulator and fills the
    context with it (noop actions); each ``step`` samples the next frame in ``decode_steps`` denoising
    steps. Sampling noise comes from a generator seeded by ``seed`` at every reset and rollout, so a
    rollout is a pure function of its inputs and ``seed``.

    A token-space model (``model.cfg.space == "tokens"``) needs the ``tokenizer`` it was trained
    on: frames enter as its tokens' code vectors, and each denoised latent is snapped to the
    nearest code and painted by its decoder.
    """

    actions = ACTION_NAMES

    def __init__(
        self,
        model: DiffusionModel,  # the recipe's (hitchhiker.interactive.diffusion_recipe)
        decode_steps: int | None = None,
        seed: int = 0,
        context_level: float | None = None,
        tokenizer=None,
    ):
        self.model = model.eval()
        self.cfg = model.cfg
        self.name = self.cfg.name
        self.context = self.cfg.context
        self.decode_steps = self.cfg.decode_steps if decode_steps is None else int(decode_steps)
        self.seed = int(seed)
        self.context_level = context_level  # None: the config's play_context_noise
        self.in_tokens = getattr(self.cfg, "space", "pixels") == "tokens"
        if self.in_tokens:
            if tokenizer is None:
                raise ValueError(
                    f"{self.name!r} denoises tokenizer latents: pass the tokenizer it was trained "
                    "on, e.g. DiffusionEngine(model, tokenizer=zoo.dependencies(name, cfg)"
                    "['tokenizer'])"
                )
            self.cfg.tokens.check(tokenizer, f"the diffusion model {self.name!r}")
        self.tokenizer = tokenizer
        self.world = HitchhikerWorld(LEARNING_WORLD, max_steps=0)
        self._frames: torch.Tensor | None = None  # (1, W, C, H, W) in model space
        self._actions: torch.Tensor | None = None  # (1, W - 1)
        self._gen = torch.Generator()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _check_steps(self) -> int:
        steps = self.decode_steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"decode_steps must be a positive integer; got {steps!r}")
        return int(steps)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (..., H, W, 3) -> model space (..., C, H', W'): pixels in [-1, 1], or the
        scaled code vectors of their tokens."""
        if not self.in_tokens:
            return to_model_space(frames.to(self.device))
        lead = frames.shape[:-3]
        tokens = encode_frames(self.tokenizer, frames.reshape(-1, *frames.shape[-3:]).numpy())
        return self.model.latents(tokens.to(self.device).view(*lead, *tokens.shape[-2:]))

    def decode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A sample (B, C, H', W') in model space -> (uint8 frames (B, H, W, 3), the model-space
        form that joins the context: exactly what the player sees)."""
        if not self.in_tokens:
            frame = to_uint8(x)
            return frame, to_model_space(frame.to(self.device))
        tokens = self.model.nearest(x)
        return torch.from_numpy(decode_tokens(self.tokenizer, tokens)), self.model.latents(tokens)

    def _advance(self, frames, past, action, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One imagined step for a batch: (next frame uint8 (B, H, W, 3), its model-space form)."""
        acts = torch.cat([past, action[:, None]], dim=1)
        x = self.model.next_frame(frames, acts, self._check_steps(), generator, self.context_level)
        return self.decode(x)

    def reset(self, seed: int) -> np.ndarray:
        frame, _ = self.world.reset(seed=check_seed(seed))
        start = self.encode(torch.from_numpy(frame))
        self._frames = start[None, None].repeat(1, self.context, 1, 1, 1)
        self._actions = torch.full((1, self.context - 1), int(Action.NOOP), device=self.device)
        self._gen = torch.Generator().manual_seed(self.seed)
        return frame.copy()

    def step(self, action) -> np.ndarray:
        a = action_index(action, self.actions)
        if self._frames is None:
            raise RuntimeError("call reset(seed) before step(action)")
        act = torch.tensor([a], device=self.device)
        frame, x = self._advance(self._frames, self._actions, act, self._gen)
        self._frames = torch.cat([self._frames[:, 1:], x[:, None]], dim=1)
        self._actions = torch.cat([self._actions, act[:, None]], dim=1)[:, 1:]  # the last W - 1
        return frame[0].cpu().numpy()

    @torch.no_grad()
    def rollout(self, context_frames, context_actions, actions) -> np.ndarray:
        """uint8 (B, T, H, W, 3) imagined under ``actions`` (B, T) after the real context."""
        _, _, future = check_rollout_args(context_frames, context_actions, actions)
        frames, past = pad_context(context_frames, context_actions, self.context)
        dev = self.device
        x = self.encode(torch.from_numpy(frames))
        past = torch.from_numpy(past).to(dev)
        future = torch.from_numpy(future).to(dev)
        gen = torch.Generator().manual_seed(self.seed)
        out = []
        for t in range(future.shape[1]):
            frame, nxt = self._advance(x, past, future[:, t], gen)
            out.append(frame.cpu())
            x = torch.cat([x[:, 1:], nxt[:, None]], dim=1)
            past = torch.cat([past, future[:, t : t + 1]], dim=1)[:, 1:]
        if not out:
            return np.zeros((len(frames), 0, *frames.shape[2:]), dtype=np.uint8)
        return torch.stack(out, dim=1).numpy()
