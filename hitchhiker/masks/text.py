"""Masked text on the world's captions: BERT-style masked language modelling, grown into a
masked-diffusion text generator.

**BERT** (Devlin et al. 2019, https://arxiv.org/abs/1810.04805) hides 15% of the tokens of a sentence
and trains a bidirectional transformer to name them: of the chosen tokens 80% become [MASK], 10% a
random word, 10% stay as they are (so the model cannot trust that an unmasked word is right), and the
loss is the cross-entropy on the chosen tokens only.

**Masked diffusion** (D3PM's absorbing state, Austin et al. 2021; MDLM, Sahoo et al. 2024; LLaDA,
Nie et al. 2025) keeps the network and changes one number: the masking ratio. Each training caption
draws its own ratio t ~ U(0, 1) and every token is hidden independently with probability t, so the
model learns to fill in anything from one missing word to a blank page. The loss is

    L = E_t [ w(t) * sum_{i masked} -log p(x_i | x_t) ],     w(t) = 1 / t  (the ELBO)  or  1.

We default to w = 1, normalised by the number of masked tokens ("uniform"): with 1/t the few
lightly-masked captions of a batch dominate its gradient, which makes a small model's training
noisy; the "inverse_t" option gives the ELBO weighting for comparison.

**Generation** runs the corruption backwards (Mask-Predict, Ghazvininejad et al. 2019): start from
all [MASK] (or from a caption with holes), predict every masked token, commit them all, then re-mask
the least confident ones and predict again; the number left masked shrinks to 0 over ``steps``
rounds (linearly, or on a cosine). ``remask="all"`` lets any generated token be revised if its
confidence is among the lowest (Mask-Predict); ``remask="new"`` only re-masks among the tokens filled
this round, so committed tokens are final (MaskGIT's rule). Given tokens are never touched.

Tokens: the caption vocabulary (``CAPTION_VOCAB``: lowercase words, "," and ".") plus a pad token
that fills every caption up to ``seq_len``; generating pads is how the model chooses a length.

This module holds the vocabulary, the corruption, the loss and the sampler; the model itself is the
Stage I core, :class:`~hitchhiker.masks.core.MaskedTokenModel`. The recipe that trains and scores it
(Config with presets, build, fit, evaluate) is :mod:`.text_recipe`.

Shapes: B batch, N = seq_len tokens, V vocabulary (CAPTION_VOCAB + pad), M captions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hitchhiker.masks.core import MaskedTokenModel
from hitchhiker.world.captions import (
    CAPTION_VOCAB,
    describe,
    parse_caption,
    tokenize_caption,
)

PAD = "<pad>"
VOCAB: list[str] = [*CAPTION_VOCAB, PAD]
"""Token strings by id: the caption words, then the pad token."""
PAD_ID = len(CAPTION_VOCAB)
WORD_ID = {w: i for i, w in enumerate(VOCAB)}
OBJECTIVES = ("diffusion", "bert")
WEIGHTINGS = ("uniform", "inverse_t")
SCHEDULES = ("linear", "cosine")
REMASK = ("all", "new")


# ----------------------------------------------------------------------------- words <-> ids


def encode(text: str, seq_len: int = 64) -> torch.Tensor:
    """A caption -> (N,) int64 ids, padded with PAD_ID; unknown words and overflow raise."""
    words = tokenize_caption(text)
    unknown = [w for w in words if w not in WORD_ID or w == PAD]
    if unknown:
        raise ValueError(
            f"unknown word {unknown[0]!r}; the vocabulary is {' '.join(CAPTION_VOCAB)}"
        )
    if len(words) > seq_len:
        raise ValueError(f"caption of {len(words)} tokens does not fit seq_len={seq_len}")
    ids = [WORD_ID[w] for w in words] + [PAD_ID] * (seq_len - len(words))
    return torch.tensor(ids, dtype=torch.long)


def encode_batch(texts: list[str], seq_len: int = 64) -> torch.Tensor:
    """(M, N) ids of many captions."""
    return torch.stack([encode(t, seq_len) for t in texts])


def decode(ids, mask_text: str = "_") -> str:
    """(N,) ids -> the caption as :func:`describe` writes it: words up to the first pad, sentences
    capitalised, punctuation attached; [MASK] (id V) shows as ``mask_text``."""
    ids = torch.as_tensor(ids).tolist()
    if ids and isinstance(ids[0], list):
        raise ValueError("decode takes one sequence (N,); use decode_batch for (B, N)")
    words, start = [], True
    for i in ids:
        if i == PAD_ID:
            break
        if not 0 <= i <= len(VOCAB):
            raise ValueError(f"token id {i} outside [0, {len(VOCAB)}] (words, then [MASK])")
        w = mask_text if i == len(VOCAB) else VOCAB[i]
        if w in ",." and words:
            words[-1] += w
        else:
            words.append(w.capitalize() if start else w)
        start = w == "."
    return " ".join(words)


def decode_batch(ids) -> list[str]:
    """(B, N) ids -> B captions."""
    return [decode(row) for row in torch.as_tensor(ids)]


def parses(text: str) -> bool:
    """Whether ``text`` is a well-formed caption (``parse_caption`` accepts it)."""
    try:
        parse_caption(text)
    except ValueError:
        return False
    return True


def canonical(text: str) -> bool:
    """Whether ``text`` is exactly what the caption writer would write for the facts it states
    (it parses, and ``describe(parse_caption(text)) == text``). Stricter than :func:`parses`, which
    also accepts e.g. one kind named in two sentences."""
    try:
        return describe(parse_caption(text)) == text
    except ValueError:
        return False


# ----------------------------------------------------------------------------- corruption + loss


def bert_corrupt(
    tokens: torch.Tensor, mask_id: int, ratio: float = 0.15, generator=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted ids, chosen (B, N) bool): ``ratio`` of the real tokens, 80/10/10 as in BERT."""
    real = tokens != PAD_ID
    u = torch.rand(tokens.shape, generator=generator, device=tokens.device)
    chosen = real & (u < ratio)
    v = torch.rand(tokens.shape, generator=generator, device=tokens.device)
    rand = torch.randint(0, PAD_ID, tokens.shape, generator=generator, device=tokens.device)
    out = torch.where(chosen & (v < 0.8), mask_id, tokens)
    out = torch.where(chosen & (v >= 0.8) & (v < 0.9), rand, out)
    return out, chosen


