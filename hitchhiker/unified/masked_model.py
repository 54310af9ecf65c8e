"""The unified model: one masked transformer that writes views from captions, captions from views,
both at once, and fills holes in either — with the same weights and the same decoding loop.

This is the masked / discrete-diffusion branch of unified models (UniDisc, Swerdlow et al. 2025;
MMaDA, Yang et al. 2025; Muddit, Shi et al. 2025): one bidirectional transformer (the Stage I core,
:class:`~hitchhiker.masks.core.MaskedTokenModel`, no copy) over [caption | view] tokens of one
shared vocabulary (:mod:`.sequence`), trained with one masked cross-entropy (:mod:`.objective`).

Every task is the same operation: put [MASK] where tokens are wanted, then fill them in with
MaskGIT's loop (:func:`hitchhiker.masks.maskgit.iterative_decode`):

    text-to-image   caption given, view masked          (guided, see below)
    image-to-text   view given, caption masked          (word by word inside the caption grammar,
                                                         all at once, or in blocks left to right;
                                                         best of n by the model's own check)
    joint           everything masked
    infilling       any positions of either modality masked

Only the positions asked for are ever masked, so given tokens never change, and the logits are
restricted to each position's modality (a caption slot never receives an image code).
Classifier-free guidance (Ho & Salimans 2022; Muse, Chang et al. 2023) on view positions:

    l = l_cond + s * (l_cond - l_uncond)        l_uncond: the same sequence, caption all [MASK]

s = 0 is the plain conditional model (and takes the plain path: one forward pass per step).
The mix itself is :func:`guidance_mix`.

Shapes: B batch, L = 64 caption tokens, h x w view codes, N = L + h * w, V = T + K shared ids.
"""

from __future__ import annotations

from typing import Any

import torch

from hitchhiker.masks.core import CoreConfig, MaskedTokenModel
from hitchhiker.masks.maskgit import iterative_decode, sample_tokens
from hitchhiker.masks.text import PAD_ID
from hitchhiker.unified.grammar import GrammarBatch
from hitchhiker.unified.self_check import best_caption_of, best_of
from hitchhiker.unified.sequence import Layout, decode_captions, encode_captions


