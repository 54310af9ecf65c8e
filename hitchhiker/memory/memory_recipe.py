"""Recipe "memory": teach the Stage III dynamics model to read a retrieval memory.

The model (:mod:`.memory_dynamics_model`) is the shipped masked dynamics model plus a reader for M
retrieved frames. It starts from the dynamics weights and is fine-tuned on walks that come back
(the world's ``loop`` walks, beside its ``random`` ones), so that the frame it predicts often shows
land that left the W-frame window but lies in memory: the only way to draw it right is to read it.

For every training window (target frame j+1, context frames j-W+1..j) the memory is what a
:class:`~.frame_bank.FrameBank` holds of the frames that already left the window (0..j-W), written
with their true poses; it is queried for the view the action leads to (the pose of frame j plus
the action's move: a blocked move is not known before the frame is drawn, at play time neither),
by greedy coverage of that view (WorldMem's set cover). The retrievals depend only on the walk, so
they are computed once for the whole dataset (:func:`window_retrievals`).

The objective is Stage III's MaskGIT loss (:func:`~hitchhiker.interactive.masked_dynamics_recipe.
dynamics_loss`'s augmentations included), with the window's context noise raised and the
memory's kept low (``window_noise``, ``memory_noise``): the model must learn that where its own
drifting frames and what it saw disagree, what it saw is right.

Shapes: B batch, E episodes, T steps, F = W + 1 frames per window, M memory frames, h x w token
grid, N = h * w tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from hitchhiker.interactive import masked_dynamics_recipe as dynamics
from hitchhiker.interactive.masked_dynamics_recipe import (
    WindowDataset,
    core_config,
    corrupt_context,
    corrupted_windows,
    grid_of,
    loss_settings,
    masked_frames_loss,
    model_actions,
    train_windows,
)
from hitchhiker.interactive.revisit import revisit_set
from hitchhiker.masks.tokenizer_recipe import policies_of
from hitchhiker.memory.frame_bank import FrameBank, MemoryPolicy
from hitchhiker.memory.memory_dynamics_model import MemoryDynamicsModel, warp_memory
from hitchhiker.memory.memory_engine import MemoryEngine, explorer_cell
from hitchhiker.memory.pose import ACTION_DELTAS
from hitchhiker.memory.revisit_benchmark import evaluate_way_back, evaluate_whole_walk
from hitchhiker.recipe import Deps, Need
from hitchhiker.tokens import encode_frames, same_tokens_need, tokenizer_needs
from hitchhiker.train import TrainConfig
from hitchhiker.world.dataset import LEARNING_WORLD, DataConfig, record

BASE_FIELDS = (
    "tokens",
    "action_source",
    "actions",
    "action_codes",
    "pad_action",
    "context",
    "dim",
    "depth",
    "heads",
    "mask_schedule",
    "decode_steps",
    "temperature",
    "choice_temperature",
)
"""Fields the memory model takes from the dynamics model it starts from (its shape and its play)."""


def window_retrievals(
    positions, actions, context: int, policy: MemoryPolicy, view=(8, 8), tokens=None
):
    """Retrieve, for every training window, from the frames that left it.

    positions (E, T+1, 2) true poses, actions (E, T) world actions, ``tokens`` (E, T+1, h, w)
    the frames' tokens (needed by a policy whose updates read them, ``update_changed``; without
    them the bank holds blanks). Every frame is written (write number = frame index), the
    explorer's cell left out. Returns numpy arrays, indexed
    [e, j] for the window whose target is frame j+1: ``index`` (E, T, M) frame indices (0 where
    the slot is empty), ``offset`` (E, T, M, 2), ``age`` (E, T, M), ``known`` (E, T, M, R, C) the
    fresh cells of each retrieved frame (all False in an empty slot).
    """
    positions, actions = np.asarray(positions), np.asarray(actions)
    e, t = actions.shape
    m, (rows, cols) = policy.k, view
    index = np.zeros((e, t, m), dtype=np.int64)
    offset = np.zeros((e, t, m, 2), dtype=np.int64)
    age = np.ones((e, t, m), dtype=np.int64)
    known = np.zeros((e, t, m, rows, cols), dtype=bool)
    blank = np.zeros(view, dtype=np.int64)  # retrieval reads poses, not tokens
    grids = None if tokens is None else np.asarray(torch.as_tensor(tokens).cpu())
    centre = explorer_cell(view)
    for i in range(e):
        bank = FrameBank(policy, view)
        for j in range(t):
            leaving = j - context  # the frame that just left the window of target j + 1
            if leaving >= 0:
                seen = blank if grids is None else grids[i, leaving]
                bank.write(seen, positions[i, leaving], leaving, ignore=centre)
            target = positions[i, j] + ACTION_DELTAS[int(actions[i, j])]
            got = bank.retrieve(target, j + 1)
            index[i, j] = np.maximum(got.index, 0)  # write number = frame index: all written
            offset[i, j] = got.offset
            age[i, j] = np.maximum(got.age, 1)
            known[i, j] = got.fresh & got.valid[:, None, None]
    return {"index": index, "offset": offset, "age": age, "known": known}


def walk_records(cfg, split: str, episodes: int, period: int | None = None) -> list:
    """The recordings of ``episodes`` walks of ``split`` per policy of ``cfg.data``, the policies
    one after another (``loop`` walks come back every ``period`` steps, default
    :class:`~hitchhiker.world.policies.LoopWalk`'s, and edit the world on the way out every
    ``cfg.edit_every`` steps)."""
    loop = {"edit_every": cfg.edit_every} | ({} if period is None else {"period": period})
    return [
        record(
            split,
            episodes,
            cfg.data.episode_steps,
            pol,
            world=LEARNING_WORLD,
            policy_kwargs=loop if pol == "loop" else None,
            progress=False,
        )
        for pol in policies_of(cfg.data)
    ]


def walk_tokens(cfg, split: str, episodes: int, tokenizer, period: int | None = None):
    """(tokens (E, T+1, h, w), actions (E, T), positions (E, T+1, 2)) of :func:`walk_records`'s
    walks, encoded once."""
    parts = walk_records(cfg, split, episodes, period)
    frames = np.concatenate([r.frames for r in parts])
    tokens = encode_frames(tokenizer, frames.reshape(-1, *frames.shape[2:]))
    tokens = tokens.view(*frames.shape[:2], *tokens.shape[1:])
    actions = np.concatenate([r.actions for r in parts])
    return tokens, actions, np.concatenate([r.positions for r in parts])


class MemoryWindowDataset(Dataset):
    """Stage III's windows, each with the memory retrieved for its target frame.

    Item: the window's {"tokens": (F, h, w), "actions": (F,)} plus "memory" (M, h, w) stored
    token ids, "offset" (M, 2), "age" (M,), "known" (M, h, w)."""

    def __init__(self, tokens, actions, retrievals: dict, context: int, pad_action: int):
        self.windows = WindowDataset(tokens, actions, context, pad_action)
        self.tokens = tokens
        self.ret = {k: torch.as_tensor(v) for k, v in retrievals.items()}
        self.steps = self.windows.steps

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = self.windows[i]
        e, j = divmod(i, self.steps)
        item["memory"] = self.tokens[e, self.ret["index"][e, j]]
        for key in ("offset", "age", "known"):
            item[key] = self.ret[key][e, j]
        return item


def memory_loss(
    model,
    batch,
    context_noise=0.0,
    pad_prob=0.0,
    pad_action=0,
    schedule="cosine",
    explorer_weight=1.0,
    last_weight=1.0,
    memory_noise=None,
):
    """Stage III's MaskGIT loss with the memory read by the last target slot: (loss, metrics).

    ``last_weight`` weighs the last slot's tokens (the one the memory was retrieved for) against
    the earlier slots'; "memory_acc" is its accuracy on hidden cells the memory covers."""
    net = getattr(model, "module", model)
    tokens, context, actions = corrupted_windows(net, batch, context_noise, pad_prob, pad_action)
    stored = corrupt_context(  # the last frame rides along untouched: corrupt_context spares it
        torch.cat([batch["memory"].flatten(2), tokens[:, -1:]], 1),
        context_noise if memory_noise is None else memory_noise,
        net.cfg.vocab_size,
    )[:, :-1]
    memory = warp_memory(
        stored.view_as(batch["memory"]),
        batch["offset"],
        batch["age"],
        batch["known"],
        net.grid,
        net.mask_id,
    )
    loss, right, hide = masked_frames_loss(
        model, net, tokens, context, actions, schedule, explorer_weight, last_weight, memory=memory
    )
    covered = (memory.tokens != net.mask_id).any(1) & hide[:, -1]  # (B, N)
    return loss, {
        "masked_acc": right[hide].float().mean().detach(),
        "memory_acc": right[:, -1][covered].float().mean().detach(),
    }


