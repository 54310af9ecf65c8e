"""Captions: true of the view, exactly invertible, strict about what they accept."""

import numpy as np
import pytest

from hitchhiker.world import (
    CAPTION_VOCAB,
    REGIONS,
    TILE_NAMES,
    Facts,
    HitchhikerWorld,
    caption,
    describe,
    facts_from_info,
    parse_caption,
    region_masks,
    tokenize_caption,
    view_facts,
)

EXAMPLE = Facts(
    facing="north",
    standing_on="grass",
    regions={
        "north-west": "water",
        "north": "water",
        "west": "forest",
        "north-east": "grass",
        "east": "grass",
        "south-west": "grass",
        "south": "grass",
        "south-east": "grass",
    },
    animals=("east",),
)
EXAMPLE_TEXT = (
    "You stand on grass, facing north. Water lies north-west and north. Grass lies north-east, "
    "east, south-west, south and south-east. Forest lies west. A sheep is to the east."
)


@pytest.fixture(scope="module")
def infos():
    out = []
    for seed in range(5):
        env = HitchhikerWorld(map_size=40, animals=30, day_length=0, max_steps=0)
        _, info = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        out.append(info)
        for _ in range(60):
            *_, info = env.step(int(rng.integers(0, 6)))
            out.append(info)
    return out


def test_regions_partition_the_view_around_the_explorer():
    masks = region_masks(8, 8)
    assert masks.shape == (8, 8, 8)
    coverage = masks.sum(axis=0)
    assert coverage[4, 4] == 0 and (np.delete(coverage.ravel(), 36) == 1).all()
    assert masks[REGIONS.index("north")].sum() == 4 and masks[REGIONS.index("north")][:4, 4].all()
    assert masks[REGIONS.index("south-east")][5:, 5:].all()
    with pytest.raises(ValueError, match="3x3"):
        region_masks(2, 8)


def test_describe_writes_the_documented_sentences():
    assert describe(EXAMPLE) == EXAMPLE_TEXT
    herd = Facts(EXAMPLE.facing, "stump", EXAMPLE.regions, animals=("north", "east"))
    text = describe(herd)
    assert text.startswith("You stand on a stump, facing north.")
    assert text.endswith("Sheep are to the north and east.")
    assert "A sheep" not in describe(Facts("south", "sand", EXAMPLE.regions))


def test_facts_are_true_of_the_view(infos):
    seen_sheep = 0
    for info in infos:
        facts = facts_from_info(info)
        tiles, animals = info["tiles"], info["animals"]
        assert facts.standing_on == TILE_NAMES[tiles[4, 4]]
        assert facts.facing == ["north", "south", "west", "east"][info["heading"]]
        for region, mask in zip(REGIONS, region_masks(8, 8)):
            counts = np.bincount(tiles[mask], minlength=len(TILE_NAMES))
            kind = TILE_NAMES.index(facts.regions[region])
            assert counts[kind] == counts.max() and (counts[:kind] < counts.max()).all()
            assert (region in facts.animals) == bool(animals[mask].any())
        seen_sheep += len(facts.animals)
    assert seen_sheep > 20


def test_parse_inverts_describe_exactly_on_real_views(infos):
    texts = set()
    for info in infos:
        facts = facts_from_info(info)
        text = caption(info)
        assert parse_caption(text) == facts
        assert hash(parse_caption(text)) == hash(facts)
        assert set(tokenize_caption(text)) <= set(CAPTION_VOCAB)
        texts.add(text)
    assert len(texts) > 50  # captions vary with the view
    assert parse_caption(EXAMPLE_TEXT) == EXAMPLE
    assert CAPTION_VOCAB == sorted(set(CAPTION_VOCAB))


def test_view_facts_breaks_ties_towards_the_lower_kind():
    tiles = np.full((8, 8), 2, dtype=np.int8)  # grass
    tiles[:4, 4] = [0, 0, 4, 4]  # north: two water, two forest -> water
    facts = view_facts(tiles, 0)
    assert facts.regions["north"] == "water" and facts.animals == ()
    with pytest.raises(ValueError, match="heading"):
        view_facts(tiles, 4)
    with pytest.raises(ValueError, match="kinds"):
        view_facts(np.full((8, 8), 9), 0)
    with pytest.raises(ValueError, match="animals"):
        view_facts(tiles, 0, np.zeros((4, 4), bool))


@pytest.mark.parametrize(
    "text, message",
    [
        ("You stand on grass, facing north. Lava lies north.", "unknown word 'lava'.*vocabulary"),
        (EXAMPLE_TEXT.replace("Forest lies west. ", ""), "not described"),
        (EXAMPLE_TEXT.replace("Forest lies west.", "Forest lies west and north."), "twice"),
        (EXAMPLE_TEXT.replace("facing north.", "facing north"), "expected '.'"),
        (EXAMPLE_TEXT.replace("north-east, east,", "north-east east,"), "expected"),
        (EXAMPLE_TEXT.replace("A sheep is to the east", "A sheep is to the east and west"), "one"),
        (EXAMPLE_TEXT.replace("south and south-east", "south, south-east"), "'and'"),
        ("", "expected 'you'"),
    ],
)
def test_parse_rejects_malformed_captions_clearly(text, message):
    with pytest.raises(ValueError, match=message):
        parse_caption(text)


def test_facts_validate_their_fields():
    with pytest.raises(ValueError, match="facing"):
        Facts("up", "grass", EXAMPLE.regions)
    with pytest.raises(ValueError, match="standing_on"):
        Facts("north", "lava", EXAMPLE.regions)
    with pytest.raises(ValueError, match="regions"):
        Facts("north", "grass", {"north": "grass"})
    with pytest.raises(ValueError, match="animal regions"):
        Facts("north", "grass", EXAMPLE.regions, animals=("here",))
    with pytest.raises(KeyError, match="info lacks"):
        facts_from_info({"tiles": np.zeros((8, 8), int)})
    assert {EXAMPLE, parse_caption(EXAMPLE_TEXT)} == {EXAMPLE}
