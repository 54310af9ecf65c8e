"""Captions: short, exact English descriptions of a view, and their inverse.

A caption is a deterministic rendering of a few *facts* read off the ground-truth tile grid:

- what the explorer stands on and which way it faces;
- the dominant tile kind in each of 8 compass regions around it;
- which regions hold a sheep.

The regions split the (R, C) grid into 3 bands of rows (above, on, below the explorer's row) and
3 bands of columns (left of, on, right of its column), so every cell except the explorer's own
belongs to exactly one region. For the default 8x8 view with the explorer at (4, 4):

    north-west: rows 0-3, cols 0-3    north: rows 0-3, col 4    north-east: rows 0-3, cols 5-7
    west:       row 4,    cols 0-3    (explorer)                east:       row 4,    cols 5-7
    south-west: rows 5-7, cols 0-3    south: rows 5-7, col 4    south-east: rows 5-7, cols 5-7

The dominant kind of a region is its most frequent kind, ties going to the lower kind index.
The text groups regions by kind, kinds in order of their first region, e.g.

    "You stand on grass, facing north. Water lies north-west and north. Forest lies west.
     Grass lies north-east, east, south-west, south and south-east. A sheep is to the east."

:func:`parse_caption` inverts :func:`describe` exactly, so Stage II can score a generated caption
by parsing it and comparing facts with the image's (read back by the reader). CAPTION_VOCAB lists
every token (lowercase words, "," and ".") a caption uses, for building a tokenizer.

Shapes: R, C view side in tiles.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from .tiles import HEADING_NAMES, NUM_KINDS, TILE_NAMES, Tile

REGIONS: tuple[str, ...] = (
    "north-west",
    "north",
    "north-east",
    "west",
    "east",
    "south-west",
    "south",
    "south-east",
)
# Row band and column band of each region: -1 before the explorer, 0 on it, +1 after it.
_REGION_BANDS = {
    "north-west": (-1, -1),
    "north": (-1, 0),
    "north-east": (-1, 1),
    "west": (0, -1),
    "east": (0, 1),
    "south-west": (1, -1),
    "south": (1, 0),
    "south-east": (1, 1),
}

# How each kind reads as the subject of "... lie(s) <regions>" and after "You stand on ...".
_SUBJECT = {
    Tile.WATER: "water lies",
    Tile.SAND: "sand lies",
    Tile.GRASS: "grass lies",
    Tile.FLOWERS: "flowers lie",
    Tile.FOREST: "forest lies",
    Tile.STUMP: "stumps lie",
    Tile.ROCK: "rock lies",
    Tile.PATH: "path lies",
    Tile.HOUSE: "houses lie",
}
_GROUND = {
    Tile.WATER: "water",
    Tile.SAND: "sand",
    Tile.GRASS: "grass",
    Tile.FLOWERS: "flowers",
    Tile.FOREST: "forest",
    Tile.STUMP: "a stump",
    Tile.ROCK: "rock",
    Tile.PATH: "a path",
    Tile.HOUSE: "a house",
}
SUBJECT_WORDS: dict[str, tuple[str, ...]] = {
    TILE_NAMES[k]: tuple(v.split()) for k, v in _SUBJECT.items()
}
"""Kind name -> the words that open its sentence ("water" -> ("water", "lies"))."""
GROUND_WORDS: dict[str, tuple[str, ...]] = {
    TILE_NAMES[k]: tuple(v.split()) for k, v in _GROUND.items()
}
"""Kind name -> its words after "You stand on" ("stump" -> ("a", "stump"))."""
_SUBJECT_TO_KIND = {tuple(v.split()): TILE_NAMES[k] for k, v in _SUBJECT.items()}
_GROUND_TO_KIND = {tuple(v.split()): TILE_NAMES[k] for k, v in _GROUND.items()}

_FIXED_WORDS = ("you", "stand", "on", "facing", "and", "a", "sheep", "is", "are", "to", "the")
CAPTION_VOCAB: list[str] = sorted(
    set(_FIXED_WORDS)
    | set(HEADING_NAMES)
    | set(REGIONS)
    | {w for v in list(_SUBJECT.values()) + list(_GROUND.values()) for w in v.split()}
    | {",", "."}
)


@dataclass(frozen=True)
class Facts:
    """What a caption says; frozen, comparable and hashable."""

    facing: str
    """Heading name of the explorer: north, south, west or east."""
    standing_on: str
    """Kind name of the tile under the explorer."""
    regions: Mapping[str, str]
    """Dominant kind name of each of the 8 compass regions (all of REGIONS, read-only)."""
    animals: tuple[str, ...] = ()
    """Regions holding at least one sheep, in REGIONS order."""

    def __post_init__(self):
        if self.facing not in HEADING_NAMES:
            raise ValueError(f"facing must be one of {HEADING_NAMES}, got {self.facing!r}")
        if self.standing_on not in TILE_NAMES:
            raise ValueError(f"standing_on must be one of {TILE_NAMES}, got {self.standing_on!r}")
        regions = dict(self.regions)
        if set(regions) != set(REGIONS):
            raise ValueError(f"regions must name exactly {REGIONS}, got {sorted(regions)}")
        bad = {r: k for r, k in regions.items() if k not in TILE_NAMES}
        if bad:
            raise ValueError(f"region kinds must be among {TILE_NAMES}, got {bad}")
        unknown = [a for a in self.animals if a not in REGIONS]
        if unknown:
            raise ValueError(f"animal regions must be among {REGIONS}, got {unknown}")
        ordered = tuple(r for r in REGIONS if r in set(self.animals))
        if len(ordered) != len(self.animals):
            raise ValueError(f"animal regions must be distinct, got {self.animals}")
        object.__setattr__(self, "regions", MappingProxyType({r: regions[r] for r in REGIONS}))
        object.__setattr__(self, "animals", ordered)

    def __eq__(self, other):
        if not isinstance(other, Facts):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        return (self.facing, self.standing_on, tuple(self.regions.items()), self.animals)


@lru_cache(maxsize=16)
def region_masks(rows: int, cols: int) -> np.ndarray:
    """(8, R, C) bool: the cells of each region, in REGIONS order (read-only)."""
    if rows < 3 or cols < 3:
        raise ValueError(f"a view needs at least 3x3 tiles to have 8 regions, got {rows}x{cols}")
    rband = np.sign(np.arange(rows) - rows // 2)
    cband = np.sign(np.arange(cols) - cols // 2)
    masks = np.stack(
        [(rband[:, None] == br) & (cband[None, :] == bc) for br, bc in _REGION_BANDS.values()]
    )
    masks.flags.writeable = False
    return masks


def view_facts(tiles, heading: int, animals=None) -> Facts:
    """Facts of a view from ground truth: tiles (R, C) kinds, heading 0-3, animals (R, C) bool."""
    tiles = np.asarray(tiles)
    if tiles.ndim != 2 or not np.issubdtype(tiles.dtype, np.integer):
        raise ValueError(f"tiles must be an (R, C) integer array, got {tiles.dtype} {tiles.shape}")
    if tiles.min() < 0 or tiles.max() >= NUM_KINDS:
        raise ValueError(
            f"tile kinds must be in 0..{NUM_KINDS - 1}, got {tiles.min()}..{tiles.max()}"
        )
    if not 0 <= int(heading) < len(HEADING_NAMES):
        raise ValueError(f"heading must be in 0..{len(HEADING_NAMES) - 1}, got {heading}")
    masks = region_masks(*tiles.shape)
    # counts[i, k]: cells of kind k in region i; argmax picks the lowest kind on ties.
    onehot = tiles[None, :, :, None] == np.arange(NUM_KINDS)
    counts = (masks[..., None] & onehot).sum(axis=(1, 2))
    dominant = counts.argmax(axis=1)
    herd: tuple[str, ...] = ()
    if animals is not None:
        animals = np.asarray(animals, dtype=bool)
        if animals.shape != tiles.shape:
            raise ValueError(
                f"animals must have the tiles' shape {tiles.shape}, got {animals.shape}"
            )
        herd = tuple(r for r, m in zip(REGIONS, masks) if (animals & m).any())
    r, c = tiles.shape
    return Facts(
        facing=HEADING_NAMES[int(heading)],
        standing_on=TILE_NAMES[int(tiles[r // 2, c // 2])],
        regions={reg: TILE_NAMES[k] for reg, k in zip(REGIONS, dominant)},
        animals=herd,
    )


def facts_from_info(info: Mapping) -> Facts:
    """Facts of the view in an env `info` dict (uses "tiles", "heading" and "animals")."""
    missing = [k for k in ("tiles", "heading", "animals") if k not in info]
    if missing:
        raise KeyError(f"info lacks {missing}; expected the info dict of HitchhikerWorld")
    return view_facts(info["tiles"], info["heading"], info["animals"])


def _join(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe(facts: Facts) -> str:
    """The caption of `facts`: one sentence for the explorer, one per kind, one for sheep."""
    kind_id = {name: i for i, name in enumerate(TILE_NAMES)}
    sentences = [f"You stand on {_GROUND[kind_id[facts.standing_on]]}, facing {facts.facing}."]
    groups: dict[str, list[str]] = {}
    for region in REGIONS:
        groups.setdefault(facts.regions[region], []).append(region)
    for kind, regions in groups.items():
        subject = _SUBJECT[kind_id[kind]]
        sentences.append(f"{subject[0].upper()}{subject[1:]} {_join(regions)}.")
    if len(facts.animals) == 1:
        sentences.append(f"A sheep is to the {facts.animals[0]}.")
    elif facts.animals:
        sentences.append(f"Sheep are to the {_join(facts.animals)}.")
    return " ".join(sentences)


def caption(info: Mapping) -> str:
    """The caption of the view in an env `info` dict."""
    return describe(facts_from_info(info))


def tokenize_caption(text: str) -> list[str]:
    """Lowercase word and punctuation tokens of a caption (words may contain hyphens)."""
    if not isinstance(text, str):
        raise TypeError(f"a caption must be a str, got {type(text).__name__}")
    return re.findall(r"[a-z]+(?:-[a-z]+)*|[^\sa-z]", text.lower())


class _Tokens:
    """A cursor over caption tokens with error messages that say what was expected."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.i = tokens, 0

    def peek(self, k: int = 0):
        return self.tokens[self.i + k] if self.i + k < len(self.tokens) else None

    def take(self, *expected: str) -> str:
        tok = self.peek()
        if tok is None or (expected and tok not in expected):
            got = "end of caption" if tok is None else repr(tok)
            want = " or ".join(map(repr, expected)) or "a word"
            raise ValueError(f"malformed caption at token {self.i}: expected {want}, got {got}")
        self.i += 1
        return tok

    def phrase(self, table: dict, what: str):
        """The longest entry of `table` (token tuples -> value) starting here."""
        for key in sorted(table, key=len, reverse=True):
            if tuple(self.tokens[self.i : self.i + len(key)]) == key:
                self.i += len(key)
                return table[key]
        options = sorted(" ".join(k) for k in table)
        raise ValueError(
            f"malformed caption at token {self.i}: expected {what} ({', '.join(options)}), "
            f"got {self.peek()!r}"
        )

    def region_list(self) -> list[str]:
        """ "r1", "r1 and r2" or "r1, r2 and r3": the form `_join` writes."""
        regions = [self.take(*REGIONS)]
        while self.peek() == ",":
            self.take(",")
            regions.append(self.take(*REGIONS))
        if self.peek() == "and":
            self.take("and")
            regions.append(self.take(*REGIONS))
        elif len(regions) > 1:
            self.take("and")  # a list of two or more must end with "and <region>"
        return regions