@dataclass
class Config(dynamics.Config):
    """The dynamics model of Stage III, fine-tuned to read M retrieved frames (recipe "memory").

    Its shape and its play (width, window, actions, decoding) are bound from the dynamics model it
    starts from; only the memory's own settings and the fine-tuning are its own."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "tokenizer": "oracle",
            "eval_horizon": 16,
            "val_episodes": 2,
            "revisit_walks": 2,
            "data": {"episodes": 6, "episode_steps": 24, "eval_episodes": 2},
            "train": {"steps": 30, "batch_size": 16, "warmup_steps": 3, "checkpoint_every": 0},
        },
        "cpu": {},
        "gpu": {"data": {"episodes": 1024}, "train": {"steps": 4000, "lr": 5e-4}},
        "large": {"data": {"episodes": 2048}, "train": {"steps": 8000, "lr": 4e-4}},
    }

    name: str = "memory"
    """Model name: figures read "stage4.<name>.<figure>"."""
    start_from: str = "dynamics"
    """The Stage III engine whose weights are fine-tuned (one of :data:`START_FROM`):
    ``"dynamics_walls"`` learned from play that walks into rock and water, and so draws walls."""
    memory_frames: int = 2
    """M: retrieved frames the model reads per predicted frame (WorldMem found more is not better)."""
    retrieve: str = "overlap"
    """How training windows retrieve ("overlap": greedy coverage of the target view)."""
    last_weight: float = 3.0
    """Loss weight of the slot that reads the memory against the window's earlier slots."""
    window_noise: float = 0.3
    """Context noise of the window while learning to read the memory (U(0, level) per window,
    as Stage III's ``context_noise``): at play time the window holds the engine's own drifting
    frames and the memory what was seen, so the model must learn to trust the memory where the
    two disagree; the same low noise on both, and it trusts the window."""
    memory_noise: float = 0.02
    """Context noise of the memory's tokens (seen frames: nearly right)."""
    update: bool = False
    """The bank's update rule in training and play (see :class:`~.frame_bank.MemoryPolicy`): off,
    every remembered cell stays readable, and the freshest retrieved frame wins a cell (the cell
    read); on, knowledge of a view splits over many frames, of which M are read (measured: 0.45 of
    the way back covered against 0.99)."""
    update_changed: bool = True
    """With ``update`` off, a new frame still overwrites the cells it shows differently (an edit,
    a sheep gone): measured with the model trained before it, edits found on return rose from
    0.60 to 0.73 (32 walks, K = 64), every other way-back figure rose too."""
    window_first: bool = True
    """At play (training retrievals do not apply it): a remembered cell that a frame still in the
    W-frame window shows differently is not read, the window being newer. Without it an edit of
    the last W steps is drawn back as it was before (the bank holds only frames that left the
    window); measured with the shipped model, edits found on return (K = 64, 96 walks) 0.936
    without, 0.964 with (see the ``window_late`` row)."""
    edit_every: int = 4
    """The training ``loop`` walks interact every this many steps on the way out, so the memory
    sees the world change and learns that what it saw last is what is there."""
    revisit_periods: tuple[int, ...] = (16, 32, 64)
    """Evaluation: K, steps from leaving a place to standing on it again (half out, half back)."""
    way_back_periods: tuple[int, ...] = (128, 256)
    """Evaluation, condition (i) only: longer K (imagining the whole walk, condition (ii), would
    cost K frames per walk for a figure drift, not memory, decides)."""
    ablations: bool = True
    """Evaluation: also the oracle memory, the other retrieval policies and the update rules
    (:data:`POLICY_VARIANTS`, :data:`UPDATE_VARIANTS`); a variant that asks another question
    (does the memory keep walls?) measures its revisits without them."""
    revisit_walks: int = 96
    """Evaluation: held-out walks that come back (each one sample of the 95% intervals)."""
    revisit_edit_every: int = 4
    """Evaluation: the walks that change the world interact every this many steps on the way out
    (K the longest of ``revisit_periods``)."""
    data: DataConfig = field(
        default_factory=lambda: DataConfig(
            episodes=128, episode_steps=96, policy=("loop", "random"), eval_episodes=16
        )
    )
    """Walks that come back (``loop``) and wander (``random``): the memory's training data."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=600, batch_size=32, lr=5e-4, warmup_steps=30)
    )
    """Fine-tuning from the dynamics weights: windows per step, learning rate, seed."""

    def __post_init__(self):
        super().__post_init__()
        if self.memory_frames < 1:
            raise ValueError(f"memory_frames must be >= 1; got {self.memory_frames}")
        if self.last_weight <= 0:
            raise ValueError(f"last_weight must be > 0; got {self.last_weight}")
        for name in ("window_noise", "memory_noise"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1); got {getattr(self, name)}")
        if self.revisit_walks < 2 or min((*self.revisit_periods, *self.way_back_periods)) < 2:
            raise ValueError(
                f"revisit_walks and revisit_periods must be >= 2 (an interval needs two walks, a "
                f"walk out and back two steps); got {self.revisit_walks}, {self.revisit_periods}"
            )
        self.policy()  # validates ``retrieve``
        check_start(self.start_from)

    def policy(self) -> MemoryPolicy:
        """The bank's policy the memory is trained with: every frame written, M retrieved."""
        return MemoryPolicy(
            write="every",
            retrieve=self.retrieve,
            k=self.memory_frames,
            update=self.update,
            update_changed=self.update_changed,
            window_first=self.window_first,
        )


