"""The caption grammar as a decoder's guard rail: which words may come next.

Captions of the world are not free text: :func:`~hitchhiker.world.captions.describe` writes one
exact form,

    you stand on <ground> , facing <heading> .                        the explorer
    <kind> lies <region> [, <region>]* [and <region>] .               one sentence per kind
    [a sheep is to the <region> . | sheep are to the <regions> .]    the sheep, if any

with the kinds in the order of their first region and the regions in compass order. A model
that decodes words one by one can be kept inside this language (grammar-constrained decoding,
e.g. Geng et al., "Grammar-Constrained Decoding for Structured NLP Tasks", 2023): before each word,
every word the grammar forbids gets probability 0,

    p'(w | prefix) ∝ p(w | prefix) * [w may follow prefix].

The model still chooses every fact (which kind, which regions, which way the explorer faces); the
grammar only rules out captions that say nothing parseable: a region named twice, a sentence
without a verb, a caption that stops before all eight regions are described. Every caption
decoded this way parses and fits in 64 tokens (8 one-region sentences, the longest case, make 61).

Sentences start at the first region not yet described and list regions in compass order, as
:func:`describe` does. By default a kind may open a second sentence, which ``describe`` never
writes but the parser reads fine: a model that ended "Grass lies north-west." too early can still
say "Grass lies east." later, instead of being forced into a false kind for the east (on the val
split of a half-trained model: precision 0.734 against 0.728 when each kind gets one sentence).
``canonical=True`` forbids that, and then every caption is exactly what ``describe`` writes.

:class:`CaptionCursor` follows one caption word by word; :class:`GrammarBatch` follows B captions
and gives the (B, T) mask of allowed word ids that a decoder applies to its logits.

Shapes: B batch, T caption vocabulary (words and the pad).
"""

from __future__ import annotations

import torch

from hitchhiker.masks.text import PAD, VOCAB, WORD_ID
from hitchhiker.world.captions import GROUND_WORDS, REGIONS, SUBJECT_WORDS
from hitchhiker.world.tiles import HEADING_NAMES

_KIND_OF_SUBJECT = {words[0]: kind for kind, words in SUBJECT_WORDS.items()}
_GROUND_FIRST = sorted({words[0] for words in GROUND_WORDS.values()})
_GROUND_AFTER_A = sorted(words[1] for words in GROUND_WORDS.values() if len(words) == 2)


