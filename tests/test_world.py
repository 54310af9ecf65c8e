"""The procedural world: config, map generation, rules, rendering, determinism, Gymnasium API."""

from collections import deque

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from hitchhiker.world import (
    ACTION_NAMES,
    BLOCKING,
    ENV_ID,
    HEADING_DELTAS,
    NUM_KINDS,
    TEXTURE_VARIANTS,
    Action,
    Heading,
    HitchhikerWorld,
    SimulatorEngine,
    Tile,
    WorldConfig,
    daylight,
    generate_map,
    parse_action,
    tile_textures,
)
from hitchhiker.world.tiles import explorer_tiles, sheep_tiles, variant_of

SMALL = dict(map_size=32, animals=6, day_length=40, max_steps=500)
MOVE = {(-1, 0): "up", (1, 0): "down", (0, -1): "left", (0, 1): "right"}


def navigate(env, goal, avoid_animals=True):
    """Walk the explorer to map tile `goal` along a BFS path; returns the last info."""
    start = tuple(int(v) for v in env.position)
    goal = tuple(int(v) for v in goal)
    occupied = {tuple(a) for a in env.animal_positions()} if avoid_animals else set()
    parent = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        for d in MOVE:
            nxt = (cell[0] + d[0], cell[1] + d[1])
            if nxt not in parent and env.walkable(*nxt) and nxt not in occupied:
                parent[nxt] = cell
                queue.append(nxt)
    assert goal in parent, f"{goal} unreachable from {start}"
    path = []
    while parent[goal] is not None:
        prev = parent[goal]
        path.append(MOVE[(goal[0] - prev[0], goal[1] - prev[1])])
        goal = prev
    info = None
    for action in reversed(path):
        *_, info = env.step(action)
        assert info["moved"]
    return info


def neighbours_of_kind(env, kind, need_behind=False):
    """(stand, direction) pairs: a reachable tile and the heading towards an adjacent `kind`
    tile; with `need_behind`, the tile behind `stand` is reachable too (to arrive facing it)."""
    kinds = env.full_map()
    reach = env.base_map.reachable
    occupied = {tuple(a) for a in env.animal_positions()}
    size = kinds.shape[0]

    def free(cell):
        inside = 0 <= cell[0] < size and 0 <= cell[1] < size
        return inside and reach[cell] and cell not in occupied

    out = []
    for r, c in np.argwhere(kinds == kind):
        for h, (dr, dc) in enumerate(HEADING_DELTAS):
            stand = (int(r - dr), int(c - dc))
            behind = (int(r - 2 * dr), int(c - 2 * dc))
            if free(stand) and (free(behind) or not need_behind):
                out.append((stand, h, (int(r), int(c))))
    return out


def face(env, stand, heading):
    """Arrive on `stand` facing `heading` (by walking in from the tile behind it)."""
    dr, dc = HEADING_DELTAS[heading]
    navigate(env, (stand[0] - dr, stand[1] - dc))
    *_, info = env.step(Action.UP + heading)
    assert info["moved"] and tuple(info["position"]) == tuple(stand)
    return info


# --------------------------------------------------------------------------- config and actions
def test_config_rejects_bad_values_and_unknown_fields():
    with pytest.raises(TypeError, match="valid fields: map_size"):
        HitchhikerWorld(size=32)
    with pytest.raises(ValueError, match="multiple of tile_px"):
        WorldConfig(view_px=60)
    with pytest.raises(ValueError, match="map_size"):
        WorldConfig(map_size=8)
    with pytest.raises(ValueError, match="animal_move_prob"):
        WorldConfig(animal_move_prob=1.5)
    with pytest.raises(ValueError, match="tile_px"):
        WorldConfig(tile_px=2, view_px=16)
    with pytest.raises(TypeError, match="map_size"):
        WorldConfig(map_size="big")
    with pytest.raises(ValueError, match="render_mode"):
        HitchhikerWorld(render_mode="human")
    cfg = HitchhikerWorld(WorldConfig(animals=3), map_size=40).config
    assert (cfg.animals, cfg.map_size, cfg.view_tiles) == (3, 40, 8)