START_FROM = ("dynamics", "dynamics_noaug", "dynamics_walls")
"""The Stage III engines a memory may start from: the masked ones with the world's own actions."""


def check_start(start_from: str) -> str:
    """``start_from``, or a clear error (before any dependency is trained for it)."""
    if start_from not in START_FROM:
        raise ValueError(
            f"start_from must name a masked dynamics model with true actions, one of "
            f"{START_FROM}; got {start_from!r}"
        )
    return start_from


VARIANTS: dict[str, dict[str, Any]] = {
    "walls": {
        "start_from": "dynamics_walls",
        "data": {"policy": ("loop", "bumper")},
        "name": "memory_walls",
        "ablations": False,
    },
}
"""Config overrides of the zoo's variant "memory_walls": the same fine-tuning, started from the
engine that learned walls (Stage III's ``dynamics_walls``) and on walks that still bump into
them (``bumper`` instead of ``random`` beside the ``loop`` walks), so that the memory keeps the
rule the shipped memory never saw (its probes: :mod:`hitchhiker.interactive.walls`)."""


def needs(values: dict[str, Any]) -> dict[str, Need]:
    """The tokenizer, and the dynamics model (true actions) the memory model starts from."""
    return {
        **tokenizer_needs(values),
        "dynamics": same_tokens_need(check_start(values["start_from"]), values),
    }