class CaptionCursor:
    """Where one caption stands in the caption grammar; :meth:`allowed` lists the next words.

    The state is what a reader of a canonical caption keeps in mind: which regions and kinds are
    already described, and, inside a list of regions, what the list still needs.
    """

    def __init__(self, canonical: bool = False):
        self.canonical = canonical  # each kind in one sentence only, as describe() writes
        self.queue: list[str] = ["you", "stand", "on"]  # words the grammar forces next
        self.state = "ground"  # what follows the queue
        self.described: set[int] = set()  # region indices named by kind sentences
        self.used_kinds: set[str] = set()
        self.list_kind = ""  # inside a region list: "kind", "one sheep" or "sheep"
        self.listed: list[int] = []  # regions of the current list
        self.last_sep = ""  # "", "," or "and": the separator before the newest region
        self.words: list[str] = []

    # --- what may come next

    def allowed(self) -> list[str]:
        """The words that may follow the caption so far (never empty)."""
        if self.queue:
            return [self.queue[0]]
        s = self.state
        if s == "ground":
            return list(_GROUND_FIRST)
        if s == "ground a":
            return list(_GROUND_AFTER_A)
        if s == "heading":
            return list(HEADING_NAMES)
        if s == "kind":
            if self.canonical:
                return [SUBJECT_WORDS[k][0] for k in SUBJECT_WORDS if k not in self.used_kinds]
            return [words[0] for words in SUBJECT_WORDS.values()]
        if s == "region":
            return [REGIONS[r] for r in self._region_choices()]
        if s == "after region":
            return self._after_region()
        if s == "sheep or end":
            return ["a", "sheep", PAD]
        return [PAD]  # "end" and "done"

    def _free(self, after: int) -> list[int]:
        """Regions after index ``after`` that the current list may still name."""
        taken = self.described if self.list_kind == "kind" else set()
        return [r for r in range(after + 1, len(REGIONS)) if r not in taken]

    def _region_choices(self) -> list[int]:
        last = self.listed[-1] if self.listed else -1
        if self.list_kind == "kind" and not self.listed:
            # canonical order: a new kind's sentence starts at the first undescribed region
            return [min(r for r in range(len(REGIONS)) if r not in self.described)]
        free = self._free(last)
        if self.last_sep == "and" or self.list_kind == "one sheep":
            return free
        if self.last_sep == "," or (self.list_kind == "sheep" and not self.listed):
            return [r for r in free if self._free(r)]  # a later "and <region>" must still fit
        return free

    def _after_region(self) -> list[str]:
        if self.list_kind == "one sheep" or self.last_sep == "and":
            return ["."]
        room = len(self._free(self.listed[-1]))
        out = [] if self.last_sep == "," or self.list_kind == "sheep" else ["."]
        if room >= 2:
            out.append(",")
        if room >= 1:
            out.append("and")
        return out

    # --- taking a word

    def push(self, word: str) -> None:
        """Add ``word`` to the caption; a word the grammar forbids raises ValueError."""
        allowed = self.allowed()
        if word not in allowed:
            raise ValueError(
                f"{word!r} cannot follow {' '.join(self.words) or 'the start'!r}; "
                f"expected one of {allowed}"
            )
        self.words.append(word)
        if self.queue:
            self.queue.pop(0)
            return
        if word == PAD:  # allowed only where the caption may end: it has ended
            self.state = "done"
            return
        s = self.state
        if s == "ground":
            self.state, self.queue = ("ground a", []) if word == "a" else self._after_ground()
        elif s == "ground a":
            self.state, self.queue = self._after_ground()
        elif s == "heading":
            self.state, self.queue = "kind", ["."]
        elif s == "kind":
            kind = _KIND_OF_SUBJECT[word]
            self.used_kinds.add(kind)
            self.queue = list(SUBJECT_WORDS[kind][1:])
            self._open_list("kind")
        elif s == "region":
            self.listed.append(REGIONS.index(word))
            if self.list_kind == "kind":
                self.described.add(self.listed[-1])
            self.state = "after region"
        elif s == "after region":
            if word == ".":
                self.state = "end" if self.list_kind != "kind" else self._after_sentence()
            else:
                self.last_sep, self.state = word, "region"
        elif s == "sheep or end":
            if word == "a":
                self.queue = ["sheep", "is", "to", "the"]
                self._open_list("one sheep")
            else:
                self.queue = ["are", "to", "the"]
                self._open_list("sheep")

    @staticmethod
    def _after_ground():
        return "heading", [",", "facing"]

    def _open_list(self, kind: str) -> None:
        self.list_kind, self.listed, self.last_sep, self.state = kind, [], "", "region"

    def _after_sentence(self) -> str:
        return "sheep or end" if len(self.described) == len(REGIONS) else "kind"

    @property
    def finished(self) -> bool:
        """Whether the caption is complete (a pad may follow and nothing else needs saying)."""
        return not self.queue and self.state in ("sheep or end", "end", "done")


class GrammarBatch:
    """B captions decoded side by side: the (B, T) mask of word ids allowed next, and push."""

    def __init__(self, batch: int, device=None):
        self.cursors = [CaptionCursor() for _ in range(batch)]
        self.device = device

    def mask(self) -> torch.Tensor:
        """(B, T) bool over the caption vocabulary: True where the grammar allows the word."""
        out = torch.zeros(len(self.cursors), len(VOCAB), dtype=torch.bool)
        for row, cursor in enumerate(self.cursors):
            out[row, [WORD_ID[w] for w in cursor.allowed()]] = True
        return out.to(self.device)

    def push(self, ids: torch.Tensor) -> None:
        """Append word ids (B,) to the B captions."""
        for cursor, i in zip(self.cursors, ids.tolist()):
            cursor.push(VOCAB[i])

    @property
    def done(self) -> bool:
        """Whether every caption has ended (written its pad)."""
        return all(c.state == "done" for c in self.cursors)


def constrained_words(logits: torch.Tensor, grammar: GrammarBatch) -> torch.Tensor:
    """Logits (B, T) of the next caption word with every word the grammar forbids at -inf."""
    return logits.float().masked_fill(~grammar.mask(), float("-inf"))


__all__ = ["CaptionCursor", "GrammarBatch", "constrained_words"]
