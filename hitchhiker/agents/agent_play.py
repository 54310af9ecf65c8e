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
agent walked past is drawn from what was seen rather than invented.

Walls on and off (``walls=``, notebook 04's ``dynamics_walls``; with memory too, ``memory_walls=``):
the agent was trained in a dream that never learned what blocks the explorer (its play only stepped
onto open tiles), so there a step into water scrolls the view as if the water were grass. With walls
on, the dream is an engine trained on play that bumps into rock and water: walk into the lake and
both panels stay put. The four dreams form a 2 x 2, memory by walls; each is the same agent's
actions imagined by another world model.

The task heads read the features of the dynamics they were fitted on only, so every dream but that
one is paid by what the tile reader reads in its own frames (:func:`~.tasks.pick_reward`, the
reader's reward of Stage V's head figures).

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
    :attr:`use_memory` and :attr:`use_walls`, of the ``memory``, ``walls`` or ``memory_walls``
    engine: any engine on the same tokenizer with ``start_from`` and ``imagine``)."""

    def __init__(
        self,
        engine,
        heads,
        policy,
        task: str = "flower_picker",
        horizon: int = 8,
        steps: int = 32,
        gap: int = 4,
        seed: int = 0,
        memory=None,
        walls=None,
        memory_walls=None,
    ):
        heads.check_engine(engine)
        if memory_walls is not None and (walls is None or memory is None):
            raise ValueError(
                "memory_walls= is the dream with memory and walls: pass memory= and "
                "walls= too (each toggle then has a dream for either setting)"
            )
        if walls is not None and memory is not None and memory_walls is None:
            raise ValueError(
                "with memory= and walls=, pass memory_walls= too (the dream with both)"
            )
        self.dreams = {
            key: other
            for key, other in (
                ((True, False), memory),
                ((False, True), walls),
                ((True, True), memory_walls),
            )
            if other is not None
        }
        """The dreams paid by the tile reader, by (memory, walls); (False, False) is the heads'."""
        for other in self.dreams.values():
            if other.cfg.tokens != engine.cfg.tokens:
                raise ValueError(
                    f"{other.name} reads other tokens ({other.cfg.tokens}) than the dream's "
                    f"({engine.cfg.tokens}): all dreams must sit on one tokenizer"
                )
        if self.dreams and task != "flower_picker":
            raise ValueError("the other dreams' reward is read for the flower picker only")
        self.engine, self.heads, self.policy = engine, heads, policy
        self.memory, self.walls = memory, walls
        self._use = (False, False)  # (memory, walls)
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
        """Whether the dream remembers (the memory engine's, re-anchored from the real past)."""
        return self._use[0]

    @use_memory.setter
    def use_memory(self, on: bool) -> None:
        self.choose(bool(on), self._use[1])

    @property
    def use_walls(self) -> bool:
        """Whether the dream is an engine that learned walls."""
        return self._use[1]

    @use_walls.setter
    def use_walls(self, on: bool) -> None:
        self.choose(self._use[0], bool(on))

    def choose(self, memory: bool, walls: bool) -> None:
        """Dream with memory and/or walls; the new dream starts from the real world, now."""
        key = (bool(memory), bool(walls))
        if key != (False, False) and key not in self.dreams:
            need = {
                (True, False): "no memory engine: pass memory= (a MemoryEngine)",
                (False, True): "no engine with walls: pass walls= (e.g. dynamics_walls)",
                (True, True): "no dream with memory and walls: pass memory_walls=",
            }
            raise ValueError(f"this panel has {need[key]}")
        self._use = key
        if self.frames:  # after a reset
            self._anchor()
            self._shown()

    @property
    def dreamer(self):
        """The engine dreaming now (the heads' own, or one of :attr:`dreams`)."""
        return self.dreams.get(self._use, self.engine)

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
        (the memory dreams also remember the older ones)."""
        if self._use in self.dreams:
            self.dreamer.start_from(self.tokens, self.history.cpu().numpy())
            self.frames["dream"] = self.dreamer.decode(self.tokens[:, -1])[0]
        else:
            ctx, acts = self.engine.window(self.tokens, self.history)
            self.dream = DreamVecEnv(
                self.engine,
                self.heads,
                StartBank(ctx, acts),
                num_envs=1,
                horizon=10**9,
                sample_heads=False,
            )
            self.dream.reset(seed=0, options={"starts": [0]})
            self.frames["dream"] = self.dream.render()[0]
        self.since_anchor = 0

    def _dream_step(self, act: int) -> float:
        """One imagined step after ``act``: the new dream frame, and the reward it is paid (the
        heads', or what the tile reader reads in the other dreams' frames)."""
        if self._use not in self.dreams:
            _, reward, *_ = self.dream.step(np.array([act]))
            self.frames["dream"] = self.dream.render()[0]
            return float(reward[0])
        before = self.frames["dream"]
        after = self.dreamer.decode(self.dreamer.imagine([act]))[0]
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
        """One line: who drives, both returns, the dream's age, which dream."""
        end = " · the episode is over: Reset to play again" if self.done else ""
        paid = "read from its frames" if self._use in self.dreams else "the heads'"
        memory = walls = ""
        if self.memory is not None:
            said = getattr(self.dreamer, "describe", lambda: self.dreamer.name)
            memory = f" · memory {'on, ' + said() if self.use_memory else 'off'}"
        if self.walls is not None:
            walls = f" · walls {'on, ' + self.dreamer.name if self.use_walls else 'off'}"
        return (
            f"driver: {self.driver} · step {self.t} · real return {self.real_return:g} · "
            f"dream return ({paid}) {self.dream_return:g} · the dream was shown the real "
            f"world {self.since_anchor} steps ago (horizon {self.horizon}){memory}{walls}{end}"
        )


