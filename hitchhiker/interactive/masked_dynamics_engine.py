"""Play the masked dynamics model: one action in, one imagined frame out, fast enough to play.

The engine keeps the last W frames as *tokens* (never decoded and re-encoded: decoding is only for
the screen) and answers each action by filling in the next frame with MaskGIT's parallel decoding
(:func:`hitchhiker.masks.maskgit.iterative_decode`, S steps instead of N token-by-token ones).

What is computed once, and reused:

* per frame — the context. Attention is block-causal, so the W context frames never attend to the
  frame being decoded: their keys and values are the same at every decoding step. One pass fills a
  ``KVCache`` with them and freezes it; each of the S steps then runs only the N tokens of the new
  frame, which attend to the frozen context and to each other: cost per frame ~ (W + S) N tokens
  instead of S (W + 1) N.
* between frames — the context tokens (the window slides by one frame of token ids), the
  block-causal mask (built once per size on the model), the action map and the random generator.
  Keys and values themselves are *not* reused across frames: every frame moves one slot back in
  the window (its frame-time embedding changes) and the oldest frame drops out of what the others
  attend to, so the context is recomputed once per frame.

The interface is the engine contract of :mod:`hitchhiker.engine` (``reset``, ``step``, batched
``rollout``, ``decode_steps``, ``name``, ``actions``, ``context``); the live widget and
:mod:`.rollout`'s evaluation drive it. A model conditioned on the LAM's latent codes also takes a
raw code (``latent_codes``, ``step_code``), so the learner can press "code 3" and see what it means.

Shapes: B batch, W context frames, T imagined steps, h x w token grid, N = h * w, V codebook size.
"""

from __future__ import annotations

import numpy as np
import torch

from hitchhiker.devices import device_of
from hitchhiker.engine import action_index, check_rollout_args, check_seed
from hitchhiker.masks.core import KVCache
from hitchhiker.masks.maskgit import iterative_decode
from hitchhiker.tokens import decode_tokens, encode_frames
from hitchhiker.world import ACTION_NAMES, SimulatorEngine
from hitchhiker.world.dataset import LEARNING_WORLD


