"""The Hitchhiker world: one procedural island that every stage of the course lives in.

- :mod:`.tiles`    what the world is made of (tile kinds, headings) and how it looks
- :mod:`.mapgen`   seeded terrain, lakes, villages and paths
- :mod:`.env`      the Gymnasium environment: an explorer, sheep, day and night
- :mod:`.reader`   exact ground truth read back from any frame, real or generated
- :mod:`.captions` short English descriptions of a view, and their exact inverse
- :mod:`.policies` behaviour policies that walk the explorer while data is recorded
- :mod:`.dataset`  recorded play with exact ground truth, cached, as torch datasets
- :mod:`.show`     pictures of the world for the notebooks: frames, the tile atlas, maps, readings

Quick start::

    from hitchhiker.world import HitchhikerWorld, caption
    env = HitchhikerWorld()
    frame, info = env.reset(seed=0)
    frame, reward, terminated, truncated, info = env.step("up")
    print(caption(info))
"""

from .captions import (
    CAPTION_VOCAB,
    REGIONS,
    Facts,
    caption,
    describe,
    facts_from_info,
    parse_caption,
    region_masks,
    tokenize_caption,
    view_facts,
)
from .env import (
    ACTION_NAMES,
    ENV_ID,
    INTERACT_RESULT,
    Action,
    HitchhikerWorld,
    SimulatorEngine,
    WorldConfig,
    daylight,
    make_config,
    parse_action,
)
from .mapgen import WorldMap, generate_map
from .reader import (
    CONFIDENT,
    VALID_DISTANCE,
    TileReading,
    confident_share,
    frame_validity,
    read_tiles,
    tile_accuracy,
)
from .tiles import (
    BLOCKING,
    HEADING_DELTAS,
    HEADING_NAMES,
    NUM_KINDS,
    TEXTURE_VARIANTS,
    TILE_NAMES,
    WALKABLE_KINDS,
    Heading,
    Tile,
    tile_textures,
)

__all__ = [
    "ACTION_NAMES",
    "BLOCKING",
    "CAPTION_VOCAB",
    "CONFIDENT",
    "ENV_ID",
    "HEADING_DELTAS",
    "HEADING_NAMES",
    "INTERACT_RESULT",
    "NUM_KINDS",
    "REGIONS",
    "TEXTURE_VARIANTS",
    "TILE_NAMES",
    "VALID_DISTANCE",
    "WALKABLE_KINDS",
    "Action",
    "Facts",
    "Heading",
    "HitchhikerWorld",
    "SimulatorEngine",
    "Tile",
    "TileReading",
    "WorldConfig",
    "WorldMap",
    "caption",
    "confident_share",
    "daylight",
    "describe",
    "facts_from_info",
    "frame_validity",
    "generate_map",
    "make_config",
    "parse_action",
    "parse_caption",
    "read_tiles",
    "region_masks",
    "tile_accuracy",
    "tile_textures",
    "tokenize_caption",
    "view_facts",
]