def parse_caption(text: str) -> Facts:
    """Facts from a caption written by :func:`describe`; raises ValueError on anything else."""
    tokens = tokenize_caption(text)
    unknown = [t for t in tokens if t not in CAPTION_VOCAB]
    if unknown:
        raise ValueError(
            f"unknown word {unknown[0]!r} in caption; the vocabulary is {' '.join(CAPTION_VOCAB)}"
        )
    cur = _Tokens(tokens)
    for word in ("you", "stand", "on"):
        cur.take(word)
    standing_on = cur.phrase(_GROUND_TO_KIND, "a ground kind")
    cur.take(",")
    cur.take("facing")
    facing = cur.take(*HEADING_NAMES)
    cur.take(".")

    regions: dict[str, str] = {}
    animals: tuple[str, ...] = ()
    while cur.peek() is not None:
        if cur.peek() == "sheep" or (cur.peek() == "a" and cur.peek(1) == "sheep"):
            if animals:
                raise ValueError("malformed caption: sheep are mentioned twice")
            plural = cur.take("a", "sheep") == "sheep"
            if not plural:
                cur.take("sheep")
            cur.take("are" if plural else "is")
            cur.take("to")
            cur.take("the")
            found = cur.region_list()
            if (len(found) > 1) != plural:
                raise ValueError(
                    "malformed caption: 'A sheep is' takes one region, 'Sheep are' more"
                )
            animals = tuple(found)
            cur.take(".")
            continue
        kind = cur.phrase(_SUBJECT_TO_KIND, "a kind and its verb")
        for region in cur.region_list():
            if region in regions:
                raise ValueError(f"malformed caption: region {region!r} is described twice")
            regions[region] = kind
        cur.take(".")
    missing = [r for r in REGIONS if r not in regions]
    if missing:
        raise ValueError(f"malformed caption: regions {missing} are not described")
    if len(set(animals)) != len(animals) or list(animals) != [r for r in REGIONS if r in animals]:
        raise ValueError(
            f"malformed caption: sheep regions {list(animals)} are repeated or out of order"
        )
    return Facts(facing=facing, standing_on=standing_on, regions=regions, animals=animals)