def bind(values: dict[str, Any], deps: Deps) -> dict[str, Any]:
    """The dynamics model's shape, actions and decoding: the memory model must match them."""
    base = deps["dynamics"].shipped_config
    return {k: getattr(base, k) for k in BASE_FIELDS}


def build(cfg: Config) -> MemoryDynamicsModel:
    """The memory model of a bound config (memory weights fresh, the rest still to be loaded)."""
    torch.manual_seed(cfg.train.seed)
    return MemoryDynamicsModel(
        core_config(cfg),
        cfg.actions,
        cfg.context,
        grid_of(cfg),
        cfg.memory_frames,
        oldest_age=oldest_age(cfg),
    )


def oldest_age(cfg: Config) -> int:
    """The oldest age the model reads as itself: the last age of the oldest age bucket that the
    training walks fill; older memories read as that old.

    A walk of T steps reads ages 1..T-1, and an age is read through its bucket floor(log2 age)
    (bucket b holds ages 2^b..2^(b+1)-1). The last bucket a walk reaches is filled only in part,
    and only by the walk's last reads of its first frames: its embedding is barely trained.
    Measured on the shipped model (32 held-out walks at K = 256, condition (i)), memory-needing
    tiles right: 0.945 with ages read up to 95 (bucket 6, 64-127, reached by 96-step walks in
    part), 0.990 up to 63 (bucket 5, filled)."""
    oldest = cfg.data.episode_steps - 1
    bucket = oldest.bit_length() - 1  # floor(log2 oldest)
    if oldest == 2 ** (bucket + 1) - 1:  # the walk fills its last bucket
        return oldest
    return max(2**bucket - 1, 1)