def diffusion_corrupt(
    tokens: torch.Tensor, mask_id: int, generator=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(corrupted ids, masked (B, N) bool, t (B,)): each token hidden with probability t ~ U(0, 1)."""
    b, n = tokens.shape
    t = torch.rand(b, 1, generator=generator, device=tokens.device).clamp_min(1.0 / n)
    masked = torch.rand(b, n, generator=generator, device=tokens.device) < t
    return torch.where(masked, mask_id, tokens), masked, t[:, 0]


def text_loss(model, batch: dict) -> tuple[torch.Tensor, dict]:
    """Cross-entropy on the hidden tokens under the config's objective (trainer ``loss_fn``)."""
    net = model.module if hasattr(model, "module") else model
    cfg = net.text_config  # the recipe's Config, attached by text_recipe.build
    tokens = batch["tokens"]
    if cfg.objective == "bert":
        corrupted, chosen = bert_corrupt(tokens, net.mask_id, cfg.bert_ratio)
        weight = chosen.float()
    else:
        corrupted, chosen, t = diffusion_corrupt(tokens, net.mask_id)
        weight = chosen.float() * (1.0 / t[:, None] if cfg.weighting == "inverse_t" else 1.0)
    logits = model(corrupted).float()
    ce = F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")  # (B, N)
    denom = chosen.sum().clamp_min(1) if cfg.weighting == "uniform" else tokens.numel()
    loss = (ce * weight).sum() / denom
    acc = ((logits.argmax(-1) == tokens) & chosen).sum() / chosen.sum().clamp_min(1)
    return loss, {"masked_acc": acc}


# ----------------------------------------------------------------------------- decoding


def _masked_after(step: int, steps: int, n: torch.Tensor, schedule: str) -> torch.Tensor:
    """How many tokens stay masked after round ``step`` (0-based) of ``steps``: (B,) ints."""
    frac = (step + 1) / steps
    keep = 1 - frac if schedule == "linear" else math.cos(math.pi / 2 * frac)
    return torch.floor(n.float() * keep).long()


@torch.no_grad()
def fill(
    model: MaskedTokenModel,
    tokens: torch.Tensor,
    steps: int = 16,
    temperature: float = 0.0,
    schedule: str = "linear",
    remask: str = "all",
    generator: torch.Generator | None = None,
    history: list | None = None,
) -> torch.Tensor:
    """Fill every [MASK] of ``tokens`` (B, N) in ``steps`` rounds; other tokens are never changed.

    ``temperature`` 0 takes the most likely token, > 0 samples from softmax(logits / temperature);
    confidence is the probability of the chosen token. Pass a list as ``history`` to receive the
    (B, N) ids after every round (what the next round sees; the last one has no [MASK] left).
    """
    if tokens.ndim != 2 or tokens.dtype != torch.long:
        raise ValueError(
            f"expected int64 token ids shaped (B, N); got {tokens.dtype} {tuple(tokens.shape)}"
        )
    if steps < 1 or schedule not in SCHEDULES or remask not in REMASK or temperature < 0:
        raise ValueError(
            f"need steps >= 1, temperature >= 0, schedule in {SCHEDULES}, remask in {REMASK}; got "
            f"{steps=}, {temperature=}, {schedule=}, {remask=}"
        )
    model.eval()
    mask_id = model.mask_id
    x = tokens.clone()
    given = x != mask_id
    to_fill = (~given).sum(1)
    conf = torch.full(x.shape, math.inf, device=x.device)
    for k in range(steps):
        masked = x == mask_id
        if not masked.any():
            break
        logits = model(x).float()
        if temperature > 0:
            probs = F.softmax(logits / temperature, -1)
            flat = torch.multinomial(probs.view(-1, probs.shape[-1]).cpu(), 1, generator=generator)
            choice = flat.view(x.shape).to(x.device)
        else:
            probs = F.softmax(logits, -1)
            choice = probs.argmax(-1)
        p = probs.gather(-1, choice[..., None])[..., 0]
        x = torch.where(masked, choice, x)
        conf = torch.where(masked, p, conf)
        if k < steps - 1:
            candidates = ~given if remask == "all" else masked
            score = torch.where(candidates, conf, math.inf)
            ranks = score.argsort(1).argsort(1)
            again = ranks < _masked_after(k, steps, to_fill, schedule)[:, None]
            x = torch.where(again, mask_id, x)
        if history is not None:
            history.append(x.cpu().clone())
    return x


def generate(
    model: MaskedTokenModel,
    n: int,
    steps: int = 16,
    temperature: float = 1.0,
    schedule: str = "linear",
    remask: str = "all",
    seed: int = 0,
    history: list | None = None,
) -> torch.Tensor:
    """(n, N) captions generated from nothing (all [MASK]), ids with no [MASK] left."""
    if n < 1:
        raise ValueError(f"need at least one sample; got n={n}")
    device = next(model.parameters()).device
    start = torch.full((n, model.cfg.seq_len), model.mask_id, dtype=torch.long, device=device)
    gen = torch.Generator().manual_seed(seed)
    return fill(model, start, steps, temperature, schedule, remask, gen, history)


def mask_words(tokens: torch.Tensor, ratio: float, mask_id: int, seed: int = 0) -> torch.Tensor:
    """Hide exactly max(1, round(ratio * L)) of the L real (non-pad) tokens of each caption."""
    gen = torch.Generator().manual_seed(seed)
    real = tokens != PAD_ID
    score = torch.where(real, torch.rand(tokens.shape, generator=gen).to(tokens.device), 2.0)
    ranks = score.argsort(1).argsort(1)
    count = (real.sum(1).float() * ratio).round().clamp_min(1).long()
    return torch.where(ranks < count[:, None], mask_id, tokens)


@torch.no_grad()
def masked_accuracy(model: MaskedTokenModel, tokens: torch.Tensor, ratio: float = 0.15, seed=0):
    """One forward pass: share of hidden real tokens predicted exactly (argmax)."""
    model.eval()
    corrupted = mask_words(tokens, ratio, model.mask_id, seed)
    hidden = corrupted == model.mask_id
    pred = model(corrupted).argmax(-1)
    return float((pred == tokens)[hidden].float().mean())


def infill_accuracy(model, tokens: torch.Tensor, ratio: float = 0.5, steps: int = 16, seed=0):
    """Iterative infilling of ``ratio`` of each caption's real tokens: share filled exactly."""
    corrupted = mask_words(tokens, ratio, model.mask_id, seed)
    hidden = corrupted == model.mask_id
    out = fill(model, corrupted, steps)
    return float((out == tokens)[hidden].float().mean())
