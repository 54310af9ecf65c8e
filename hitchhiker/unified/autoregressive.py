"""The autoregressive baseline of Stage II: Chameleon-style next-token prediction over the same
interleaved tokens, the same vocabulary and the same transformer class as the unified masked model.

Chameleon (Chameleon Team, "Chameleon: Mixed-Modal Early-Fusion Foundation Models", 2024; also
Emu3, Janus-Pro) turns images into tokens and trains one causal transformer on interleaved text and
image tokens. Here a sequence is written in one of two orders, drawn per training sequence:

    text first:   [BOS] c_1 ... c_64 v_1 ... v_64      p(caption) p(view | caption)   -> t2i
    view first:   [BOS] v_1 ... v_64 c_1 ... c_64      p(view) p(caption | view)      -> i2t

and trained by teacher forcing, cross-entropy on every next token (the Stage I AR recipe,
:mod:`hitchhiker.masks.autoregressive`):

    L = - sum_i log p(x_i | [BOS], x_1, ..., x_{i-1}).

The [BOS] token carries the modality embedding of the segment it opens, which tells the model the
order; every later input carries its own modality. Sampling conditions on the given segment in one
causal pass (its keys and values go into a :class:`~hitchhiker.masks.core.KVCache`) and then
writes the other segment one token per step (64 sequential steps), each restricted to the ids of
its modality. Guidance is not used here: the baseline is the plain next-token model.

The recipe that trains, tunes and scores it (Config with presets, build, fit, tune_decoding,
evaluate) is :mod:`.autoregressive_recipe`.

Shapes: B batch, L = 64 caption tokens, h x w view codes, N = L + h * w, V = T + K shared ids.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from hitchhiker.masks.core import CoreConfig, KVCache, MaskedTokenModel
from hitchhiker.masks.maskgit import sample_tokens
from hitchhiker.masks.text import PAD_ID
from hitchhiker.unified.grammar import GrammarBatch, constrained_words
from hitchhiker.unified.self_check import best_caption_of
from hitchhiker.unified.sequence import (
    IMAGE,
    TEXT,
    Layout,
    decode_captions,
    encode_captions,
)


class UnifiedAR(MaskedTokenModel):
    """A causal :class:`MaskedTokenModel` over [BOS] + [caption | view] in either order."""

    def __init__(self, cfg: CoreConfig, layout: Layout, decoding: dict | None = None):
        if (cfg.vocab_size, cfg.seq_len, cfg.modalities) != (
            layout.vocab_size,
            layout.seq_len + 1,
            2,
        ):
            raise ValueError(
                f"core (vocab {cfg.vocab_size}, seq_len {cfg.seq_len}, modalities "
                f"{cfg.modalities}) does not match the layout (vocab {layout.vocab_size}, "
                f"seq_len {layout.seq_len} + 1 for [BOS], 2 modalities)"
            )
        super().__init__(cfg)
        self.layout = layout
        self.decoding = dict(DECODING_DEFAULTS, **(decoding or {}))
        """Default sampling temperatures (picked on the val split)."""
        ids = torch.arange(layout.vocab_size)
        words = ids < layout.text_vocab
        self.register_buffer("allowed_by_modality", torch.stack([words, ~words]), persistent=False)

    # --- sequences in both orders

    def arrange(self, x: torch.Tensor, view_first: torch.Tensor):
        """Joined sequences x (B, N) -> ([BOS] + segments (B, N + 1), modality ids (B, N + 1)).

        ``view_first`` (B,) bool: write the view before the caption.
        """
        lay = self.layout
        cap, view = x[:, lay.caption_slice], x[:, lay.view_slice]
        vf = view_first[:, None]
        body = torch.where(vf, torch.cat([view, cap], 1), torch.cat([cap, view], 1))
        mod_cv = lay.modality(x.device)
        mod_vc = torch.cat([mod_cv[lay.view_slice], mod_cv[lay.caption_slice]])
        mods = torch.where(vf, mod_vc[None], mod_cv[None])
        bos = torch.full_like(body[:, :1], self.bos_id)
        return torch.cat([bos, body], 1), torch.cat([mods[:, :1], mods], 1)

    def restrict(self, logits: torch.Tensor, target_modality: torch.Tensor) -> torch.Tensor:
        """Logits (B, n, V) with ids outside each target position's modality set to -inf."""
        allowed = self.allowed_by_modality[target_modality]
        return logits.float().masked_fill(~allowed.expand_as(logits), float("-inf"))

    @torch.no_grad()
    def view_code_logp(self, captions: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """(B, h * w) log p(v_i | caption, v_<i) of each code of views (B, h, w) under caption ids
        (B, L): one causal pass in text-first order; they sum to the exact log p(view | caption).
        What :func:`.self_check.view_fit` scores."""
        lay = self.layout
        x = lay.join(captions.to(self.pos.device), views.to(self.pos.device))
        seq, mods = self.arrange(x, torch.zeros(len(x), dtype=torch.bool, device=x.device))
        logits = self.restrict(self(seq[:, :-1], mods[:, :-1], is_causal=True), mods[:, 1:])
        logp = logits.log_softmax(-1).gather(-1, seq[:, 1:, None])[..., 0]
        return logp[:, -lay.view_len :]

    # --- sampling

    @torch.no_grad()
    def continue_sequence(
        self,
        prefix: torch.Tensor,
        prefix_modality: torch.Tensor,
        modalities: list[int],
        temperature: float,
        seed: int | None = 0,
        use_cache: bool = True,
        stop_at_pad: bool = False,
        grammar: GrammarBatch | None = None,
    ) -> torch.Tensor:
        """Write ``len(modalities)`` tokens after ``prefix`` (B, P) ([BOS] first), one per step.

        ``modalities``: the modality of each token to write. ``use_cache=False`` recomputes the
        whole prefix every step (same random draws, same tokens). ``stop_at_pad``: stop once every
        row has written a caption pad (what follows the first pad is never read) and pad the rest.
        ``grammar``: words (text positions) restricted to what the caption grammar allows next.
        """
        device = prefix.device
        gen = None if seed is None else torch.Generator(device).manual_seed(seed)
        seq, mods = prefix, prefix_modality.to(device)
        cache = KVCache() if use_cache else None
        out, done = [], torch.zeros(len(prefix), dtype=torch.bool, device=device)
        for i, m in enumerate(modalities):
            if use_cache:
                n = seq.shape[1] if i == 0 else 1  # the prefix once, then only the newest token
                start = seq.shape[1] - n
                logits = self(
                    seq[:, start:], mods[start:], is_causal=True, cache=cache, start=start
                )
            else:
                logits = self(seq, mods, is_causal=True)
            target = torch.full((1,), m, dtype=torch.long, device=device)
            next_logits = self.restrict(logits[:, -1:], target)[:, 0]
            if grammar is not None and m == TEXT:
                words = self.layout.text_vocab
                next_logits[:, :words] = constrained_words(next_logits[:, :words], grammar)
            ids, _ = sample_tokens(next_logits, temperature, gen)
            if grammar is not None and m == TEXT:
                grammar.push(ids)
            out.append(ids)
            seq = torch.cat([seq, ids[:, None]], 1)
            mods = torch.cat([mods, target])
            if stop_at_pad:
                done |= ids == PAD_ID
                if bool(done.all()):
                    left = len(modalities) - i - 1
                    out += [torch.full_like(ids, PAD_ID)] * left
                    break
        return torch.stack(out, 1)

    def _prefix(self, first: torch.Tensor, modality: int):
        bos = torch.full_like(first[:, :1], self.bos_id)
        mods = torch.full((first.shape[1] + 1,), modality, dtype=torch.long, device=first.device)
        return torch.cat([bos, first], 1), mods

    @torch.no_grad()
    def text_to_image(
        self, captions, temperature: float | None = None, seed: int | None = 0, use_cache=True
    ) -> torch.Tensor:
        """Views (B, h, w) for captions (strings, Facts or ids (B, L)), 64 steps each."""
        lay = self.layout
        caps = captions if torch.is_tensor(captions) else encode_captions(captions)
        prefix, mods = self._prefix(caps.to(self.pos.device), TEXT)
        temp = self.decoding["temperature"] if temperature is None else temperature
        codes = self.continue_sequence(prefix, mods, [IMAGE] * lay.view_len, temp, seed, use_cache)
        return (codes - lay.text_vocab).reshape(len(caps), lay.grid_h, lay.grid_w)

    @torch.no_grad()
    def image_to_text(
        self,
        views: torch.Tensor,
        temperature: float | None = None,
        seed: int | None = 0,
        use_cache=True,
        grammar: bool | None = None,
        candidates: int | None = None,
    ) -> list[str]:
        """Captions of view codes (B, h, w), word by word until every row has written a pad.

        ``grammar``: each word restricted to what the caption grammar allows next (:mod:`.grammar`),
        as the masked model does (None: the model's default). ``candidates`` > 1: the best of that
        many captions, judged by how well the model would draw the view back from each
        (:func:`.self_check.best_caption_of`, as the masked model does)."""
        lay = self.layout
        if views.ndim != 3 or tuple(views.shape[1:]) != (lay.grid_h, lay.grid_w):
            raise ValueError(
                f"views must be shaped (B, {lay.grid_h}, {lay.grid_w}); got {tuple(views.shape)}"
            )
        n = self.decoding["i2t_candidates"] if candidates is None else candidates
        if n != 1:
            t = self.decoding["i2t_candidate_temperature"]
            write = {"temperature": temperature, "use_cache": use_cache, "grammar": grammar}
            return best_caption_of(self, views, n, t, seed, **write)
        first = views.reshape(len(views), -1).to(self.pos.device) + lay.text_vocab
        prefix, mods = self._prefix(first, IMAGE)
        temp = self.decoding["text_temperature"] if temperature is None else temperature
        grammar = self.decoding["i2t_grammar"] if grammar is None else grammar
        rules = GrammarBatch(len(views), self.pos.device) if grammar else None
        words = self.continue_sequence(
            prefix, mods, [TEXT] * lay.caption_len, temp, seed, use_cache, True, rules
        )
        return decode_captions(words)

    @torch.no_grad()
    def generate_joint(
        self, n: int, seed: int | None = 0, temperature: float | None = None
    ) -> tuple[list[str], torch.Tensor]:
        """``n`` (caption, view) pairs from [BOS] alone: caption first, then its view."""
        lay = self.layout
        start = torch.full((n, 1), self.bos_id, dtype=torch.long, device=self.pos.device)
        mods = torch.full((1,), TEXT, dtype=torch.long, device=start.device)
        temp = self.decoding["temperature"] if temperature is None else temperature
        kinds = [TEXT] * lay.caption_len + [IMAGE] * lay.view_len
        seq = self.continue_sequence(start, mods, kinds, temp, seed)
        caps, views = lay.split(seq)
        return decode_captions(caps), views


DECODING_DEFAULTS: dict[str, Any] = {
    "temperature": 1.0,
    "text_temperature": 0.0,
    "i2t_grammar": True,
    "i2t_candidates": 1,
    "i2t_candidate_temperature": 0.7,
}


def ar_loss(model, batch: dict, p_view_first: float = 0.5):
    """Next-token cross-entropy over [BOS] + both segments, each row in a random order."""
    net = model.module if hasattr(model, "module") else model
    x = net.layout.join(batch["caption"], batch["view"])
    view_first = torch.rand(len(x), device=x.device) < p_view_first
    seq, mods = net.arrange(x, view_first)
    logits = model(seq[:, :-1], mods[:, :-1], is_causal=True)
    logits = net.restrict(logits, mods[:, 1:])
    target = seq[:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
    right = logits.argmax(-1) == target
    is_view = mods[:, 1:] == IMAGE
    return loss, {
        "view_acc": right[is_view].float().mean().detach(),
        "text_acc": right[~is_view].float().mean().detach(),
    }