def test_parse_action_accepts_ints_names_enums_and_rejects_the_rest():
    assert ACTION_NAMES == ["noop", "up", "down", "left", "right", "interact"]
    for i, name in enumerate(ACTION_NAMES):
        assert parse_action(i) == parse_action(name) == parse_action(Action(i)) == i
        assert parse_action(np.int64(i)) == parse_action(np.array(i)) == i
    assert parse_action(" UP ") == Action.UP
    for bad in ["jump", 6, -1, 1.0, None, True, [1]]:
        with pytest.raises(ValueError, match="noop, up, down, left, right, interact or 0-5"):
            parse_action(bad)
    env = HitchhikerWorld(**SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="unknown action 'jump'"):
        env.step("jump")


# --------------------------------------------------------------------------- map generation
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_map_has_every_kind_coherent_regions_and_a_large_walkable_island(seed):
    m = generate_map(96, seed)
    counts = np.bincount(m.kinds.ravel(), minlength=NUM_KINDS)
    assert counts[Tile.STUMP] == 0  # stumps only come from cutting trees
    assert all(counts[k] > 0 for k in Tile if k != Tile.STUMP), counts
    k = m.kinds
    same = sum((k[1:-1, 1:-1] == np.roll(k, s, a)[1:-1, 1:-1]) for s in (1, -1) for a in (0, 1))
    assert (same >= 2).mean() > 0.9  # most tiles share their kind with most neighbours
    border = np.ones_like(k, dtype=bool)
    border[3:-3, 3:-3] = False
    assert (k[border] == Tile.WATER).all()  # ocean all around: nobody walks off the map
    assert m.reachable[m.spawn] and not BLOCKING[k[m.spawn]]
    assert m.reachable.sum() > 0.4 * k.size
    assert not BLOCKING[k[m.reachable]].any()
    assert abs(m.spawn[0] - 48) < 12 and abs(m.spawn[1] - 48) < 12


def test_maps_are_deterministic_by_seed_and_differ_across_seeds():
    a, b, c = generate_map(40, 7), generate_map(40, 7), generate_map(40, 8)
    assert np.array_equal(a.kinds, b.kinds) and a.spawn == b.spawn
    assert (a.kinds != c.kinds).mean() > 0.2
    with pytest.raises(ValueError, match="map size"):
        generate_map(8, 0)
    with pytest.raises(ValueError, match="seed"):
        generate_map(32, -1)


def test_textures_are_distinct_between_kinds_at_every_size():
    for p in (4, 8, 16):
        tex = tile_textures(p)
        assert tex.shape == (NUM_KINDS, TEXTURE_VARIANTS, p, p, 3) and tex.dtype == np.uint8
        flat = tex.reshape(NUM_KINDS * TEXTURE_VARIANTS, -1).astype(float)
        d = ((flat[:, None] - flat[None]) ** 2).mean(-1)
        kind = np.repeat(np.arange(NUM_KINDS), TEXTURE_VARIANTS)
        rms = np.sqrt(d[kind[:, None] != kind[None]].min())
        assert rms > 25, (p, rms)  # far apart: > 25 grey levels RMS per pixel channel
        assert (d[np.triu_indices(len(d), 1)] > 0).all()  # variants differ too
    assert np.array_equal(tile_textures(8), tile_textures.__wrapped__(8))  # fixed seed
    v = variant_of(np.arange(100)[:, None], np.arange(100)[None], 3)
    assert np.array_equal(v, variant_of(np.arange(100)[:, None], np.arange(100)[None], 3))
    assert (np.bincount(v.ravel(), minlength=TEXTURE_VARIANTS) > 2000).all()


