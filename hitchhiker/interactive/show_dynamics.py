"""Pictures of Stage III's token models for notebook 04: masks, decoding steps, latent actions.

The notebooks carry the story and the package carries the logic, so each picture here is one call
in a notebook cell. Three pictures:

- :func:`plot_attention_masks` draws who may attend to whom in the masked dynamics model: the
  block-causal mask of play (bidirectional within a frame, causal across frames) and the training
  mask, in which a hidden copy of each frame attends to the clean frames before it and to itself;
- :func:`decoding_history` / :func:`show_decoding` run one frame of MaskGIT decoding in a
  :class:`~.masked_dynamics_engine.DynamicsEngine` and show the frame after each parallel step, tiles
  still hidden drawn grey;
- :func:`show_transitions_by_code` is a filmstrip of recorded transitions (frame t -> frame t+1)
  grouped by the latent action the LAM inferred for them, each labelled with the true action.

Every function draws with matplotlib and returns the figure; nothing changes a model.

Shapes: F frames, N = h * w tokens per frame, E episodes, T steps, H x W pixels (64 x 64).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from hitchhiker.interactive.masked_dynamics_model import block_causal_mask, teacher_forcing_mask
from hitchhiker.masks.maskgit import iterative_decode
from hitchhiker.world import ACTION_NAMES, parse_action

HIDDEN_GREY = 128
"""Grey level of a tile still hidden ([MASK]) in a partly decoded frame."""


def plot_attention_masks(frames: int = 4, tokens: int = 4):
    """Play mask (F N square) beside the training mask ((2F-2) N square); dark = may attend.

    ``tokens`` per frame is kept small so that the blocks read at a glance (the model has 64).
    """
    if frames < 2 or tokens < 1:
        raise ValueError(f"need frames >= 2 and tokens >= 1; got frames={frames}, tokens={tokens}")
    play = block_causal_mask(frames, tokens).numpy()
    train = teacher_forcing_mask(frames, tokens).numpy()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), gridspec_kw={"width_ratios": [1, 1.4]})
    for ax, mask, title in (
        (axes[0], play, f"play: block-causal, {frames} frames x {tokens} tokens"),
        (axes[1], train, "training: clean frames | hidden copies"),
    ):
        ax.imshow(mask, cmap="Greys", vmin=0, vmax=1.6, interpolation="nearest")
        for b in range(0, mask.shape[0] + 1, tokens):  # frame boundaries
            ax.axhline(b - 0.5, color="C0", lw=0.6)
            ax.axvline(b - 0.5, color="C0", lw=0.6)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("key (attended to)")
        ax.set_ylabel("query (attending)")
    slots = [f"z{j}" for j in range(frames - 1)] + [f"z{j}?" for j in range(1, frames)]
    axes[1].set_xticks(np.arange(len(slots)) * tokens + (tokens - 1) / 2, slots, fontsize=7)
    axes[1].set_yticks(np.arange(len(slots)) * tokens + (tokens - 1) / 2, slots, fontsize=7)
    names = [f"z{j}" for j in range(frames)]
    axes[0].set_xticks(np.arange(frames) * tokens + (tokens - 1) / 2, names, fontsize=7)
    axes[0].set_yticks(np.arange(frames) * tokens + (tokens - 1) / 2, names, fontsize=7)
    fig.tight_layout()
    return fig


@torch.inference_mode()
def decoding_history(engine, context_frames, context_actions, action, steps: int | None = None):
    """The next frame after each MaskGIT step: (frames (S, H, W, 3) uint8, hidden (S, h, w) bool).

    ``context_frames`` (N, H, W, 3) real frames, ``context_actions`` (N-1,) the actions between
    them, ``action`` the one to imagine (an int or a name); ``steps`` defaults to the engine's.
    Hidden tiles are drawn :data:`HIDDEN_GREY`.
    """
    frames = np.array(context_frames)  # a writable copy: torch warns on read-only arrays
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 context frames (N, H, W, 3); got {frames.dtype} {frames.shape}"
        )
    past = np.array(context_actions, dtype=np.int64).reshape(
        1, -1
    )  # a copy: the truth is read-only
    if past.shape[1] != len(frames) - 1:
        raise ValueError(f"need {len(frames) - 1} context actions; got {past.shape[1]}")
    steps = int(steps if steps is not None else engine.decode_steps)
    tokens, acts = engine.window(engine.encode(frames[None]), torch.as_tensor(past))
    nxt = engine.model_actions([int(parse_action(action))])
    logits_fn = engine.logits_fn(tokens, acts, nxt)
    mask_id = engine.model.mask_id
    blank = torch.full((1, tokens.shape[2]), mask_id, dtype=torch.long, device=engine.device)
    history: list[torch.Tensor] = []
    gen = torch.Generator(device=engine.device).manual_seed(engine.seed)
    iterative_decode(
        logits_fn,
        blank,
        torch.ones_like(blank, dtype=torch.bool),
        mask_id,
        steps,
        engine.temperature,
        engine.cfg.mask_schedule,
        engine.cfg.choice_temperature,
        gen,
        history=history,
    )
    seq = torch.cat(history)  # (S, N)
    hidden = seq == mask_id
    images = engine.decode(torch.where(hidden, 0, seq))
    h, w = engine.cfg.tokens.grid_h, engine.cfg.tokens.grid_w
    hid = hidden.view(-1, h, w).cpu().numpy()
    ph, pw = images.shape[1] // h, images.shape[2] // w
    big = hid.repeat(ph, 1).repeat(pw, 2)
    images = np.where(big[..., None], np.uint8(HIDDEN_GREY), images)
    return images, hid


def pick_transition(truth, first: int | None = None) -> tuple[int, int]:
    """(episode e, frame index t) of a telling example in a :class:`~.truth.Truth`: a move (not
    noop or interact) at t >= ``first`` (default: the context length) whose next frame shows the
    most different tile kinds. The engine then gets frames up to t and imagines frame t+1."""
    first = truth.context - 1 if first is None else int(first)
    acts = np.asarray(truth.actions)[:, first:-1]
    if acts.size == 0:
        raise ValueError(f"the truth has no transition after frame {first}")
    tiles = np.asarray(truth.tiles)[:, first + 1 : first + 1 + acts.shape[1]]
    kinds = (tiles.reshape(*tiles.shape[:2], -1)[..., None] == np.unique(tiles)).any(-2).sum(-1)
    names = np.asarray(ACTION_NAMES)[acts]
    score = np.where((names != "noop") & (names != "interact"), kinds, -1)
    e, t = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(e), int(t) + first


def show_decoding(engine, context_frames, context_actions, action, real_next=None, steps=None):
    """Last context frame, the next frame after each decoding step, and (optionally) the real one."""
    images, hidden = decoding_history(engine, context_frames, context_actions, action, steps)
    name = ACTION_NAMES[int(parse_action(action))]
    panels = [np.asarray(context_frames)[-1]] + list(images)
    titles = ["context (real)"] + [
        f"step {i + 1}: {int((~h).sum())}/{h.size} tiles" for i, h in enumerate(hidden)
    ]
    if real_next is not None:
        panels.append(np.asarray(real_next))
        titles.append(f"real after {name}")
    fig, axes = plt.subplots(1, len(panels), figsize=(1.9 * len(panels), 2.2), squeeze=False)
    for ax, img, title in zip(axes[0], panels, titles):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"MaskGIT decoding of the next frame after '{name}'", fontsize=10)
    fig.tight_layout()
    return fig


def show_transitions_by_code(frames, ids, actions, per_code: int = 4, max_codes: int = 8, seed=0):
    """A filmstrip: one row per latent action (the most frequent ``max_codes``), ``per_code``
    transitions in it, each drawn as [frame t | frame t+1] and titled with its true action.

    ``frames`` (E, T+1, H, W, 3) uint8 episodes, ``ids`` (E, T) latent actions, ``actions`` (E, T)
    true actions. Transitions are drawn at random (``seed``) among those of each code.
    """
    frames, ids, actions = np.asarray(frames), np.asarray(ids), np.asarray(actions)
    if (
        frames.ndim != 5
        or ids.shape != actions.shape
        or ids.shape != frames.shape[:1] + (frames.shape[1] - 1,)
    ):
        raise ValueError(
            f"expected frames (E, T+1, H, W, 3) and ids, actions (E, T); got {frames.shape}, "
            f"{ids.shape}, {actions.shape}"
        )
    rng = np.random.default_rng(seed)
    codes, counts = np.unique(ids, return_counts=True)
    codes = codes[np.argsort(-counts, kind="stable")[:max_codes]]
    fig, axes = plt.subplots(
        len(codes), per_code, figsize=(2.4 * per_code, 1.45 * len(codes)), squeeze=False
    )
    bar = np.full((frames.shape[2], 3, 3), 255, dtype=np.uint8)
    for i, code in enumerate(codes):
        e, t = np.nonzero(ids == code)
        pick = rng.permutation(len(e))[:per_code]
        for j, ax in enumerate(axes[i]):
            ax.axis("off")
            if j < len(pick):
                k = pick[j]
                pair = np.concatenate([frames[e[k], t[k]], bar, frames[e[k], t[k] + 1]], axis=1)
                ax.imshow(pair, interpolation="nearest")
                ax.set_title(ACTION_NAMES[actions[e[k], t[k]]], fontsize=7)
        axes[i, 0].text(
            -0.08, 0.5, f"code {code}", transform=axes[i, 0].transAxes,
            ha="right", va="center", fontsize=8,
        )  # fmt: skip
    fig.tight_layout()
    return fig
