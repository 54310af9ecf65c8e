"""The caption grammar guard rail: it accepts every caption the world writes, everything it lets a
decoder write parses back into facts, and a decoder that follows it always writes such captions."""

import random

import pytest
import torch

from hitchhiker.masks import text
from hitchhiker.masks.core import CoreConfig
from hitchhiker.tokens import OracleTokenizer
from hitchhiker.unified import sequence as sq
from hitchhiker.unified.autoregressive import UnifiedAR
from hitchhiker.unified.grammar import CaptionCursor, GrammarBatch, constrained_words
from hitchhiker.unified.masked_model import UnifiedModel
from hitchhiker.world import REGIONS, describe, parse_caption
from hitchhiker.world.captions import Facts, tokenize_caption
from hitchhiker.world.tiles import HEADING_NAMES, TILE_NAMES

pytestmark = pytest.mark.usefixtures("one_thread")


def random_facts(rng: random.Random) -> Facts:
    kinds = TILE_NAMES[: rng.randint(1, len(TILE_NAMES))]
    return Facts(
        facing=rng.choice(HEADING_NAMES),
        standing_on=rng.choice(TILE_NAMES),
        regions={r: rng.choice(kinds) for r in REGIONS},
        animals=tuple(r for r in REGIONS if rng.random() < 0.3),
    )


def test_every_caption_the_world_writes_is_accepted_word_by_word():
    rng = random.Random(0)
    for _ in range(500):
        cursor = CaptionCursor()
        for word in tokenize_caption(describe(random_facts(rng))):
            assert word in cursor.allowed()
            cursor.push(word)
        assert cursor.finished and text.PAD in cursor.allowed()


@pytest.mark.parametrize("canonical", [False, True])
def test_whatever_the_grammar_allows_parses(canonical):
    rng = random.Random(1)
    longest, repeats = 0, 0
    for _ in range(500):
        cursor = CaptionCursor(canonical)
        while (word := rng.choice(cursor.allowed())) != text.PAD:
            cursor.push(word)
        caption = " ".join(cursor.words)
        facts = parse_caption(caption)  # raises if it does not parse
        is_canonical = tokenize_caption(describe(facts)) == cursor.words
        assert is_canonical or not canonical
        repeats += not is_canonical
        longest = max(longest, len(cursor.words))
    assert longest <= sq.CAPTION_LEN
    assert (repeats > 0) == (not canonical)  # the relaxed grammar lets a kind open two sentences


def test_the_grammar_rules_out_what_would_not_parse():
    cursor = CaptionCursor()
    for word in tokenize_caption("You stand on a stump, facing west. Water lies north-west"):
        cursor.push(word)
    # the list goes on in compass order, or ends; "a" or a region already named cannot follow
    assert set(cursor.allowed()) == {".", ",", "and"}
    with pytest.raises(ValueError, match="cannot follow"):
        cursor.push("a")
    cursor.push(".")
    # the next sentence starts at the first undescribed region; in canonical mode with a new kind
    assert "water" in cursor.allowed() and "grass" in cursor.allowed()
    canonical = CaptionCursor(canonical=True)
    for word in cursor.words:
        canonical.push(word)
    assert "water" not in canonical.allowed() and "grass" in canonical.allowed()
    cursor.push("grass")
    cursor.push("lies")
    assert cursor.allowed() == ["north"]
    assert not cursor.finished


def test_a_batch_gives_a_mask_over_the_caption_vocabulary():
    rules = GrammarBatch(3)
    mask = rules.mask()
    assert mask.shape == (3, len(text.VOCAB)) and (mask.sum(1) == 1).all()  # "you" is forced
    logits = constrained_words(torch.zeros(3, len(text.VOCAB)), rules)
    assert logits.argmax(1).tolist() == [text.WORD_ID["you"]] * 3
    rules.push(torch.tensor([text.WORD_ID["you"]] * 3))
    with pytest.raises(ValueError, match="expected one of"):
        rules.push(torch.tensor([text.WORD_ID["you"]] * 3))


@pytest.mark.parametrize("causal", [False, True])
def test_untrained_models_decoding_inside_the_grammar_write_captions_that_parse(causal):
    torch.manual_seed(0)
    lay = sq.Layout(9)
    core = CoreConfig(lay.vocab_size, lay.seq_len + causal, 32, 1, 2, modalities=2)
    model = (UnifiedAR if causal else UnifiedModel)(core, lay).eval()
    views = sq.record_pairs("train", 2, 4, OracleTokenizer())[0].views
    captions = model.image_to_text(views, temperature=1.0, grammar=True)
    assert all(text.parses(c) for c in captions)
    free = model.image_to_text(views, temperature=1.0, grammar=False)
    assert not all(text.parses(c) for c in free)  # without it, a random model writes nonsense