# --------------------------------------------------------------------------- episodes
def run(env, seed, actions):
    frames, infos = [], []
    frame, info = env.reset(seed=seed)
    frames.append(frame)
    infos.append(info)
    for a in actions:
        frame, reward, terminated, truncated, info = env.step(a)
        assert reward == 0.0 and terminated is False
        frames.append(frame)
        infos.append(info)
    return frames, infos


def test_same_seed_and_actions_give_identical_frames_and_infos():
    actions = np.random.default_rng(0).integers(0, 6, size=150)
    fa, ia = run(HitchhikerWorld(**SMALL), 5, actions)
    fb, ib = run(HitchhikerWorld(**SMALL), 5, actions)
    assert all(np.array_equal(a, b) for a, b in zip(fa, fb))
    for a, b in zip(ia, ib):
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key], b[key]) if key != "changed" else a[key] == b[key]
    fc, _ = run(HitchhikerWorld(**SMALL), 6, actions)
    assert not np.array_equal(fa[0], fc[0])


def test_gymnasium_env_checker_passes():
    check_env(gymnasium.make(ENV_ID, **SMALL).unwrapped, skip_render_check=False)
    env = HitchhikerWorld(**SMALL)
    frame, info = env.reset(seed=1)
    assert env.observation_space.contains(frame)
    assert env.action_space.n == 6
    assert np.array_equal(env.render(), frame)
    expected = {"position", "heading", "step", "tiles", "animals", "light", "moved", "changed"}
    assert set(info) == expected
    assert info["tiles"].dtype == np.int8 and info["tiles"].shape == (8, 8)
    assert info["light"].dtype == np.float32 and info["light"].shape == (3,)


def test_info_matches_the_map_and_the_sheep_around_the_explorer():
    env = HitchhikerWorld(**{**SMALL, "animals": 25})
    env.reset(seed=2)
    rng = np.random.default_rng(2)
    for _ in range(120):
        *_, info = env.step(int(rng.integers(0, 6)))
        r, c = info["position"]
        padded = np.pad(env.full_map(), 4, constant_values=Tile.WATER)
        assert np.array_equal(info["tiles"], padded[r : r + 8, c : c + 8])
        assert np.array_equal(info["tiles"], env.view_tiles_at(r, c))
        expected = np.zeros((8, 8), bool)
        for ar, ac in env.animal_positions():
            if -4 <= ar - r < 4 and -4 <= ac - c < 4:
                expected[ar - r + 4, ac - c + 4] = True
        assert np.array_equal(info["animals"], expected)
    with pytest.raises(ValueError, match="must lie in"):
        env.view_tiles_at(-1, 0)


def test_a_move_shifts_the_view_by_exactly_one_tile():
    env = HitchhikerWorld(**{**SMALL, "animals": 0, "day_length": 0})
    env.reset(seed=3)

    def grid(frame):  # (R, C, P, P, 3) tiles of a frame
        return frame.reshape(8, 8, 8, 8, 3).transpose(0, 2, 1, 3, 4)

    moves = 0
    for action, (dr, dc) in [("up", (-1, 0)), ("left", (0, -1)), ("down", (1, 0))] * 4:
        before = grid(env.render())
        frame, *_, info = env.step(action)
        if not info["moved"]:
            continue
        moves += 1
        after = grid(frame)
        # New view tile (i, j) shows the map tile that old view tile (i + dr, j + dc) showed,
        # except where the explorer stands now and where it stood before.
        for i in range(max(0, -dr), 8 - max(0, dr)):
            for j in range(max(0, -dc), 8 - max(0, dc)):
                if (i, j) not in {(4, 4), (4 - dr, 4 - dc)}:
                    assert np.array_equal(after[i, j], before[i + dr, j + dc])
    assert moves >= 3