class AgentPlay(w.VBox):
    """The capstone panel: the player over an :class:`AgentPanel`, the driver toggle, the
    imagination-horizon slider, the memory and walls toggles (each with its engines) and a status
    line. CSS hooks: class ``hh-agent``; ``hh-driver``, ``hh-horizon``, ``hh-memory``, ``hh-walls``,
    ``hh-agent-status``."""

    def __init__(self, panel: AgentPanel, seed: int = 0, scale: int = 4, fps: float = 4, **kw):
        super().__init__()
        self.panel = panel
        self.status = w.HTML(value="")
        self.status.add_class("hh-agent-status")
        panel.on_step.append(self._show)
        self.driver = w.ToggleButtons(options=["agent", "you"], value="agent", description="driver")
        self.driver.add_class("hh-driver")
        self.driver.observe(self._on_driver, names="value")
        self.horizon = w.IntSlider(
            value=panel.horizon, min=1, max=32, description="horizon", continuous_update=False
        )
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
        self.walls = w.ToggleButtons(options=["off", "on"], value="off", description="walls")
        self.walls.add_class("hh-walls")
        self.walls.observe(self._on_walls, names="value")
        if panel.walls is not None:
            controls.append(self.walls)
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

    def _on_walls(self, change: dict) -> None:
        self.panel.use_walls = change["new"] == "on"
        self.controller.show(self.panel.view())

    def _show(self) -> None:
        self.status.value = f"<small>{html.escape(self.panel.describe())}</small>"
        if hasattr(self, "driver") and self.driver.value != self.panel.driver:
            self.driver.value = self.panel.driver


def agent_play(
    engine,
    heads,
    policy,
    seed: int = 0,
    horizon: int = 8,
    memory=None,
    walls=None,
    memory_walls=None,
    **kw,
) -> AgentPlay:
    """The capstone widget: ``policy`` in held-out test world ``seed``, real beside dream (and,
    given a Stage IV ``memory`` engine, a toggle that makes the dream remember; given engines
    that learned walls, a toggle that makes the dream stop at them)."""
    keys = ("scale", "fps", "keyboard")
    panel = AgentPanel(
        engine,
        heads,
        policy,
        horizon=horizon,
        memory=memory,
        walls=walls,
        memory_walls=memory_walls,
        **{k: v for k, v in kw.items() if k not in keys},
    )
    return AgentPlay(panel, seed, **{k: v for k, v in kw.items() if k in keys})