class DynamicsEngine:
    """A :class:`~.masked_dynamics_model.DynamicsModel` and its tokenizer behind the engine interface.

    ``cfg`` is the model's recipe Config (default: the one it was shipped with); it gives the map
    from the world's actions to the model's (identity, or latent codes) and the padding action.
    ``seed`` makes sampling deterministic: the same seed, context and actions give the same frames.
    """

    actions = ACTION_NAMES

    def __init__(
        self,
        model,
        tokenizer,
        decode_steps: int | None = None,
        temperature: float | None = None,
        seed: int = 0,
        cfg=None,
    ):
        cfg = cfg if cfg is not None else getattr(model, "shipped_config", None)
        if cfg is None:
            raise ValueError("pass cfg= (the model's recipe Config) for a model not loaded by zoo")
        if len(cfg.action_codes) != len(ACTION_NAMES):
            raise ValueError(f"cfg.action_codes must map {len(ACTION_NAMES)} actions; got {cfg}")
        self.model, self.tokenizer, self.cfg = model.eval(), tokenizer, cfg
        self.name, self.context = cfg.name, cfg.context
        self.decode_steps = int(decode_steps if decode_steps is not None else cfg.decode_steps)
        self.temperature = float(temperature if temperature is not None else cfg.temperature)
        self.seed = int(seed)
        self.device = device_of(model)
        self.codes = torch.tensor(cfg.action_codes, dtype=torch.long, device=self.device)
        self.world = SimulatorEngine(LEARNING_WORLD)
        self._tokens = self._actions = self._gen = None
        self.features: torch.Tensor | None = None
        """(B, N, D) core output of the last context frame of the latest cached ``predict``."""

    # -- tokens <-> frames -------------------------------------------------------------------

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 frames (..., 64, 64, 3) -> token ids (..., N) on the model's device."""
        flat = np.asarray(frames).reshape(-1, *np.shape(frames)[-3:])
        tokens = encode_frames(self.tokenizer, flat).flatten(1).to(self.device)
        return tokens.view(*np.shape(frames)[:-3], -1)

    def decode(self, tokens: torch.Tensor) -> np.ndarray:
        """Token ids (..., N) -> uint8 frames (..., 64, 64, 3)."""
        h, w = self.cfg.tokens.grid_h, self.cfg.tokens.grid_w
        frames = decode_tokens(self.tokenizer, tokens.reshape(-1, h, w))
        return frames.reshape(*tokens.shape[:-1], *frames.shape[1:])

    def model_actions(self, actions) -> torch.Tensor:
        """World actions (any shape, ints in 0..5) -> the model's action ids."""
        a = torch.as_tensor(np.asarray(actions), dtype=torch.long, device=self.device)
        if a.numel() and (int(a.min()) < 0 or int(a.max()) >= len(ACTION_NAMES)):
            raise ValueError(f"actions must lie in 0..{len(ACTION_NAMES) - 1}; got {a.unique()}")
        return self.codes[a]

    def window(self, tokens: torch.Tensor, actions: torch.Tensor):
        """The model's context from N real frames: tokens (B, N, V-ids), world actions (B, N-1)
        between them -> (tokens (B, W, N), model actions (B, W)); the last W frames, a shorter
        context padded by repeating its first frame with the padding action."""
        w, b = self.cfg.context, tokens.shape[0]
        acts = self.model_actions(actions).view(b, -1)
        pad = acts.new_full((b, 1), self.cfg.pad_action)
        while tokens.shape[1] < w:
            tokens, acts = torch.cat([tokens[:, :1], tokens], 1), torch.cat([pad, acts], 1)
        none = acts.new_full((b, 1), self.model.none_action)
        return tokens[:, -w:], torch.cat([none, acts], 1)[:, -w:].contiguous()

    # -- one frame -----------------------------------------------------------------------------

    def logits_fn(
        self, tokens: torch.Tensor, actions: torch.Tensor, nxt: torch.Tensor, cached=True
    ):
        """``logits(x)`` of the next frame x (B, N) behind the context (tokens (B, W, N), model
        actions (B, W)) and the model action ``nxt`` (B,) leading to it.

        Cached: the context runs once into a frozen KV cache, each call runs N tokens. Uncached:
        each call runs the whole window through the block-causal mask (for tests and reference).
        """
        model, w = self.model, tokens.shape[1]
        if not cached:
            acts = torch.cat([actions, nxt[:, None]], 1)
            return lambda x: model(torch.cat([tokens, x[:, None]], 1), acts)[:, -1]
        cache = KVCache()
        # The last context frame as the model sees it (B, N, D): what Stage V's heads read.
        self.features = model.fill_context(tokens, actions, cache)
        cache.frozen = True  # decoding steps read the context but never append to it
        return lambda x: model(x[:, None], nxt[:, None], w, cache)[:, 0]

    @torch.inference_mode()
    def predict(self, tokens, actions, nxt, generator=None, cached: bool = True) -> torch.Tensor:
        """The next frame's token ids (B, N) by MaskGIT decoding in ``decode_steps`` steps."""
        logits_fn = self.logits_fn(tokens, actions, nxt, cached)
        blank = torch.zeros(tokens.shape[0], tokens.shape[2], dtype=torch.long, device=self.device)
        todo = torch.ones_like(blank, dtype=torch.bool)
        return iterative_decode(
            logits_fn,
            blank,
            todo,
            self.model.mask_id,
            self.decode_steps,
            self.temperature,
            self.cfg.mask_schedule,
            self.cfg.choice_temperature,
            generator,
        )

    def _generator(self, salt: int = 0) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + salt)

    # -- the engine interface ----------------------------------------------------------------

    def reset(self, seed: int) -> np.ndarray:
        """The first frame of world ``seed`` (rendered by the simulator); the context repeats it."""
        seed = check_seed(seed)
        frame = self.world.reset(seed)
        self._tokens, self._actions = self.window(self.encode(frame[None, None]), torch.zeros(1, 0))
        self._gen = self._generator(seed)
        return frame

    def step(self, action) -> np.ndarray:
        """The next imagined frame, uint8 (64, 64, 3), after ``action`` (an int or a name)."""
        if self._tokens is None:
            raise RuntimeError("call reset(seed) before step(action)")
        return self._step_model_action(self.model_actions([action_index(action, self.actions)]))

    @property
    def latent_codes(self) -> int | None:
        """K, the number of raw latent codes a model conditioned on the LAM's codes reads (its
        buttons play the code mapped to each action); None for a model of the true actions."""
        return int(self.cfg.actions) if self.cfg.action_source == "latent" else None

    def buttons_of_code(self, code: int) -> list[str]:
        """The world actions whose button plays latent ``code`` (empty for a code no button uses)."""
        return [name for name, c in zip(self.actions, self.cfg.action_codes) if c == code]

    def step_code(self, code: int) -> np.ndarray:
        """The next imagined frame after the raw latent action ``code`` (0..K-1), as the LAM named
        it, with no button map in between: what the code *means* to the model."""
        k = self.latent_codes
        if k is None:
            raise ValueError(f"{self.name} reads the true actions, not latent codes: use step()")
        if isinstance(code, (bool, np.bool_)) or not isinstance(code, (int, np.integer)):
            raise ValueError(f"a latent code is an int in 0..{k - 1}; got {code!r}")
        if not 0 <= code < k:
            raise ValueError(f"latent codes lie in 0..{k - 1}; got {code}")
        if self._tokens is None:
            raise RuntimeError("call reset(seed) before step_code(code)")
        return self._step_model_action(torch.tensor([int(code)], device=self.device))

    def _step_model_action(self, a: torch.Tensor) -> np.ndarray:
        """Imagine the next frame under model action ``a`` (1,), slide the window, show it."""
        nxt = self.predict(self._tokens, self._actions, a, self._gen)
        self._slide(nxt, a)
        return self.decode(nxt[0])

    def _slide(self, nxt: torch.Tensor, a: torch.Tensor) -> None:
        """Append the new frame's tokens and its action; drop the oldest (slot 0 becomes none)."""
        self._tokens = torch.cat([self._tokens[:, 1:], nxt[:, None]], 1)
        acts = torch.cat([self._actions[:, 1:], a[:, None]], 1)
        acts[:, 0] = self.model.none_action
        self._actions = acts

    @torch.inference_mode()
    def start_from(self, tokens: torch.Tensor, past) -> None:
        """Begin B walks from real token frames (B, n, N) and the world actions (B, n-1) between
        them (the window keeps the last W); :meth:`imagine` then steps them. Stage V's capstone
        re-anchors a dream here; the memory engine also banks the older frames."""
        past = np.asarray(past, dtype=np.int64).reshape(tokens.shape[0], tokens.shape[1] - 1)
        self._tokens, self._actions = self.window(tokens, torch.as_tensor(past))
        self._gen = self._generator()

    @torch.inference_mode()
    def imagine(self, actions) -> torch.Tensor:
        """The next imagined frame's tokens (B, N) of each walk begun by :meth:`start_from`,
        after world ``actions`` (B,); the window slides on."""
        if self._tokens is None or self._gen is None:
            raise RuntimeError("call start_from(tokens, past) before imagine(actions)")
        a = self.model_actions(np.asarray(actions, dtype=np.int64).reshape(-1))
        nxt = self.predict(self._tokens, self._actions, a, self._gen)
        self._slide(nxt, a)
        return nxt

    @torch.inference_mode()
    def rollout(self, context_frames, context_actions, actions) -> np.ndarray:
        """Imagine T frames (B, T, 64, 64, 3) uint8 after real context frames (B, N, 64, 64, 3),
        the actions between them (B, N-1) and the actions to imagine (B, T)."""
        frames, context_actions, actions = check_rollout_args(
            context_frames, context_actions, actions
        )
        b = len(frames)
        saved = self._tokens, self._actions
        self._tokens, self._actions = self.window(self.encode(frames), context_actions)
        gen, out = self._generator(), []
        acts = self.model_actions(actions)
        for t in range(actions.shape[1]):
            nxt = self.predict(self._tokens, self._actions, acts[:, t], gen)
            self._slide(nxt, acts[:, t])
            out.append(nxt)
        self._tokens, self._actions = saved
        if not out:
            return np.zeros((b, 0, 64, 64, 3), dtype=np.uint8)
        return self.decode(torch.stack(out, 1))