@pytest.mark.parametrize("kind", [Tile.WATER, Tile.ROCK, Tile.HOUSE])
def test_blocking_tiles_turn_the_explorer_but_do_not_let_it_through(kind):
    env = HitchhikerWorld(map_size=64, animals=0, day_length=0, max_steps=0)
    env.reset(seed=0)
    stand, heading, target = neighbours_of_kind(env, kind)[0]
    navigate(env, stand)
    frame, *_, info = env.step(Action.UP + heading)
    assert tuple(info["position"]) == stand and not info["moved"]
    assert info["heading"] == heading
    centre = frame[32:40, 32:40]
    ground = env.full_map()[stand]
    variant = variant_of(stand[0], stand[1], env.map_seed)
    assert np.array_equal(centre, explorer_tiles(8)[ground, variant, heading])


def test_interact_changes_the_faced_tile_persists_and_resets():
    env = HitchhikerWorld(map_size=48, animals=0, day_length=0)
    env.reset(seed=4)
    pristine = env.full_map()
    stand, heading, target = neighbours_of_kind(env, Tile.FOREST, need_behind=True)[0]
    face(env, stand, heading)
    frame, *_, info = env.step("interact")
    assert info["changed"] == (*target, Tile.FOREST, Tile.STUMP)
    now = env.full_map()
    assert np.argwhere(now != pristine).tolist() == [list(target)]
    vr, vc = np.subtract(target, stand) + 4
    variant = variant_of(target[0], target[1], env.map_seed)
    stump = tile_textures(8)[Tile.STUMP, variant]
    assert np.array_equal(frame[vr * 8 : vr * 8 + 8, vc * 8 : vc * 8 + 8], stump)
    # Walk away (out of view) and come back: still a stump, in the map and in the frame.
    far = tuple(np.argwhere(env.base_map.reachable)[0])
    navigate(env, far)
    assert max(abs(far[0] - target[0]), abs(far[1] - target[1])) > 4
    face(env, stand, heading)
    frame, *_, info = env.step("noop")
    assert np.array_equal(frame[vr * 8 : vr * 8 + 8, vc * 8 : vc * 8 + 8], stump)
    assert env.full_map()[target] == Tile.STUMP
    # Plant it back, then check grass <-> flowers and that interacting with sand does nothing.
    *_, info = env.step("interact")
    assert info["changed"] == (*target, Tile.STUMP, Tile.FOREST)
    stand, heading, target = neighbours_of_kind(env, Tile.GRASS, need_behind=True)[0]
    face(env, stand, heading)
    *_, info = env.step("interact")
    assert info["changed"] == (*target, Tile.GRASS, Tile.FLOWERS)
    env.step("interact")
    assert env.full_map()[target] == Tile.GRASS
    stand, heading, target = neighbours_of_kind(env, Tile.WATER)[0]
    navigate(env, stand)
    env.step(Action.UP + heading)
    *_, info = env.step("interact")
    assert info["changed"] is None
    stand, heading, target = neighbours_of_kind(env, Tile.FOREST, need_behind=True)[0]
    face(env, stand, heading)
    env.step("interact")
    assert not np.array_equal(env.full_map(), pristine)
    env.reset(seed=4)
    assert np.array_equal(env.full_map(), pristine)


def test_sheep_wander_only_on_free_walkable_tiles_and_never_on_the_explorer():
    env = HitchhikerWorld(**{**SMALL, "animals": 30, "animal_move_prob": 0.8})
    env.reset(seed=5)
    start = env.animal_positions()
    assert len(start) == 30
    near = np.abs(start - np.array(env.spawn)).max(axis=1) <= 12
    assert near.sum() >= 15  # half the flock starts within reach of the spawn
    rng = np.random.default_rng(5)
    for _ in range(300):
        *_, info = env.step(int(rng.integers(0, 5)))
        pos = env.animal_positions()
        assert len({tuple(p) for p in pos}) == len(pos)  # one sheep per tile
        assert not BLOCKING[env.full_map()[pos[:, 0], pos[:, 1]]].any()
        assert not (pos == info["position"]).all(axis=1).any()
    assert (env.animal_positions() != start).any(axis=1).mean() > 0.5


