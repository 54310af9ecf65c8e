"""Play the whole world model: an agent acting in the real world and in the dream, side by side.

The capstone of the road. One panel shows the real task and the world model's dream of it, both
driven by the same actions: the agent's (it reads the tokenizer's codes of the *real* frame, as when
it was judged) or yours, the moment you press a key. The dream runs on its own for at most
``horizon`` steps, then is shown the real frames again and imagines on from there: the
imagination-horizon slider. At horizon 1 every dream frame is a one-step prediction from the real
past; at 32 it is the agent's whole episode imagined, and you watch the dream drift, and the heads
pay for flowers the real world no longer has.

Memory on and off (``memory=``, a Stage IV :class:`~hitchhiker.memory.memory_engine.MemoryEngine`
on the same tokenizer): with memory on, the dream is the memory model's, and each re-anchoring gives
it the agent's *whole* real past (the frames older than its window go into its bank), so a place the
agent walked past is drawn from what was seen rather than invented. The task heads read the plain
dynamics' features only, so the memory dream's reward is read from its own frames by the tile reader
(:func:`~.tasks.pick_reward`), the reader's reward of Stage V's head figures.

Two layers, as :mod:`hitchhiker.play`: :class:`AgentPanel` is a plain engine (``reset(seed)``,
``step(action)``, its frame ``[real | dream]``) with the takeover logic, testable headlessly;
:class:`AgentPlay` (built by :func:`agent_play`) is the ipywidgets panel over it.

Driving: pressing a world action takes the controls ("you" drive); the action "agent" (the clock's)
is one step of the agent while it drives, and does nothing while you do; :meth:`AgentPanel.hand_back`
(the widget's driver toggle) gives the controls back. Worlds are the held-out test split's: seed ``s`` is test world ``s``.

Shapes: h x w token grid, N = h * w, W context frames, T steps so far.
"""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np
import torch

from hitchhiker.agents.dream import DreamVecEnv, StartBank
from hitchhiker.agents.tasks import make_task, pick_reward
from hitchhiker.engine import action_index
from hitchhiker.play import PlayController, PlayWidget
from hitchhiker.world import ACTION_NAMES, read_tiles
from hitchhiker.world.dataset import episode_seed

AGENT = "agent"
"""The extra action of the panel: one step chosen by the agent (the clock presses it)."""


