"""The dream: a world model and its task heads behind gymnasium's API, many dreams at once.

Ha and Schmidhuber's World Models trained a controller "inside its own dream"; DIAMOND and IRIS train
their actor-critics in imagined rollouts that start from real frames. Here the dream is an ordinary
gymnasium environment, so any RL code that speaks gymnasium can train in it:

    reset   -> B real starts: the context window (W frames, in tokens) of a moment of recorded play
    step(a) -> heads read the current frame's features and a: reward, terminated (sampled)
               the engine imagines the next frame's tokens (MaskGIT, ``decode_steps`` steps)
               the window slides; after ``horizon`` steps the dream is truncated

Observations are the engine's token grid of the current frame, (h, w) int64 codes: the agent reads
what the world model writes, no pixel decoding in the loop (``render`` decodes, for people).
:class:`DreamVecEnv` is a ``gymnasium.vector.VectorEnv`` (B dreams per call, one batched pass of the
model, same-step autoreset); :class:`DreamEnv` is one dream as a plain ``gymnasium.Env``, the form
gymnasium's environment checker takes.

Shapes: B dreams, M starts in the bank, W context frames, h x w token grid, N = h * w, V codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from hitchhiker.interactive.masked_dynamics_recipe import WindowDataset
from hitchhiker.world import ACTION_NAMES


@dataclass
class StartBank:
    """Real starts of dreams: context windows of recorded play, in the engine's terms.

    tokens (M, W, N) int64 and model actions (M, W) (slot 0: the model's "none")."""

    tokens: torch.Tensor
    actions: torch.Tensor

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def from_play(cls, engine, tokens: torch.Tensor, actions: torch.Tensor) -> StartBank:
        """Every step of recorded episodes as a start: tokens (E, T+1, h, w), world actions (E, T);
        the window ending at frame t (padded before the episode began, as the engine pads)."""
        codes = engine.model_actions(actions).cpu()
        data = WindowDataset(tokens.cpu(), codes, engine.context, engine.cfg.pad_action)
        items = [data[i] for i in range(len(data))]
        ctx = torch.stack([it["tokens"][:-1] for it in items]).flatten(2)
        acts = torch.stack([it["actions"][:-1] for it in items])
        acts[:, 0] = engine.model.none_action
        return cls(ctx.to(engine.device), acts.to(engine.device))

    @classmethod
    def from_frames(cls, engine, frames: np.ndarray) -> StartBank:
        """One start per real first frame (M, H, W, 3): the window repeats it, as after a reset."""
        tokens = engine.encode(np.asarray(frames)[:, None])
        ctx, acts = engine.window(tokens, torch.zeros(len(frames), 0, dtype=torch.long))
        return cls(ctx, acts)


class DreamVecEnv(gym.vector.VectorEnv):
    """``num_envs`` dreams of a :class:`~hitchhiker.interactive.masked_dynamics_engine.
    DynamicsEngine` with :class:`~.heads.TaskHeads`, started from a :class:`StartBank`.

    ``temperature`` is the engine's sampling temperature in the dream (0: argmax tokens; World
    Models' tau); ``sample_heads`` draws reward and termination from the heads (else their argmax).
    ``reset(options={"starts": [i, ...]})`` picks the bank's starts instead of drawing them.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        engine,
        heads,
        starts: StartBank,
        num_envs: int = 64,
        horizon: int = 15,
        temperature: float | None = None,
        decode_steps: int | None = None,
        sample_heads: bool = True,
        render_mode: str | None = None,
    ):
        heads.check_engine(engine)
        if len(starts) < 1:
            raise ValueError("the start bank is empty: record some play to start dreams from")
        if starts.tokens.ndim != 3 or starts.tokens.shape[1] != engine.context:
            raise ValueError(
                f"starts must hold (M, W={engine.context}, N) token windows; "
                f"got {tuple(starts.tokens.shape)}"
            )
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int; got {num_envs!r}")
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be a positive int; got {horizon!r}")
        self.engine, self.heads, self.starts = engine, heads.eval(), starts
        if temperature is not None:
            engine.temperature = float(temperature)
        if decode_steps is not None:
            engine.decode_steps = int(decode_steps)
        self.num_envs, self.horizon, self.sample_heads = num_envs, horizon, sample_heads
        self.render_mode = render_mode
        h, w = engine.cfg.tokens.grid_h, engine.cfg.tokens.grid_w
        vocab = engine.cfg.tokens.vocab_size
        self.single_observation_space = gym.spaces.Box(0, vocab - 1, (h, w), np.int64)
        self.single_action_space = gym.spaces.Discrete(len(ACTION_NAMES))
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self.action_space = gym.spaces.MultiDiscrete([len(ACTION_NAMES)] * num_envs)
        self.grid = (h, w)
        self._tokens = self._actions = None
        self._t = np.zeros(num_envs, dtype=np.int64)
        self._gen = torch.Generator(device=engine.device)

    # -- episodes -----------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._gen.manual_seed(int(seed))
        unknown = sorted(set(options or {}) - {"starts"})
        if unknown:
            raise ValueError(f"DreamVecEnv.reset takes only the option 'starts'; got {unknown}")
        picks = (options or {}).get("starts")
        idx = self._draw(self.num_envs) if picks is None else self._check_starts(picks)
        self._tokens = self.starts.tokens[idx].clone()
        self._actions = self.starts.actions[idx].clone()
        self._t[:] = 0
        return self._obs(), {"start": idx.cpu().numpy()}

    def _draw(self, n: int) -> torch.Tensor:
        dev = self.starts.tokens.device
        gen = self._gen
        return torch.randint(len(self.starts), (n,), generator=gen, device=gen.device).to(dev)

    def _check_starts(self, picks) -> torch.Tensor:
        idx = torch.as_tensor(np.asarray(picks), dtype=torch.long)
        if (
            idx.shape != (self.num_envs,)
            or int(idx.min()) < 0
            or int(idx.max()) >= len(self.starts)
        ):
            raise ValueError(
                f"options['starts'] must be {self.num_envs} indices into the {len(self.starts)} "
                f"starts; got {np.asarray(picks).tolist()}"
            )
        return idx.to(self.starts.tokens.device)

    def _obs(self) -> np.ndarray:
        return self._tokens[:, -1].view(self.num_envs, *self.grid).cpu().numpy().astype(np.int64)

    def step(self, actions):
        if self._tokens is None:
            raise RuntimeError("call reset() before step()")
        acts = np.asarray(actions)
        if acts.shape != (self.num_envs,) or not np.issubdtype(acts.dtype, np.integer):
            raise ValueError(
                f"expected {self.num_envs} integer actions (one per dream), shaped "
                f"({self.num_envs},); got {acts.dtype} {acts.shape}"
            )
        if acts.min() < 0 or acts.max() >= len(ACTION_NAMES):
            raise ValueError(f"actions must lie in 0..{len(ACTION_NAMES) - 1}; got {acts.tolist()}")
        world = torch.as_tensor(acts, dtype=torch.long, device=self.engine.device)
        model_act = self.engine.model_actions(world)
        nxt = self.engine.predict(self._tokens, self._actions, model_act, self._gen)
        reward, ended = self.heads.sample(
            self.engine.features, world, self._gen, sample=self.sample_heads
        )
        if not getattr(self.heads, "terminates", False):
            ended = torch.zeros_like(ended)
        self._tokens = torch.cat([self._tokens[:, 1:], nxt[:, None]], 1)
        acts_window = torch.cat([self._actions[:, 1:], model_act[:, None]], 1)
        acts_window[:, 0] = self.engine.model.none_action
        self._actions = acts_window
        self._t += 1
        terminated = ended.cpu().numpy()
        truncated = (self._t >= self.horizon) & ~terminated
        obs, info = self._obs(), {}
        done = terminated | truncated
        if done.any():  # same-step autoreset: the next episode's first observation replaces it
            info["final_obs"] = obs.copy()
            info["_final_obs"] = done.copy()
            idx = self._draw(int(done.sum()))
            where = torch.as_tensor(np.flatnonzero(done), device=self._tokens.device)
            self._tokens[where] = self.starts.tokens[idx]
            self._actions[where] = self.starts.actions[idx]
            self._t[done] = 0
            obs = self._obs()
        return obs, reward.cpu().numpy().astype(np.float32), terminated, truncated, info

    def render(self):
        """The current frame of every dream, decoded: (B, H, W, 3) uint8."""
        if self._tokens is None:
            raise RuntimeError("call reset() before render()")
        return self.engine.decode(self._tokens[:, -1])


class DreamEnv(gym.Env):
    """One dream as a plain ``gymnasium.Env`` (what ``gymnasium.utils.env_checker`` checks).

    Same arguments as :class:`DreamVecEnv` (``num_envs`` is 1); ``reset(options={"start": i})``
    picks the bank's start ``i``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, engine, heads, starts: StartBank, render_mode=None, **kwargs):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array'; got {render_mode!r}")
        self.dreams = DreamVecEnv(engine, heads, starts, num_envs=1, **kwargs)
        self.render_mode = render_mode
        self.observation_space = self.dreams.single_observation_space
        self.action_space = self.dreams.single_action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        unknown = sorted(set(options or {}) - {"start"})
        if unknown:
            raise ValueError(f"DreamEnv.reset takes only the option 'start'; got {unknown}")
        start = (options or {}).get("start")
        if seed is None and start is None:  # a fresh draw from gymnasium's own generator
            seed = int(self.np_random.integers(2**31 - 1))
        opts = None if start is None else {"starts": [start]}
        obs, info = self.dreams.reset(seed=seed, options=opts)
        return obs[0], {"start": int(info["start"][0])}

    def step(self, action):
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            if not (
                isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu"
            ):
                raise ValueError(
                    f"expected one action, an int in 0..{len(ACTION_NAMES) - 1}; got {action!r}"
                )
        obs, reward, terminated, truncated, info = self.dreams.step(np.array([int(action)]))
        if "final_obs" in info:
            obs = info["final_obs"]
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}

    def render(self):
        return self.dreams.render()[0]