def fit(cfg: Config, deps: Deps, run_dir=None, progress: bool = True) -> MemoryDynamicsModel:
    """Start from the dynamics model, record walks that come back, fine-tune on their windows."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the memory model")
    tokens, world_actions, positions = walk_tokens(cfg, "train", cfg.data.episodes, tokenizer)
    actions = model_actions(cfg, tokens, world_actions, deps)
    found = window_retrievals(positions, world_actions, cfg.context, cfg.policy(), tokens=tokens)
    data = MemoryWindowDataset(tokens, actions, found, cfg.context, cfg.pad_action)
    model = build(cfg).start_from(deps["dynamics"])
    kw = {
        **loss_settings(cfg),
        "context_noise": cfg.window_noise,
        "memory_noise": cfg.memory_noise,
        "last_weight": cfg.last_weight,
    }
    return train_windows(model, data, lambda m, b: memory_loss(m, b, **kw), cfg, run_dir, progress)


POLICY_VARIANTS: dict[str, dict[str, Any]] = {
    "recency": {"retrieve": "recency"},
    "random": {"retrieve": "random"},
    "novel_writes": {"write": "novel"},
    "capacity8": {"capacity": 8, "evict": "least_covering"},
}
"""The policies measured beside the trained one (condition (i), estimated pose, longest of
``revisit_periods``): retrieval by recency or at random (WorldMem's control), writing only novel
views, and a budget of 8 frames that forgets the frame covering least."""


UPDATE_VARIANTS: dict[str, dict[str, Any]] = {
    "no_update": {"update": False, "update_changed": False, "window_first": False},
    "update_all": {"update": True},
    "window_late": {"window_first": False},
}
"""The update rules measured beside the trained one (a newer frame overwrites only the cells it
shows differently, and the window's frames already do before they are written), on the walks
that edit: nothing ever overwritten, every cell a newer frame shows overwritten, and the window's
frames overwriting only once written (``window_first`` off)."""


def evaluate(model: MemoryDynamicsModel, cfg: Config, deps: Deps) -> dict[str, float]:
    """Revisit figures on held-out walks that leave a place and come back K steps later, of the
    memory engine (true and estimated pose) and of the same model with its memory off (the Stage
    III engine, logit for logit), named ``stage4.<name>.<condition>.k<K>.<figure>``.

    Condition (i) (:func:`~.revisit_benchmark.evaluate_way_back`): the real way out given, the way
    back imagined, for K in ``revisit_periods`` and ``way_back_periods``; at the longest K of
    ``revisit_periods`` also on walks that change the world on the way out (``k<K>_edits``: are
    the edits found on return?), with an oracle memory (the real frames of the way back written,
    the ceiling of the read path) and with the other policies of :data:`POLICY_VARIANTS`; the
    walks that edit also under the update rules of :data:`UPDATE_VARIANTS`.
    Condition (ii) (:func:`~.revisit_benchmark.evaluate_whole_walk`): the whole walk imagined from
    its first frame, K in ``revisit_periods``. 95% intervals over ``revisit_walks`` walks."""
    tokenizer = deps["tokenizer"]
    cfg.tokens.check(tokenizer, "the memory model")
    model.eval()
    last = max(cfg.revisit_periods)

    def engine_for(**kw):
        return MemoryEngine(model, tokenizer, seed=cfg.train.seed, cfg=cfg, **kw)

    def variants(k: int, edit_every: int) -> list:
        def policies(table):
            return [
                (f"policy_{label}", {"policy": replace(cfg.policy(), **change)}, False, False)
                for label, change in table.items()
            ]

        if not cfg.ablations:
            return []
        if edit_every:  # what the update rule buys: the edits walks under the other two rules
            return policies(UPDATE_VARIANTS)
        if k != last:
            return []
        return [("oracle", {"pose": "true"}, True, True)] + policies(POLICY_VARIANTS)

    controls = (*POSES, ("no_memory", {"use_memory": False}, False))
    return revisit_figures(cfg, engine_for, controls, variants)


POSES = (("true_pose", {"pose": "true"}, True), ("estimated_pose", {"pose": "estimated"}, False))
"""The memory engine's two poses as revisit controls: (label, engine keywords, true poses given)."""


def revisit_figures(
    cfg: Config, engine_for, controls, variants=None, window: int | None = None
) -> dict[str, float]:
    """The revisit figures of a memory engine, named ``stage4.<name>.<control>.<set>.<figure>``.

    Sets of held-out walks: K in ``revisit_periods`` (conditions (i) and (ii)), K in
    ``way_back_periods`` (condition (i)), and walks that edit at the longest K of
    ``revisit_periods`` (``k<K>_edits``, both conditions). ``engine_for(**kw)`` builds an engine;
    each of ``controls`` (label, keywords, true poses given) is scored on every set;
    ``variants(K, edit_every)`` names more (label, keywords, true poses given, oracle), scored in
    condition (i) on that set only. ``window`` (default the engine's own, ``cfg.context``): the
    window beyond which land counts as remembered (a wider window is scored on the same cells)."""
    prefix = f"stage4.{cfg.name}"
    window = cfg.context if window is None else window
    out: dict[str, float] = {}
    n, last = cfg.revisit_walks, max(cfg.revisit_periods)
    sets = [(f"k{k}", k, 0, True) for k in cfg.revisit_periods]
    sets += [(f"k{k}", k, 0, False) for k in cfg.way_back_periods]
    sets.append((f"k{last}_edits", last, cfg.revisit_edit_every, True))  # the world changed
    for tag, k, edit_every, whole in sets:
        walks = revisit_set("test", 3 * n, k, n, water=False, edit_every=edit_every)
        out[f"{prefix}.{tag}.revisit_walks"] = float(walks.episodes)
        for label, kw, poses in controls:
            engine = engine_for(**kw)
            name = f"{prefix}.{label}.{tag}"
            out.update(evaluate_way_back(engine, walks, name, window, poses=poses))
            if whole:
                out.update(evaluate_whole_walk(engine, walks, name, poses=poses))
        for label, kw, poses, oracle in variants(k, edit_every) if variants else ():
            name = f"{prefix}.{label}.{tag}"
            engine = engine_for(**kw)
            out.update(evaluate_way_back(engine, walks, name, window, poses=poses, oracle=oracle))
    return out