class AgentPanel:
    """An engine whose frame is ``[real | dream]``: ``policy`` (a TokenPolicy) or you act in the
    real ``task`` and, with the same actions, in the dream of ``engine`` and its ``heads`` (or, with
    :attr:`use_memory`, of the ``memory`` engine)."""

    def __init__(self, engine, heads, policy, task: str = "flower_picker", horizon: int = 8,
                 steps: int = 32, gap: int = 4, seed: int = 0, memory=None):  # fmt: skip
        heads.check_engine(engine)
        if memory is not None:
            if memory.cfg.tokens != engine.cfg.tokens:
                raise ValueError(
                    f"the memory engine reads other tokens ({memory.cfg.tokens}) than the "
                    f"dream's ({engine.cfg.tokens}): both must sit on one tokenizer"
                )
            if task != "flower_picker":
                raise ValueError("the memory dream's reward is read for the flower picker only")
        self.engine, self.heads, self.policy, self.memory = engine, heads, policy, memory
        self._use_memory = False
        self.task = make_task(task, steps=steps)
        self.actions: list[str] = list(ACTION_NAMES) + [AGENT]
        self.horizon = horizon
        self.gap = int(gap)
        self.driver = AGENT
        self.gen = torch.Generator().manual_seed(seed)
        self.frames: dict[str, np.ndarray] = {}
        self.on_step: list = []
        """Called with no argument after every reset and step (the widget refreshes its line)."""

    @property
    def name(self) -> str:
        return f"{getattr(self.engine, 'name', 'dream')}: real | dream"

    @property
    def step_count(self) -> int:
        """Steps the real world took (the player's readout shows it: clock ticks while you drive,
        or after the episode's end, move nothing)."""
        return self.t

    @property
    def use_memory(self) -> bool:
        """Whether the dream is the memory engine's (then re-anchored from the real past now)."""
        return self._use_memory

    @use_memory.setter
    def use_memory(self, on: bool) -> None:
        if on and self.memory is None:
            raise ValueError("this panel has no memory engine: pass memory= (a MemoryEngine)")
        self._use_memory = bool(on)
        if self.frames:  # after a reset: the other dream starts from the real world, now
            self._anchor()
            self._shown()

    @property
    def horizon(self) -> int:
        return self._horizon

    @horizon.setter
    def horizon(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"horizon must be a positive int (dream steps); got {value!r}")
        self._horizon = int(value)

    # -- driving --------------------------------------------------------------------------------

    def take_over(self) -> None:
        """You drive: the clock's agent steps do nothing until :meth:`hand_back`."""
        self.driver = "you"
        self._shown()

    def hand_back(self) -> None:
        """The agent drives again, from wherever you left the world."""
        self.driver = AGENT
        self._shown()

    # -- the engine contract --------------------------------------------------------------------

    def reset(self, seed: int) -> np.ndarray:
        frame, _ = self.task.reset(seed=episode_seed("test", int(seed)))
        self.tokens = self.engine.encode(frame[None])[:, None]  # (1, T+1, N): the real past
        self.history = torch.zeros(1, 0, dtype=torch.long, device=self.engine.device)
        self.real_return = self.dream_return = 0.0
        self.t = 0
        self.done = False
        self.frames = {"real": frame}
        self._anchor()
        return self._shown()

    def step(self, action) -> np.ndarray:
        name = self.actions[action_index(action, self.actions)]
        if self.done:
            return self._shown()  # the episode is over: nothing moves until a reset
        if name == AGENT:
            if self.driver != AGENT:
                return self._shown()  # you drive: the clock waits
            obs = self.tokens[:, -1].view(1, *self.dream.grid).cpu().numpy()
            act = int(self.policy.act(obs, self.gen)[0])
        else:
            self.driver = "you"  # a key pressed is a takeover
            act = ACTION_NAMES.index(name)
        if self.since_anchor >= self.horizon:
            self._anchor()
        self.dream_return += self._dream_step(act)
        self.since_anchor += 1
        frame, real_r, term, trunc, _ = self.task.step(act)
        self.real_return += float(real_r)
        self.last_action = ACTION_NAMES[act]
        self.t += 1
        self.frames["real"] = frame
        a = torch.tensor([[act]], device=self.engine.device)
        self.tokens = torch.cat([self.tokens, self.engine.encode(frame[None])[:, None]], 1)
        self.history = torch.cat([self.history, a], 1)
        self.done = bool(term or trunc)
        return self._shown()

    # -- internals ------------------------------------------------------------------------------

    def _anchor(self) -> None:
        """Start the dream again from the real past: the last W real frames and their actions
        (the memory dream also remembers the older ones)."""
        if self.use_memory:
            self.memory.start_from(self.tokens, self.history.cpu().numpy())
            self.frames["dream"] = self.memory.decode(self.tokens[:, -1])[0]
        else:
            ctx, acts = self.engine.window(self.tokens, self.history)
            self.dream = DreamVecEnv(
                self.engine, self.heads, StartBank(ctx, acts), num_envs=1, horizon=10**9,
                sample_heads=False,
            )  # fmt: skip
            self.dream.reset(seed=0, options={"starts": [0]})
            self.frames["dream"] = self.dream.render()[0]
        self.since_anchor = 0

    def _dream_step(self, act: int) -> float:
        """One imagined step after ``act``: the new dream frame, and the reward it is paid (the
        heads', or what the tile reader reads in the memory dream's frames)."""
        if not self.use_memory:
            _, reward, *_ = self.dream.step(np.array([act]))
            self.frames["dream"] = self.dream.render()[0]
            return float(reward[0])
        before = self.frames["dream"]
        after = self.memory.decode(self.memory.imagine([act]))[0]
        self.frames["dream"] = after
        seen = read_tiles(np.stack([before, after]))
        return float(pick_reward(seen.kinds[0], seen.heading[0], act, seen.kinds[1]))

    def _shown(self) -> np.ndarray:
        for call in self.on_step:
            call()
        return self.view()

    def view(self) -> np.ndarray:
        """The frame ``[real | dream]`` as it stands, uint8 (64, 64 + gap + 64, 3)."""
        bar = np.full((64, self.gap, 3), 255, dtype=np.uint8)
        return np.concatenate([self.frames["real"], bar, self.frames["dream"]], axis=1)

    def describe(self) -> str:
        """One line: who drives, both returns, the dream's age."""
        end = " · the episode is over: Reset to play again" if self.done else ""
        paid = "read from its frames" if self.use_memory else "the heads'"
        memory = ""
        if self.memory is not None:
            memory = f" · memory {'on, ' + self.memory.describe() if self.use_memory else 'off'}"
        return (
            f"driver: {self.driver} · step {self.t} · real return {self.real_return:g} · "
            f"dream return ({paid}) {self.dream_return:g} · the dream was shown the real "
            f"world {self.since_anchor} steps ago (horizon {self.horizon}){memory}{end}"
        )