def test_walking_into_a_sheep_pushes_it_ahead():
    env = HitchhikerWorld(map_size=40, animals=12, animal_move_prob=0.0, day_length=0)
    env.reset(seed=6)
    occupied = {tuple(a) for a in env.animal_positions()}
    candidates = [
        (tuple(sheep), h, (sheep[0] - dr, sheep[1] - dc), (sheep[0] + dr, sheep[1] + dc))
        for sheep in env.animal_positions()
        for h, (dr, dc) in enumerate(HEADING_DELTAS)
    ]
    sheep, h, stand, ahead = next(
        c for c in candidates if all(env.walkable(*t) and t not in occupied for t in c[2:])
    )
    navigate(env, stand)
    *_, info = env.step(Action.UP + h)
    assert info["moved"] and tuple(info["position"]) == tuple(sheep)
    positions = {tuple(a) for a in env.animal_positions()}
    assert ahead in positions and tuple(sheep) not in positions and len(positions) == 12


def test_day_night_light_and_lighting_off():
    noon, midnight, dusk = daylight(np.array([0, 120, 60]), 240)
    assert np.allclose(noon, 1)
    assert np.allclose(midnight, [0.45, 0.5, 0.7], atol=1e-6)
    assert dusk[0] > dusk[2]  # warm
    day = daylight(np.arange(480), 240)
    assert (day > 0).all() and (day <= 1).all()
    assert np.abs(np.diff(day, axis=0)).max() < 0.03  # smooth
    assert np.array_equal(day[:240], day[240:])

    lit = HitchhikerWorld(**{**SMALL, "day_length": 8})
    dark = HitchhikerWorld(**{**SMALL, "day_length": 0})
    lit.reset(seed=7)
    dark.reset(seed=7)
    for _ in range(4):
        fl, *_, il = lit.step("noop")
        fd, *_, idk = dark.step("noop")
        assert np.array_equal(idk["light"], np.ones(3, np.float32))
    assert np.allclose(il["light"], daylight(4, 8))  # step 4 of 8: midnight
    expected = np.rint(fd.astype(np.float32) * il["light"]).astype(np.uint8)
    assert np.array_equal(fl, expected)


def test_truncation_heading_and_sprites():
    env = HitchhikerWorld(**{**SMALL, "max_steps": 5, "animals": 0, "day_length": 0})
    env.reset(seed=8)
    results = [env.step("noop") for _ in range(6)]
    assert [r[3] for r in results] == [False] * 4 + [True, True]
    assert results[-1][4]["step"] == 6
    for action, heading in [("up", Heading.NORTH), ("left", Heading.WEST), ("noop", Heading.WEST)]:
        *_, info = env.step(action)
        assert info["heading"] == heading
    sheep = sheep_tiles(8)[Tile.GRASS, 0].astype(int)
    assert (sheep.min(axis=2) > 200).sum() >= 6  # a white fleece
    ex = explorer_tiles(8)[Tile.GRASS, 0].reshape(4, -1).astype(int)
    assert min(np.abs(ex[i] - ex[j]).sum() for i in range(4) for j in range(i)) > 1000


def test_render_map_and_engine():
    env = HitchhikerWorld(**SMALL)
    env.reset(seed=9)
    picture = env.render_map(scale=2)
    assert picture.shape == (64, 64, 3) and picture.dtype == np.uint8
    r, c = env.position
    assert (picture[2 * r, 2 * c] == (230, 30, 30)).all()
    full = env.render_map(scale=8, entities=False)
    assert full.shape == (256, 256, 3)
    assert np.array_equal(full[:8, :8], tile_textures(8)[Tile.WATER, variant_of(0, 0, 9)])
    with pytest.raises(ValueError, match="scale"):
        env.render_map(0)

    engine = SimulatorEngine(**SMALL)
    assert engine.actions == ACTION_NAMES
    env.reset(seed=9)
    assert np.array_equal(engine.reset(9), env.render())
    for a in ["up", "left", 5, "down"]:
        frame = engine.step(a)
        expected, *_, info = env.step(a)
        assert np.array_equal(frame, expected)
        assert np.array_equal(engine.info["position"], info["position"])