def guidance_mix(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance's mix of two sets of logits (Ho & Salimans 2022):

        l = l_cond + s * (l_cond - l_uncond)

    ``cond``: logits with the caption given, ``uncond``: the same positions with the caption all
    [MASK] (any shape, both alike); ``scale`` s >= 0. s = 0 gives the conditional logits back;
    larger s pushes away from what the model would draw without the caption.
    """
    return cond + scale * (cond - uncond)


class UnifiedModel(MaskedTokenModel):
    """A :class:`MaskedTokenModel` over [caption | view] that performs all four tasks."""

    def __init__(self, cfg: CoreConfig, layout: Layout, decoding: dict | None = None):
        if (cfg.vocab_size, cfg.seq_len, cfg.modalities) != (layout.vocab_size, layout.seq_len, 2):
            raise ValueError(
                f"core (vocab {cfg.vocab_size}, seq_len {cfg.seq_len}, modalities "
                f"{cfg.modalities}) does not match the layout (vocab {layout.vocab_size}, "
                f"seq_len {layout.seq_len}, 2 modalities)"
            )
        super().__init__(cfg)
        self.layout = layout
        self.decoding = dict(DECODING_DEFAULTS, **(decoding or {}))
        """Default decoding settings (steps, guidance, temperatures) picked on the val split."""
        self.register_buffer("modality_ids", layout.modality(), persistent=False)
        self.register_buffer("allowed", layout.allowed(), persistent=False)
        self.register_buffer("view_positions", layout.is_view(), persistent=False)

    # --- logits

    def restricted_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, N, V) of sequences x (B, N), -inf on ids of the wrong modality."""
        return self(x, self.modality_ids).float().masked_fill(~self.allowed, float("-inf"))

    def guided_logits(self, x: torch.Tensor, guidance: float) -> torch.Tensor:
        """Classifier-free guidance on view positions: l_c + s (l_c - l_u), then restricted.

        l_u sees the same sequence with its caption all [MASK]; both passes run as one batch.
        """
        uncond = x.clone()
        uncond[:, self.layout.caption_slice] = self.mask_id
        both = self(torch.cat([x, uncond]), self.modality_ids).float()
        cond, free = both[: len(x)], both[len(x) :]
        view = self.view_positions[None, :, None]
        guided = torch.where(view, guidance_mix(cond, free, guidance), cond)
        return guided.masked_fill(~self.allowed, float("-inf"))

    @torch.no_grad()
    def view_code_logp(self, captions: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """(B, h * w) log p(v_i | caption) of each code of views (B, h, w) under caption ids
        (B, L), as the first step of text-to-image sees them: every view code hidden, one pass.
        What :func:`.self_check.view_fit` scores."""
        lay = self.layout
        x = lay.join(captions.to(self.pos.device), views.to(self.pos.device))
        hide = self.view_positions.expand_as(x)
        logits = self.restricted_logits(torch.where(hide, self.mask_id, x))[:, lay.view_slice]
        return logits.log_softmax(-1).gather(-1, x[:, lay.view_slice, None])[..., 0]

    def logits_fn(self, guidance: float = 0.0):
        """The ``logits_fn`` of :func:`iterative_decode`: guidance 0 is the unguided path."""
        if guidance == 0:
            return self.restricted_logits
        return lambda x: self.guided_logits(x, guidance)

    # --- the decoding loop shared by every task

    @torch.no_grad()
    def decode(
        self,
        x: torch.Tensor,
        todo: torch.Tensor,
        steps: int,
        temperature: float = 1.0,
        guidance: float = 0.0,
        seed: int | None = 0,
        choice_temperature: float | None = None,
        history: list | None = None,
    ) -> torch.Tensor:
        """Fill positions ``todo`` (B, N) of sequences ``x`` (B, N) in ``steps`` parallel steps."""
        gen = None if seed is None else torch.Generator(x.device).manual_seed(seed)
        ct = (
            self.decoding["choice_temperature"]
            if choice_temperature is None
            else choice_temperature
        )
        return iterative_decode(
            self.logits_fn(guidance),
            x,
            todo,
            self.mask_id,
            steps,
            temperature,
            "cosine",
            ct,
            gen,
            history,
        )

    def _opt(self, name: str, value):
        return self.decoding[name] if value is None else value

    def _blank(self, n: int) -> torch.Tensor:
        return torch.full((n, self.layout.seq_len), self.mask_id, device=self.pos.device)

    # --- the four tasks

    @torch.no_grad()
    def text_to_image(
        self,
        captions,
        steps: int | None = None,
        guidance: float | None = None,
        temperature: float | None = None,
        seed: int | None = 0,
        history: list | None = None,
        candidates: int | None = None,
    ) -> torch.Tensor:
        """Views (B, h, w) for captions (strings, Facts, or ids (B, L)); None: the tuned defaults.

        ``candidates`` > 1: draw that many views per caption and keep the one the model itself
        reads back best (:func:`.self_check.best_of`)."""
        caps = captions if torch.is_tensor(captions) else encode_captions(captions)
        n = self._opt("t2i_candidates", candidates)
        if n != 1:
            draw = {"steps": steps, "guidance": guidance, "temperature": temperature, "seed": seed}
            return best_of(self, caps.to(self.pos.device), n, **draw)
        lay = self.layout
        x = self._blank(len(caps))
        x[:, lay.caption_slice] = caps.to(x.device)
        todo = self.view_positions.expand_as(x)
        out = self.decode(
            x,
            todo,
            self._opt("t2i_steps", steps),
            self._opt("temperature", temperature),
            self._opt("guidance", guidance),
            seed,
            history=history,
        )
        return lay.split(out)[1]

    @torch.no_grad()
    def image_to_text(
        self,
        views: torch.Tensor,
        steps: int | None = None,
        temperature: float | None = None,
        seed: int | None = 0,
        history: list | None = None,
        block: int | None = None,
        grammar: bool | None = None,
        candidates: int | None = None,
    ) -> list[str]:
        """Captions of view codes (B, h, w).

        ``candidates`` > 1: write that many captions per view (the most likely one, then sampled
        ones) and keep the one from which the model would draw the view back best
        (:func:`.self_check.best_caption_of`).

        ``grammar``: write the caption left to right, one word per step, each word restricted to
        what the caption grammar allows next (:mod:`.grammar`); every caption then parses.
        ``steps`` and ``block`` are unused (the caption's own length sets the steps; rows where
        the grammar allows one word only skip the model). Otherwise MaskGIT's loop decodes it:
        ``block``: caption positions decoded together, blocks left to right (semi-autoregressive
        decoding, as LLaDA does for long answers): L = all at once, 1 = one word per step.
        ``steps`` is the total budget, shared evenly by the blocks (at least one step each).
        """
        lay = self.layout
        if views.ndim != 3 or tuple(views.shape[1:]) != (lay.grid_h, lay.grid_w):
            raise ValueError(
                f"views must be shaped (B, {lay.grid_h}, {lay.grid_w}); got {tuple(views.shape)}"
            )
        n = self._opt("i2t_candidates", candidates)
        if n != 1:
            write = {"steps": steps, "temperature": temperature, "block": block, "grammar": grammar}
            t = self.decoding["i2t_candidate_temperature"]
            return best_caption_of(self, views, n, t, seed, history=history, **write)
        x = self._blank(len(views))
        x[:, lay.view_slice] = views.reshape(len(views), -1).to(x.device) + lay.text_vocab
        if self._opt("i2t_grammar", grammar):
            temperature = self._opt("text_temperature", temperature)
            x = self._caption_by_grammar(x, temperature, seed, history)
            return decode_captions(lay.split(x)[0])
        steps = self._opt("i2t_steps", steps)
        block = self._opt("i2t_block", block)
        if not 1 <= block <= lay.caption_len:
            raise ValueError(f"block must lie in [1, {lay.caption_len}]; got {block}")
        temperature = self._opt("text_temperature", temperature)
        if block == lay.caption_len:
            todo = ~self.view_positions.expand_as(x)
            ct = self.decoding["text_choice_temperature"]
            x = self.decode(x, todo, steps, temperature, 0.0, seed, ct, history)
        else:
            x = self._caption_by_blocks(x, block, steps, temperature, seed, history)
        return decode_captions(lay.split(x)[0])

    def _caption_by_grammar(self, x, temperature, seed, history):
        """Fill the caption of x (B, N) word by word, left to right, inside the caption grammar.

        At word i the model sees the view, words < i and [MASK] after; its logits at position i
        are restricted to the words the grammar allows there, then sampled (temperature 0: the
        most likely allowed word). Rows whose next word is forced ("stand", "lies", the pads of
        a finished caption: about 60% of them) skip the model."""
        gen = None if seed is None else torch.Generator(x.device).manual_seed(seed)
        words = self.layout.text_vocab
        rules = GrammarBatch(len(x), x.device)
        for i in range(self.layout.caption_len):
            allowed = rules.mask()
            ids = allowed.long().argmax(1)  # right where only one word is allowed
            free = allowed.sum(1) > 1  # rows where the model has a choice
            if bool(free.any()):
                logits = self(x[free], self.modality_ids)[:, i, :words].float()
                ids[free], _ = sample_tokens(
                    logits.masked_fill(~allowed[free], float("-inf")), temperature, gen
                )
            x[:, i] = ids
            rules.push(ids)
            if history is not None:
                history.append(x.clone())
            if rules.done:
                x[:, i + 1 : self.layout.caption_len] = PAD_ID
                break
        return x

    def _caption_by_blocks(self, x, block, steps, temperature, seed, history):
        """Fill the caption of x (B, N) block by block, left to right; each block runs MaskGIT's
        loop over its own positions while the model sees the whole sequence (later blocks still
        [MASK]). Stops once every row has written a pad (what follows is never read)."""
        n_cap = self.layout.caption_len
        per_block = max(1, min(block, round(steps * block / n_cap)))
        gen = None if seed is None else torch.Generator(x.device).manual_seed(seed)
        ct = self.decoding["text_choice_temperature"]
        for start in range(0, n_cap, block):
            part = slice(start, min(start + block, n_cap))

            def logits_of_block(xb, part=part):
                full = x.clone()
                full[:, part] = xb
                return self.restricted_logits(full)[:, part]

            xb = torch.full_like(x[:, part], self.mask_id)
            todo = torch.ones_like(xb, dtype=torch.bool)
            x[:, part] = iterative_decode(
                logits_of_block, xb, todo, self.mask_id, per_block, temperature, "cosine", ct, gen
            )
            if history is not None:
                history.append(x.clone())
            if (x[:, : part.stop] == PAD_ID).any(1).all():
                x[:, part.stop : n_cap] = PAD_ID
                break
        return x

    @torch.no_grad()
    def generate_joint(
        self,
        n: int,
        steps: int | None = None,
        seed: int | None = 0,
        temperature: float | None = None,
        history: list | None = None,
    ) -> tuple[list[str], torch.Tensor]:
        """``n`` (caption, view) pairs from nothing: (n captions, views (n, h, w))."""
        if n < 1:
            raise ValueError(f"n must be >= 1; got {n}")
        x = self._blank(n)
        todo = torch.ones_like(x, dtype=torch.bool)
        out = self.decode(
            x,
            todo,
            self._opt("joint_steps", steps),
            self._opt("temperature", temperature),
            0.0,
            seed,
            history=history,
        )
        caps, views = self.layout.split(out)
        return decode_captions(caps), views

    @torch.no_grad()
    def infill(
        self,
        sequence,
        mask,
        steps: int | None = None,
        temperature: float | None = None,
        guidance: float = 0.0,
        seed: int | None = 0,
        history: list | None = None,
    ) -> torch.Tensor:
        """Regenerate the positions ``mask`` of a sequence, in either modality; the rest stays.

        ``sequence``: ids (B, N), or a pair (captions, views (B, h, w)); ``mask``: bool (N,) or
        (B, N), or a pair (caption mask (L,) or (B, L), view mask (h, w) or (B, h, w)).
        Returns the filled sequences (B, N); :meth:`split` turns them into captions and views.
        """
        lay = self.layout
        if isinstance(sequence, (tuple, list)):
            caps, views = sequence
            caps = caps if torch.is_tensor(caps) else encode_captions(caps)
            sequence = lay.join(caps, views.cpu())
        if isinstance(mask, (tuple, list)):
            cm, vm = (torch.as_tensor(m, dtype=torch.bool) for m in mask)
            b = len(sequence)
            cm = cm.expand(b, lay.caption_len) if cm.ndim == 1 else cm
            vm = vm.expand(b, lay.grid_h, lay.grid_w) if vm.ndim == 2 else vm
            mask = torch.cat([cm.reshape(b, -1), vm.reshape(b, -1)], 1)
        if sequence.ndim != 2 or sequence.shape[1] != lay.seq_len:
            raise ValueError(
                f"sequence must be shaped (B, {lay.seq_len}); got {tuple(sequence.shape)}"
            )
        if not torch.is_tensor(mask) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor; got {getattr(mask, 'dtype', mask)!r}")
        if mask.shape not in ((lay.seq_len,), tuple(sequence.shape)):
            raise ValueError(
                f"mask must be shaped ({lay.seq_len},) or {tuple(sequence.shape)}; "
                f"got {tuple(mask.shape)}"
            )
        x = sequence.to(self.pos.device)
        todo = mask.to(x.device).expand_as(x)
        given = x[~todo]
        if given.numel() and (int(given.min()) < 0 or int(given.max()) >= lay.vocab_size):
            raise ValueError(f"given tokens must be real ids in [0, {lay.vocab_size})")
        ok = self.allowed[torch.arange(lay.seq_len, device=x.device).expand_as(x)[~todo], given]
        if not ok.all():
            raise ValueError("given tokens must hold ids of their position's modality")
        return self.decode(
            x,
            todo,
            self._opt("joint_steps", steps),
            self._opt("temperature", temperature),
            guidance,
            seed,
            history=history,
        )

    def split(self, sequence: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        """Sequences (B, N) -> (captions as strings, views (B, h, w))."""
        caps, views = self.layout.split(sequence)
        return decode_captions(caps), views


DECODING_DEFAULTS: dict[str, Any] = {
    "t2i_steps": 8,
    "t2i_candidates": 1,
    "guidance": 1.0,
    "temperature": 0.5,
    "i2t_steps": 8,
    "i2t_block": 64,
    "i2t_grammar": True,
    "i2t_candidates": 1,
    "i2t_candidate_temperature": 0.7,
    "text_temperature": 0.0,
    "joint_steps": 16,
    "choice_temperature": 4.5,
    "text_choice_temperature": 0.0,
}
"""Decoding defaults of an untuned model. The val sweep (:func:`hitchhiker.unified.masked_recipe.
tune_decoding`, 128 val pairs) picked for the shipped cpu model (2048 episodes, 9000 steps):
text-to-image 8 steps, guidance 1, temperature 0.25 (share of facts 0.987; 0.948 unguided; best of
4 by the model's own check 0.991, under the 0.01 gain asked, so one draw); image-to-text word by
word inside the caption grammar (precision 0.879; without it one word per step left to right
0.852, blocks of 8 0.498, all at once in 8 steps 0.614), best of 8 captions by the model's own
check (precision 0.921)."""