class AgentPlay(w.VBox):
    """The capstone panel: the player over an :class:`AgentPanel`, the driver toggle, the
    imagination-horizon slider, the memory toggle (with a memory engine) and a status line. CSS
    hooks: class ``hh-agent``; ``hh-driver``, ``hh-horizon``, ``hh-memory``, ``hh-agent-status``."""

    def __init__(self, panel: AgentPanel, seed: int = 0, scale: int = 4, fps: float = 4, **kw):
        super().__init__()
        self.panel = panel
        self.status = w.HTML(value="")
        self.status.add_class("hh-agent-status")
        panel.on_step.append(self._show)
        self.driver = w.ToggleButtons(options=["agent", "you"], value="agent", description="driver")
        self.driver.add_class("hh-driver")
        self.driver.observe(self._on_driver, names="value")
        self.horizon = w.IntSlider(value=panel.horizon, min=1, max=32, description="horizon",
                                   continuous_update=False)  # fmt: skip
        self.horizon.add_class("hh-horizon")
        self.horizon.observe(lambda ch: setattr(panel, "horizon", int(ch["new"])), names="value")
        self.player = PlayWidget(
            PlayController(panel, seed=seed, auto_action=AGENT),
            scale,
            fps,
            kw.pop("keyboard", True),
        )
        caption = w.HTML(
            value="<small><b>real world</b> · <b>dream</b> (the same actions). Press Play: the "
            "agent drives; press any action to take over; the driver toggle hands it back.</small>"
        )
        controls = [self.driver, self.horizon]
        self.memory = w.ToggleButtons(options=["off", "on"], value="off", description="memory")
        self.memory.add_class("hh-memory")
        self.memory.observe(self._on_memory, names="value")
        if panel.memory is not None:
            controls.append(self.memory)
        self.children = [caption, self.player, self.status, w.HBox(controls)]
        self.add_class("hh-agent")
        self._show()

    @property
    def controller(self) -> PlayController:
        return self.player.controller

    def _on_driver(self, change: dict) -> None:
        if change["new"] == "you":
            self.panel.take_over()
        else:
            self.panel.hand_back()

    def _on_memory(self, change: dict) -> None:
        self.panel.use_memory = change["new"] == "on"
        self.controller.show(self.panel.view())

    def _show(self) -> None:
        self.status.value = f"<small>{html.escape(self.panel.describe())}</small>"
        if hasattr(self, "driver") and self.driver.value != self.panel.driver:
            self.driver.value = self.panel.driver


def agent_play(
    engine, heads, policy, seed: int = 0, horizon: int = 8, memory=None, **kw
) -> AgentPlay:
    """The capstone widget: ``policy`` in held-out test world ``seed``, real beside dream (and,
    given a Stage IV ``memory`` engine, a toggle that makes the dream remember)."""
    keys = ("scale", "fps", "keyboard")
    panel = AgentPanel(engine, heads, policy, horizon=horizon, memory=memory,
                       **{k: v for k, v in kw.items() if k not in keys})  # fmt: skip
    return AgentPlay(panel, seed, **{k: v for k, v in kw.items() if k in keys})
