"""Stage V: tasks with exact rewards, heads on the dynamics, the dream behind gymnasium's API, the
actor-critic's lambda-returns, a tiny agent that learns in a tiny dream, and clear errors."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from hitchhiker import zoo
from hitchhiker.agents import (
    FlowerPicker,
    FlowerScript,
    GoHome,
    HomeScript,
    LookHome,
    RandomPolicy,
    RetraceHome,
    make_task,
)
from hitchhiker.agents.actor_critic import (
    ActorCriticConfig,
    TokenPolicy,
    lambda_returns,
    train_in_dream,
    update,
)
from hitchhiker.agents.agent_play import AgentPanel, AgentPlay
from hitchhiker.agents.closed_loop import (
    closed_loop,
    dynamics_play,
    own_play,
    paid_windows,
    picks_cleared,
    refit_dynamics,
    refit_heads,
)
from hitchhiker.agents.dream import DreamEnv, DreamVecEnv, StartBank
from hitchhiker.agents.heads import TaskHeads, fit_heads, recorded_play, window_features
from hitchhiker.agents.judge import real_returns
from hitchhiker.agents.planner import ShootingPlanner, planner_returns
from hitchhiker.agents.tasks import action_rewards, episode_rewards, pick_reward
from hitchhiker.interactive.masked_dynamics_engine import DynamicsEngine
from hitchhiker.interactive.masked_dynamics_recipe import WindowDataset
from hitchhiker.tokens import OracleTokenizer, encode_frames
from hitchhiker.world import Action, HitchhikerWorld, Tile
from hitchhiker.world.dataset import LEARNING_WORLD, episode_seed, record

# ------------------------------------------------------------------------------- tasks


def play(task, policy, seed):
    obs, info = task.reset(seed=seed)
    policy.reset(task, seed)
    rows = {
        "positions": [info["position"]],
        "headings": [info["heading"]],
        "tiles": [info["tiles"]],
        "actions": [],
        "rewards": [],
    }
    while True:
        a = policy.act(obs, info)
        obs, r, term, trunc, info = task.step(a)
        rows["actions"].append(a)
        rows["rewards"].append(r)
        for k in ("position", "heading", "tiles"):
            rows[k + "s" if k != "tiles" else k].append(info[k])
        if term or trunc:
            return {k: np.asarray(v) for k, v in rows.items()}, term, trunc


@pytest.mark.parametrize("i", range(3))
def test_flower_picker_pays_exactly_what_the_recorded_rule_pays(i):
    ep, term, trunc = play(FlowerPicker(steps=24), FlowerScript(), episode_seed("test", i))
    assert trunc and not term and len(ep["actions"]) == 24
    exact = episode_rewards(
        ep["positions"][None], ep["headings"][None], ep["actions"][None], ep["tiles"][None]
    )[0]
    np.testing.assert_array_equal(exact, ep["rewards"])
    assert ep["rewards"].sum() >= 3  # the scripted picker finds flowers on these worlds
    # the view-only rule agrees wherever no self-planted flower is involved (none here)
    seen = pick_reward(ep["tiles"][:-1], ep["headings"][:-1], ep["actions"], ep["tiles"][1:])
    np.testing.assert_array_equal(seen, ep["rewards"])


def test_every_actions_reward_is_exact_where_taken_and_only_interact_pays():
    rec = record(
        "test", 8, 24, "random", world=LEARNING_WORLD, policy_kwargs={"interact_prob": 0.4},
        progress=False,
    )  # fmt: skip
    every = action_rewards(rec.positions, rec.headings, rec.actions, rec.tiles)
    taken = np.take_along_axis(every, rec.actions[..., None].astype(np.int64), 2)[..., 0]
    exact = episode_rewards(rec.positions, rec.headings, rec.actions, rec.tiles)
    assert exact.sum() >= 1
    np.testing.assert_array_equal(taken, exact)
    assert not every[..., : Action.INTERACT].any()  # a move or a noop never pays
    assert every[..., Action.INTERACT].sum() > exact.sum()  # faced flowers nobody picked


def test_picking_a_flower_you_planted_pays_nothing():
    task = FlowerPicker(steps=50)
    task.reset(seed=episode_seed("test", 0))
    world = task.unwrapped
    # find a heading that faces grass or flowers from the spawn (turn by bumping is not possible
    # on open ground, so walk until the faced tile is grass)
    for _ in range(40):
        r, c = np.add(world.position, [(-1, 0), (1, 0), (0, -1), (0, 1)][world.heading])
        if world.full_map()[r, c] == Tile.GRASS:
            break
        task.step(int(np.random.default_rng(_).integers(1, 5)))
    assert world.full_map()[r, c] == Tile.GRASS
    rewards = [task.step(Action.INTERACT)[1] for _ in range(4)]  # plant, pick, plant, pick
    assert rewards == [0.0, 0.0, 0.0, 0.0]
    assert task.step(Action.NOOP)[4]["picked"] == 0


def test_go_home_rewards_and_terminates_exactly_at_the_door():
    task = GoHome(out_steps=6, back_steps=30)
    seed = episode_seed("test", 1)
    obs, info = task.reset(seed=seed)
    walk = info["walk_out"]
    assert walk["frames"].shape[0] == len(walk["actions"]) + 1 and len(walk["actions"]) >= 1
    np.testing.assert_array_equal(walk["frames"][-1], obs)
    assert tuple(info["position"]) != info["home"]
    # replaying the walk from home in a fresh world reproduces its frames
    world = HitchhikerWorld(LEARNING_WORLD, max_steps=0)
    first, _ = world.reset(seed=seed, options={"start": info["home"]})
    np.testing.assert_array_equal(first, walk["frames"][0])
    ep, term, trunc = play(task, HomeScript(), seed)
    assert term and not trunc and ep["rewards"].tolist() == [0.0] * (len(ep["rewards"]) - 1) + [1.0]
    assert tuple(ep["positions"][-1]) == info["home"]


def test_go_home_truncates_when_the_agent_never_arrives():
    task = GoHome(out_steps=6, back_steps=5)
    task.reset(seed=episode_seed("test", 2))
    outs = [task.step(Action.NOOP) for _ in range(5)]
    assert [o[3] for o in outs] == [False] * 4 + [True] and not any(o[2] for o in outs)
    assert sum(o[1] for o in outs) == 0


def test_tasks_and_starts_refuse_bad_input():
    with pytest.raises(ValueError, match="unknown task 'chess'.*flower_picker"):
        make_task("chess")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        FlowerPicker(steps=0)
    world = HitchhikerWorld(LEARNING_WORLD)
    with pytest.raises(ValueError, match="walkable tile of the spawn's region"):
        world.reset(seed=3, options={"start": (0, 0)})
    with pytest.raises(ValueError, match="only the option 'start'"):
        world.reset(seed=3, options={"teleport": 1})


# ------------------------------------------------------------------------------- the dream


@pytest.fixture(scope="module")
def tiny():
    """A smoke-size dynamics on the oracle tokenizer, heads fitted to reward 'interact', and a
    start bank of recorded play."""
    torch.manual_seed(0)
    model, cfg = zoo.load_or_fit("dynamics", "smoke", tokenizer="oracle")
    tok = OracleTokenizer()
    engine = DynamicsEngine(model, tok, decode_steps=1, temperature=0.0, cfg=cfg)
    rec = record("train", 6, 16, "random", world=LEARNING_WORLD, progress=False)
    tokens = encode_frames(tok, rec.frames.reshape(-1, 64, 64, 3)).view(6, 17, 8, 8)
    acts = torch.as_tensor(rec.actions)
    feats = window_features(engine, tokens, acts)
    heads = TaskHeads(cfg.dim, 64, engine.name, "flower_picker")
    # a toy task every frame can pay: +1 for interacting, whatever is faced; every frame is shown
    # with every action, so the heads learn the rule, not the few frames play interacted on
    toy = torch.zeros(len(feats), 6)
    toy[:, Action.INTERACT] = 1.0
    fit_heads(heads, feats, None, toy, torch.zeros(len(feats)), steps=150, lr=1e-2)
    return engine, heads, StartBank.from_play(engine, tokens, acts)


def test_the_dream_passes_gymnasiums_checker(tiny):
    engine, heads, bank = tiny
    env = DreamEnv(engine, heads, bank, horizon=6)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (8, 8) and env.observation_space.contains(obs)


def test_batched_and_single_dreams_agree(tiny):
    engine, heads, bank = tiny
    starts, rng = [0, 5, 40], np.random.default_rng(0)
    actions = rng.integers(0, 6, (6, 3))
    vec = DreamVecEnv(engine, heads, bank, num_envs=3, horizon=10, sample_heads=False)
    obs, _ = vec.reset(seed=0, options={"starts": starts})
    batched = [obs]
    for a in actions:
        batched.append(vec.step(a)[0])
    for k, s in enumerate(starts):
        one = DreamEnv(engine, heads, bank, horizon=10, sample_heads=False)
        o, _ = one.reset(seed=0, options={"start": s})
        single = [o] + [one.step(int(a[k]))[0] for a in actions]
        np.testing.assert_array_equal(np.stack(single), np.stack(batched)[:, k])


def test_the_dream_truncates_at_its_horizon_and_starts_again(tiny):
    engine, heads, bank = tiny
    vec = DreamVecEnv(engine, heads, bank, num_envs=4, horizon=3)
    vec.reset(seed=2)
    outs = [vec.step(np.zeros(4, dtype=np.int64)) for _ in range(3)]
    assert not outs[0][3].any() and outs[2][3].all()
    assert "final_obs" in outs[2][4] and outs[2][4]["final_obs"].shape == (4, 8, 8)


def test_the_dream_refuses_bad_input(tiny):
    engine, heads, bank = tiny
    vec = DreamVecEnv(engine, heads, bank, num_envs=4, horizon=3)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected 4 integer actions .*\(4,\)"):
        vec.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="actions must lie in 0..5"):
        vec.step(np.full(4, 7))
    with pytest.raises(ValueError, match="4 indices into the"):
        vec.reset(options={"starts": [0, 1]})
    other = TaskHeads(heads.dim, heads.tokens, "diffusion", "flower_picker")
    with pytest.raises(ValueError, match="fitted on the engine 'diffusion'"):
        DreamVecEnv(engine, other, bank)
    with pytest.raises(ValueError, match="read features \\(B, 64, "):
        heads(torch.zeros(2, 10, heads.dim), torch.zeros(2, dtype=torch.long))


# ------------------------------------------------------------------------------- learning


def test_lambda_returns_match_a_hand_computation():
    r = torch.tensor([[1.0], [0.0], [2.0]])
    v = torch.tensor([[0.5], [1.0], [1.5]])
    c = torch.tensor([[1.0], [1.0], [0.0]])
    last = torch.tensor([3.0])
    g, lam = 0.9, 0.5
    g2 = 2.0 + g * 0.0 * ((1 - lam) * 3.0 + lam * 3.0)  # terminated: no bootstrap
    g1 = 0.0 + g * 1.0 * ((1 - lam) * 1.5 + lam * g2)
    g0 = 1.0 + g * 1.0 * ((1 - lam) * 1.0 + lam * g1)
    out = lambda_returns(r, v, c, last, g, lam)
    torch.testing.assert_close(out[:, 0], torch.tensor([g0, g1, g2]))
    # lambda = 1 is the discounted return bootstrapped at the end
    c1 = torch.ones(3, 1)
    full = lambda_returns(r, v, c1, last, g, 1.0)[0, 0]
    assert float(full) == pytest.approx(1.0 + g * 0.0 + g * g * 2.0 + g**3 * 3.0)


def test_a_tiny_agent_learns_a_toy_task_in_a_tiny_dream(tiny, one_thread):
    engine, heads, bank = tiny
    dream = DreamVecEnv(engine, heads, bank, num_envs=16, horizon=4)
    policy = TokenPolicy(engine.cfg.tokens.vocab_size, (8, 8))
    obs, _ = dream.reset(seed=5)
    before = float((policy.act(obs) == Action.INTERACT).mean())
    log = train_in_dream(policy, dream, ActorCriticConfig(horizon=4, lr=3e-3), 40, progress=False)
    obs, _ = dream.reset(seed=9)
    with torch.no_grad():
        p_interact = policy(torch.as_tensor(obs))[0].softmax(1)[:, Action.INTERACT].mean()
    assert before < 0.5 and float(p_interact) > 0.8
    # the untrained policy interacts on about 1 step in 6; the trained one on nearly all 4
    assert np.mean([x["return"] for x in log[-5:]]) > 2 * log[0]["return"]


def test_judging_snapshots_after_updates_leaves_the_training_unchanged(tiny, one_thread):
    """The learning curve judges copies between updates: the run is the same, weight for weight,
    as one without the callback, and the callback sees every update once, in order."""
    import copy

    from hitchhiker.agents.judge import real_returns, test_seeds

    engine, heads, bank = tiny
    seen, judged = [], []

    def judge(n, policy, log):
        seen.append((n, len(log)))
        if n % 2 == 0:  # a real judgement of a copy: plays the simulator with its own generator
            snap = copy.deepcopy(policy).eval()
            judged.append(real_returns("flower_picker", snap, test_seeds(2), engine.tokenizer,
                                       steps=3))  # fmt: skip

    weights = []
    for callback in (None, judge):
        torch.manual_seed(3)
        policy = TokenPolicy(engine.cfg.tokens.vocab_size, (8, 8))
        dream = DreamVecEnv(engine, heads, bank, num_envs=4, horizon=3)
        train_in_dream(policy, dream, ActorCriticConfig(horizon=3), 4, progress=False,
                       after_update=callback)  # fmt: skip
        weights.append(torch.cat([p.detach().flatten() for p in policy.parameters()]))
    assert torch.equal(weights[0], weights[1])
    assert seen == [(1, 1), (2, 2), (3, 3), (4, 4)] and len(judged) == 2


def test_epochs_on_one_imagined_batch_learn_more_from_it_within_the_clip():
    """One rollout in which only action 2 pays: 8 clipped epochs with normalized advantages move
    pi(2) further than DIAMOND's single REINFORCE step, and never past what the clip allows."""
    torch.manual_seed(0)
    obs = torch.randint(0, 16, (4, 32, 8, 8))
    actions = torch.randint(0, 6, (4, 32))
    rewards = (actions == 2).float()
    seq = (obs, actions, rewards, torch.ones(4, 32), obs[-1])
    moved = {}
    for epochs in (1, 8):
        policy = TokenPolicy(16, (8, 8))
        torch.manual_seed(1)
        policy.load_state_dict(TokenPolicy(16, (8, 8)).state_dict())
        cfg = ActorCriticConfig(epochs=epochs, normalize=epochs > 1, lr=1e-3)
        opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
        update(policy, opt, cfg, *seq)
        with torch.no_grad():
            p = policy(obs.flatten(0, 1))[0].softmax(1)[:, 2]
        moved[epochs] = float(p.mean()) - 1 / 6
    assert 0 < moved[1] < moved[8]
    assert moved[8] < 1 / 6 * 0.2 * 3  # epochs stop paying once the ratio leaves [0.8, 1.2]
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        ActorCriticConfig(epochs=0)


def test_the_critics_weight_and_the_gradient_clip_do_what_they_say():
    """value_coef 0: the value head, which only the critic's loss reaches, never moves. A clip of
    1e-3 under plain SGD (lr 1): each step moves the weights by at most 1e-3 (unclipped: more)."""
    torch.manual_seed(0)
    obs = torch.randint(0, 16, (4, 32, 8, 8))
    actions = torch.randint(0, 6, (4, 32))
    seq = (obs, actions, (actions == 2).float(), torch.ones(4, 32), obs[-1])

    def step(**settings):
        torch.manual_seed(1)
        policy = TokenPolicy(16, (8, 8))
        before = copy.deepcopy(policy.state_dict())
        cfg = ActorCriticConfig(normalize=True, **settings)
        update(policy, torch.optim.SGD(policy.parameters(), lr=1.0), cfg, *seq)
        return {k: v - before[k] for k, v in policy.state_dict().items()}

    def norm(moved):
        return float(torch.cat([d.flatten() for d in moved.values()]).norm())

    silent = step(value_coef=0.0)
    assert float(silent["v.weight"].abs().max()) == 0 and float(silent["v.bias"].abs()) == 0
    assert float(silent["pi.weight"].abs().max()) > 0
    heard = step(value_coef=0.5)
    assert float(heard["v.weight"].abs().max()) > 0
    assert norm(step(max_grad_norm=1e-3)) <= 1e-3 * (1 + 1e-4) < norm(step())
    for bad, match in (({"value_coef": -1.0}, "value_coef"), ({"max_grad_norm": 0.0}, "max_grad")):
        with pytest.raises(ValueError, match=match):
            ActorCriticConfig(**bad)


# ------------------------------------------------------------------------------- the planner


def test_the_planner_finds_the_paying_action_and_plays_real_episodes(tiny):
    engine, heads, bank = tiny
    # depth 1: every first action is tried, and only interact pays in the toy dream
    planner = ShootingPlanner(engine, heads, candidates=6, depth=1, seed=0)
    tokens = bank.tokens[:5, -2:]  # two real frames of five moments of play
    acts = torch.randint(0, 6, (5, 1))
    assert (planner.plan(tokens, acts) == Action.INTERACT).all()
    # deeper plans: the first action of the best of 12 still interacts on most starts
    deep = ShootingPlanner(engine, heads, candidates=12, depth=3, seed=1)
    assert (deep.plan(tokens, acts) == Action.INTERACT).mean() >= 0.6
    seeds = [episode_seed("test", i) for i in range(3)]
    returns = planner_returns("flower_picker", planner, seeds, steps=5)
    assert returns.shape == (3,) and (returns >= 0).all() and (returns <= 5).all()
    with pytest.raises(ValueError, match=r"expected actions \(B=5, T=1\)"):
        planner.plan(tokens, acts[:, :0])
    with pytest.raises(ValueError, match="candidates must be >= 6"):
        ShootingPlanner(engine, heads, candidates=3)


# ------------------------------------------------------------------------------- the loop closed


def test_own_play_records_exactly_what_the_real_world_paid(tiny):
    engine, _, _ = tiny
    policy = TokenPolicy(engine.cfg.tokens.vocab_size, (8, 8))
    seeds = [episode_seed("train", i) for i in range(3)]
    play = own_play(policy, OracleTokenizer(), seeds, steps=12, seed=4)
    assert play["tokens"].shape == (3, 13, 8, 8) and play["actions"].shape == (3, 12)
    truth = episode_rewards(play["positions"], play["headings"], play["actions"], play["tiles"])
    assert np.array_equal(truth, play["rewards"])
    # the same policy, worlds and sampling seed, judged: the same episodes, the same returns
    judged = real_returns("flower_picker", policy, seeds, OracleTokenizer(), 4, steps=12)
    assert np.array_equal(judged, play["rewards"].sum(1))


def test_refitting_on_real_play_unlearns_a_rule_the_world_does_not_pay(tiny, one_thread):
    """The toy heads believe every interact pays; real play says only flowers do (and rarely)."""
    engine, toy_heads, bank = tiny
    heads = copy.deepcopy(toy_heads)
    seeds = [episode_seed("train", 20 + i) for i in range(6)]
    policy = TokenPolicy(engine.cfg.tokens.vocab_size, (8, 8))
    play = own_play(policy, OracleTokenizer(), seeds, steps=16, seed=0)
    feats = window_features(
        engine, torch.as_tensor(play["tokens"]), torch.as_tensor(play["actions"])
    )
    interact = torch.full((len(feats),), int(Action.INTERACT))

    def p_pay(h):
        with torch.no_grad():
            return float(h(feats.float(), interact)[0].softmax(1)[:, 1].mean())

    assert p_pay(heads) > 0.9
    refit_heads(heads, engine, play, steps=150, seed=0)
    paid = action_rewards(play["positions"], play["headings"], play["actions"], play["tiles"])
    assert p_pay(heads) < 0.5 and p_pay(heads) < paid[..., Action.INTERACT].mean() + 0.3
    # the loop, two rounds on a copy: the shipped policy and heads are left as they were
    model = SimpleNamespace(policy=policy, heads=toy_heads)
    before = [p.clone() for p in policy.parameters()]
    cfg = SimpleNamespace(task="flower_picker", seed=0, task_steps=6, head_episodes=30, batch=8,
                          horizon=3, actor_critic=ActorCriticConfig(horizon=3))  # fmt: skip
    log = closed_loop(model, cfg, engine, OracleTokenizer(), bank, rounds=2, episodes=3,
                      refit_steps=20, updates=2, judge_episodes=3)  # fmt: skip
    assert [r["round"] for r in log] == [0.0, 1.0, 2.0]
    assert all(np.isfinite(r["real_return"]) and "dream_minus_real" in r for r in log)
    assert "play_return" in log[1] and "play_return" not in log[0]
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    assert all(r["real"].shape == r["dream"].shape == (3,) for r in log)
    # a repeat with the same seed learns the same (the benchmark's seeds are the only noise), and
    # reuses the judged shipped agent instead of judging it again
    again = closed_loop(model, cfg, engine, OracleTokenizer(), bank, rounds=2, episodes=3,
                        refit_steps=20, updates=2, judge_episodes=3, round0=log[0])  # fmt: skip
    assert again[0] is log[0]
    assert all(np.array_equal(a["real"], b["real"]) for a, b in zip(again, log))
    assert all(a["head_loss"] == b["head_loss"] for a, b in zip(again[1:], log[1:]))
    # with a replay buffer (recorded play, as the benchmark keeps the heads' first data; its
    # features are computed through the loop's dynamics) each refit draws from it
    first = record("train", 16, 16, "random", world=LEARNING_WORLD, progress=False,
                   policy_kwargs={"interact_prob": 0.3})  # fmt: skip
    frames = first.frames.reshape(-1, 64, 64, 3)
    tokens = encode_frames(OracleTokenizer(), frames).view(16, 17, 8, 8)
    buffered = recorded_play(tokens.numpy(), first)
    exact = episode_rewards(first.positions, first.headings, first.actions, first.tiles)
    assert np.array_equal(buffered["rewards"], exact)
    faced = action_rewards(first.positions, first.headings, first.actions, first.tiles)
    assert faced.sum() >= 1  # some flower faced: the heads learn from every action's reward
    replayed = closed_loop(model, cfg, engine, OracleTokenizer(), bank, rounds=1, episodes=3,
                           refit_steps=20, updates=2, judge_episodes=3, round0=log[0],
                           replay=[buffered])  # fmt: skip
    assert replayed[1]["head_loss"] != log[1]["head_loss"]
    # and the dynamics refitted first each round, on a copy: the shipped engine is left as it was
    weights = copy.deepcopy(engine.model.state_dict())
    refitted = closed_loop(model, cfg, engine, OracleTokenizer(), bank, rounds=1, episodes=3,
                           refit_steps=20, updates=2, judge_episodes=3, round0=log[0],
                           replay=[buffered], dynamics_steps=3,
                           dynamics_replay=[dynamics_play(engine, OracleTokenizer())])  # fmt: skip
    assert np.isfinite(refitted[1]["dynamics_loss"]) and "dynamics_loss" not in log[1]
    assert all(torch.equal(v, engine.model.state_dict()[k]) for k, v in weights.items())
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        closed_loop(model, cfg, engine, OracleTokenizer(), bank, rounds=0)


class ReplayedEngine:
    """The tiny engine, except that its next frame is looked up in recorded play: the frame that
    truly followed (``truth``) or the last frame again (a dream where nothing changes)."""

    def __init__(self, engine, play, truth: bool):
        self.engine, self.context, self.truth = engine, engine.context, truth
        tokens = torch.as_tensor(play["tokens"]).flatten(2)
        picks = zip(*np.nonzero(play["rewards"]))
        self.after = {tokens[e, t].numpy().tobytes(): tokens[e, t + 1] for e, t in picks}

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def predict(self, ctx, past, nxt, generator=None):
        last = ctx[:, -1]
        if not self.truth:
            return last.clone()
        return torch.stack([self.after[row.numpy().tobytes()] for row in last])


def test_picks_cleared_checks_the_dream_against_the_exact_pick(tiny):
    """Only a dream that turns a picked flower to grass clears it; one that repeats the frame never
    does; one flower per real pick, in (episode, step) order."""
    engine = tiny[0]
    episodes = []
    for i in range(3):  # the scripted picker, its frames kept
        task, script, frames = FlowerPicker(steps=16), FlowerScript(), []
        obs, info = task.reset(seed=episode_seed("test", i))
        script.reset(task, episode_seed("test", i))
        ep = {"headings": [info["heading"]], "actions": [], "rewards": []}
        frames.append(obs)
        for _ in range(16):
            a = script.act(obs, info)
            obs, r, _, _, info = task.step(a)
            frames.append(obs)
            ep["actions"].append(a), ep["rewards"].append(r), ep["headings"].append(info["heading"])
        ep["tokens"] = encode_frames(OracleTokenizer(), np.stack(frames)).view(17, 8, 8).numpy()
        episodes.append(ep)
    play = {k: np.stack([np.asarray(ep[k]) for ep in episodes]) for k in episodes[0]}
    picks = int(play["rewards"].sum())
    assert picks >= 3
    assert picks_cleared(ReplayedEngine(engine, play, truth=True), play).tolist() == [True] * picks
    assert (
        picks_cleared(ReplayedEngine(engine, play, truth=False), play).tolist() == [False] * picks
    )


def next_frame_accuracy(engine, play) -> float:
    """Share of next-frame tokens the engine gets right from the real frames before them."""
    tokens, acts = torch.as_tensor(play["tokens"]).flatten(2), torch.as_tensor(play["actions"])
    hits = []
    for t in range(acts.shape[1]):
        lo = max(0, t + 1 - engine.context)
        ctx, past = engine.window(tokens[:, lo : t + 1], acts[:, lo:t])
        nxt = engine.predict(ctx, past, engine.model_actions(acts[:, t]))
        hits.append((nxt == tokens[:, t + 1]).float().mean())
    return float(torch.stack(hits).mean())


def test_refitting_the_dynamics_on_play_teaches_them_that_play(tiny, one_thread):
    engine = copy.deepcopy(tiny[0])
    policy = TokenPolicy(engine.cfg.tokens.vocab_size, (8, 8))
    seeds = [episode_seed("train", 60 + i) for i in range(4)]
    play = own_play(policy, OracleTokenizer(), seeds, steps=10, seed=0)
    before = next_frame_accuracy(engine, play)
    losses, fitted = refit_dynamics(engine, play, steps=80, seed=0, lr=3e-3)
    after = next_frame_accuracy(engine, play)
    assert after > before + 0.05, (before, after)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert len(fitted) == 1 and fitted[0][0].shape == (4, 11, 8, 8)
    assert not engine.model.training  # back in eval mode for the dream
    with pytest.raises(ValueError, match="paid_share must lie in"):
        refit_dynamics(engine, play, steps=1, paid_share=1.0)


def test_paid_windows_end_exactly_on_the_paid_steps():
    rewards = np.zeros((3, 5), dtype=np.float32)
    rewards[0, 4] = rewards[2, 0] = rewards[2, 3] = 1.0
    tokens = torch.arange(3 * 6)[:, None, None].repeat(1, 2, 2).view(3, 6, 2, 2)  # frame ids
    actions = torch.arange(15).view(3, 5) % 6
    windows = WindowDataset(tokens, actions, context=2, pad_action=0)
    paid = paid_windows(windows, rewards)
    assert len(paid) == 3
    for item, (e, t) in zip(paid, [(0, 4), (2, 0), (2, 3)]):
        assert int(item["tokens"][-1, 0, 0]) == e * 6 + t + 1  # the frame the paid step led to
        assert int(item["actions"][-1]) == int(actions[e, t])


# ------------------------------------------------------------------------------- the capstone


def test_the_capstone_hands_control_back_and_forth_headlessly(tiny):
    engine, heads, _ = tiny
    policy = TokenPolicy(engine.cfg.tokens.vocab_size, (8, 8))
    panel = AgentPanel(engine, heads, policy, horizon=3, steps=10)
    frame = panel.reset(1)
    assert frame.shape == (64, 64 + 4 + 64, 3) and panel.driver == "agent"
    panel.step("agent")
    panel.step("agent")
    assert panel.t == 2 and panel.driver == "agent"
    panel.step("left")  # a key pressed: you drive, the world moves left
    assert panel.driver == "you" and panel.t == 3 and panel.last_action == "left"
    panel.step("agent")  # the clock ticks while you drive: nothing moves
    assert panel.t == 3
    assert panel.since_anchor == 3  # the dream ran 3 steps on its own (the horizon)
    panel.hand_back()
    panel.step("agent")
    assert panel.driver == "agent" and panel.t == 4 and panel.since_anchor == 1  # re-anchored
    # the toy heads pay every interact: the dream's return counts the interacts pressed
    panel.step("interact")
    assert panel.dream_return >= 1.0 and "driver: you" in panel.describe()
    play = AgentPlay(panel, seed=2, keyboard=False)
    assert play.panel.t == 0 and play.driver.value == "you"
    play.driver.value = "agent"
    play.controller.tick()
    assert panel.t == 1 and "driver: agent" in play.status.value
    play.driver.value = "you"
    play.controller.tick()  # the clock ticks while you drive: the readout counts world steps
    assert play.controller.readout().startswith("step 1 ") and panel.t == 1
    play.driver.value = "agent"
    with pytest.raises(ValueError, match="horizon must be a positive int"):
        play.panel.horizon = 0
    # the episode's end (10 steps): nothing moves until a reset, whoever presses what
    for _ in range(12):
        play.controller.tick()
    assert play.controller.readout().startswith("step 10 ")
    done = (panel.t, panel.real_return, panel.dream_return, panel.frames["real"].copy())
    assert panel.t == 10 and panel.done and "Reset to play again" in panel.describe()
    panel.step("right")
    assert (panel.t, panel.real_return, panel.dream_return) == done[:3]
    assert np.array_equal(panel.frames["real"], done[3])
    panel.reset(2)
    assert panel.t == 0 and not panel.done


def test_go_home_with_a_memory_of_the_walk_out_always_arrives():
    seeds = [episode_seed("test", i) for i in range(6)]
    back = real_returns("go_home", RetraceHome(), seeds)
    assert back.tolist() == [1.0] * 6  # undoing a shortest walk out is a way home
    look = real_returns("go_home", LookHome(), seeds)
    assert look.shape == (6,) and set(look.tolist()) <= {0.0, 1.0}


def test_the_capstone_dream_remembers_with_memory_on():
    from hitchhiker.memory import memory_recipe
    from hitchhiker.memory.memory_engine import MemoryEngine

    cfg, deps = zoo.prepare("memory", "smoke")
    model = memory_recipe.build(cfg).start_from(deps["dynamics"]).eval()
    memory = MemoryEngine(model, deps["tokenizer"], cfg=cfg)
    dyn = deps["dynamics"]
    engine = DynamicsEngine(dyn, deps["tokenizer"], cfg=dyn.shipped_config)
    heads = TaskHeads(dyn.shipped_config.dim, 64, engine.name, "flower_picker")
    policy = TokenPolicy(engine.cfg.tokens.vocab_size, (8, 8))
    with pytest.raises(ValueError, match="no memory engine"):
        AgentPanel(engine, heads, policy).use_memory = True
    with pytest.raises(ValueError, match="flower picker only"):
        AgentPanel(engine, heads, policy, task="go_home", memory=memory)
    panel = AgentPanel(engine, heads, policy, horizon=4, steps=20, memory=memory)
    play = AgentPlay(panel, seed=3, keyboard=False)
    assert play.memory in play.children[-1].children
    for _ in range(3):
        play.controller.tick()
    play.memory.value = "on"  # re-anchored at once: the dream shows the real frame, as tokens
    assert panel.use_memory and panel.since_anchor == 0
    shown = play.controller.frame
    np.testing.assert_array_equal(shown[:, 68:], memory.decode(panel.tokens[:, -1])[0])
    assert "memory on" in panel.describe() and "read from its frames" in panel.describe()
    for _ in range(12):  # re-anchored every 4 steps, with the whole real past
        play.controller.tick()
    assert panel.t == 15 and memory.memory_bytes > 0  # the frames older than the window
    assert np.isfinite(panel.dream_return) and panel.dream_return >= 0
    play.memory.value = "off"
    assert not panel.use_memory and "memory off" in panel.describe()
    plain = AgentPlay(AgentPanel(engine, heads, policy), keyboard=False)
    assert plain.memory not in plain.children[-1].children  # no memory engine: no toggle


def test_a_plain_engines_walks_begun_from_real_frames_imagine_as_its_rollout_does(tiny):
    """DynamicsEngine.start_from + imagine (the capstone's walls dream, one action at a time) draw
    exactly what rollout draws for the same real past and actions."""
    engine, _, _ = tiny
    rec = record("test", 2, 10, "random", world=LEARNING_WORLD, progress=False)
    past, future = rec.actions[:, :5], rec.actions[:, 5:]
    fresh = DynamicsEngine(engine.model, engine.tokenizer, 1, 0.0, cfg=engine.cfg)
    with pytest.raises(RuntimeError, match="start_from"):
        fresh.imagine([0, 0])
    whole = engine.rollout(rec.frames[:, :6], past, future)
    engine.start_from(engine.encode(rec.frames[:, :6]), past)
    steps = [engine.imagine(future[:, s]) for s in range(future.shape[1])]
    np.testing.assert_array_equal(engine.decode(torch.stack(steps, 1)), whole)


class FrozenDream(DynamicsEngine):
    """A dream that never moves: every imagined frame is the last one (what a world model that
    learned only walls would draw)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.name = "frozen"

    def imagine(self, actions):
        return self._tokens[:, -1].clone()

    def describe(self) -> str:
        return "frozen"


def test_the_capstone_measures_each_dream_at_the_walls_the_agent_really_meets(tiny):
    from hitchhiker.agents.capstone_walls import DREAMS, capstone_wall_figures, walls_in_play

    engine, heads, _ = tiny
    torch.manual_seed(1)
    policy = TokenPolicy(engine.cfg.tokens.vocab_size, (8, 8))
    frozen = FrozenDream(engine.model, engine.tokenizer, 1, 0.0, cfg=engine.cfg)
    other = DynamicsEngine(engine.model, engine.tokenizer, 1, 0.0, cfg=engine.cfg)
    with pytest.raises(ValueError, match="pass memory_walls= too"):
        AgentPanel(engine, heads, policy, memory=frozen, walls=other)
    with pytest.raises(ValueError, match="pass memory= and walls= too"):
        AgentPanel(engine, heads, policy, walls=other, memory_walls=frozen)
    with pytest.raises(ValueError, match="no engine with walls"):
        AgentPanel(engine, heads, policy, memory=frozen).use_walls = True
    with pytest.raises(ValueError, match="lacks the dreams"):
        walls_in_play(AgentPanel(engine, heads, policy, walls=other), [0])
    panel = AgentPanel(engine, heads, policy, steps=16, memory=other, walls=frozen,
                       memory_walls=frozen)  # fmt: skip
    panel.reset(0)
    panel.use_walls = True  # a toggle re-anchors: the walls dream shows the real frame
    assert panel.dreamer is frozen and "walls on, frozen" in panel.describe()
    panel.use_memory = True
    assert panel.dreamer is frozen and panel.use_walls
    panel.horizon = 5
    worlds = [0, 1, 2, 3, 4, 5]
    got = walls_in_play(panel, worlds)
    assert (panel.horizon, panel.use_memory, panel.use_walls) == (5, True, True)  # restored
    # the refused and free moves are the simulator's: replay each episode, the policy's
    # generator seeded by the world as the measurement seeds it
    truth = np.zeros((len(worlds), 2), dtype=np.int64)
    for i, world in enumerate(worlds):
        task, gen = make_task("flower_picker", steps=16), torch.Generator().manual_seed(world)
        frame, _ = task.reset(seed=episode_seed("test", world))
        done = False
        while not done:
            obs = engine.encode(frame[None]).view(1, 8, 8).cpu().numpy()
            act = int(policy.act(obs, gen)[0])
            where = task.unwrapped.position
            frame, _, term, trunc, _ = task.step(act)
            done = term or trunc
            if act in (1, 2, 3, 4):
                truth[i, int(task.unwrapped.position != where)] += 1
    assert truth[:, 0].sum() > 0 and truth[:, 1].sum() > 0  # the agent bumped, and walked
    for key in DREAMS:
        np.testing.assert_array_equal(got[key][:, [0, 2]], truth)
    # a frozen dream draws every refused move still and no free move moved
    for key in ((False, True), (True, True)):
        np.testing.assert_array_equal(got[key][:, 1], got[key][:, 0])
        assert got[key][:, 3].sum() == 0
    figs = capstone_wall_figures(panel, worlds, "cap")
    assert figs["cap.walls.blocked_drawn_blocked"] == 1.0
    assert figs["cap.walls.free_drawn_moved"] == 0.0
    assert figs["cap.blocked_moves"] == truth[:, 0].sum()
    assert figs["cap.worlds_bumped"] == (truth[:, 0] > 0).sum()
    assert 0.0 <= figs["cap.flower_dream.free_drawn_moved"] <= 1.0


def test_real_play_counts_exactly_the_moves_the_world_refused():
    """A policy that always pushes the same way into a wall: every move after the free ones is
    refused; its real return and real_returns' agree."""
    from hitchhiker.agents.judge import real_play
    from hitchhiker.interactive.walls import wall_in_view

    seed, move, made = wall_in_view([episode_seed("test", w) for w in range(64)])

    class Push:
        def reset(self, env, seed):
            pass

        def act(self, obs, info):
            return move

    ret, moves, refused = real_play("flower_picker", Push(), [seed, seed], steps=9)
    assert moves.tolist() == [9, 9] and refused.tolist() == [9 - made] * 2
    assert ret.tolist() == real_returns("flower_picker", Push(), [seed, seed], steps=9).tolist()
    _, moves, refused = real_play("flower_picker", RandomPolicy(), [seed], steps=40)
    assert 0 < moves[0] < 40 and 0 <= refused[0] <= moves[0]  # noop and interact are not moves


def test_the_walls_agent_differs_only_in_the_dynamics_that_dream_it():
    """agent_walls: the same heads, actor-critic, control and worlds, dreamed by dynamics_walls."""
    import dataclasses

    from hitchhiker.agents import agent_recipe

    walls, plain = zoo.config_for("agent_walls", "smoke"), zoo.config_for("agent", "smoke")
    assert (walls.dream_dynamics, plain.dream_dynamics) == ("dynamics_walls", "dynamics")
    same = dataclasses.replace(walls, name="agent", dream_dynamics="dynamics", engine=plain.engine)
    assert same == plain
    need = agent_recipe.needs({"tokenizer": "shipped", "dream_dynamics": "dynamics_walls"})
    assert need["dynamics"].model == "dynamics_walls"
    with pytest.raises(ValueError, match="dream_dynamics must be one of .*'dynamics_walls'"):
        zoo.config_for("agent", "smoke", dream_dynamics="diffusion")


def test_an_interrupted_agent_training_resumes_after_its_last_finished_phase(tmp_path, monkeypatch):
    from hitchhiker.agents import agent_recipe

    cfg, deps = zoo.prepare("agent", "smoke")
    whole = agent_recipe.fit(cfg, deps, run_dir=tmp_path / "whole", progress=False)
    run = tmp_path / "cut"
    real = agent_recipe.train_in_world

    def cut(*a, **k):
        raise KeyboardInterrupt("the laptop lid closed")

    monkeypatch.setattr(agent_recipe, "train_in_world", cut)
    with pytest.raises(KeyboardInterrupt):
        agent_recipe.fit(cfg, deps, run_dir=run, progress=False)
    assert sorted(p.name for p in run.iterdir()) == ["dream.safetensors", "heads.safetensors"]

    def never(*a, **k):
        raise AssertionError("a finished phase ran again")

    monkeypatch.setattr(agent_recipe, "train_in_world", real)
    monkeypatch.setattr(agent_recipe, "train_in_dream", never)
    monkeypatch.setattr(agent_recipe, "fit_heads", never)
    resumed = agent_recipe.fit(cfg, deps, run_dir=run, progress=False)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)  # the same agent as the run never cut
    learned = [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.dream_log]
    assert learned == [{k: v for k, v in row.items() if k != "seconds"} for row in whole.dream_log]
    assert resumed.train_seconds > 0


def test_the_seed_studys_runs_are_the_recipes_own_and_resume(tmp_path, monkeypatch):
    """untuned_seeds: seed 0's run is the shipped agent's (heads and dream, stored as float16),
    another seed is another agent, and a finished run is loaded, never trained again."""
    from hitchhiker.agents import agent_recipe
    from hitchhiker.agents.untuned_seeds import run_dir_of, trained_again
    from hitchhiker.checkpoint import round_to_half

    cfg, deps = zoo.prepare("agent", "smoke")
    shipped = round_to_half(agent_recipe.fit(cfg, deps, progress=False))
    again, again_cfg = trained_again("agent", "smoke", 0, runs=tmp_path)
    assert again_cfg == cfg and again.real_log is None  # the control is not retrained
    for part in ("heads", "policy"):
        for a, b in zip(getattr(shipped, part).state_dict().values(),
                        getattr(again, part).state_dict().values()):  # fmt: skip
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    run = run_dir_of("agent", "smoke", 0, tmp_path)
    assert sorted(p.name for p in run.iterdir()) == [
        "dream.safetensors",
        "heads.safetensors",
        "recipe_config.json",
    ]
    other, other_cfg = trained_again("agent", "smoke", 1, runs=tmp_path)
    assert other_cfg.seed == 1
    assert any(
        not torch.equal(a, b)
        for a, b in zip(again.policy.state_dict().values(), other.policy.state_dict().values())
    )

    def never(*a, **k):
        raise AssertionError("a finished phase ran again")

    monkeypatch.setattr(agent_recipe, "train_in_dream", never)
    monkeypatch.setattr(agent_recipe, "fit_heads", never)
    resumed, _ = trained_again("agent", "smoke", 1, runs=tmp_path)
    for a, b in zip(other.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_seed_study_averages_seeds_world_by_world(monkeypatch):
    from hitchhiker.agents import untuned_seeds
    from hitchhiker.metrics import mean_interval, ratio_interval

    rng = np.random.default_rng(0)
    got = {
        name: {0: rng.integers(0, 4, 50), 1: rng.integers(0, 5, 50), "control": rng.integers(1, 5, 50)}
        for name in ("agent", "agent_walls")
    }  # fmt: skip
    monkeypatch.setattr(
        untuned_seeds, "seed_returns", lambda name, *a, **k: ({0: got[name][0], 1: got[name][1]}, got[name]["control"])
    )  # fmt: skip
    shipped = SimpleNamespace(seed=0)  # the shipped agents are seed 0's runs
    out = untuned_seeds.untuned_seed_figures(
        {"agent": (None, shipped), "agent_walls": (None, shipped)}, "cpu"
    )
    for name, g in got.items():
        key = f"stage5.{name}.untuned_seeds"
        per_world = (g[0] + g[1]) / 2
        assert out[f"{key}.s0.real_return"] == g[0].mean()
        assert out[f"{key}.s1.real_return"] == g[1].mean()
        assert (out[f"{key}.real_return"], out[f"{key}.real_return_ci95"]) == mean_interval(
            per_world
        )
        assert out[f"{key}.seed_min"] == min(g[0].mean(), g[1].mean())
        assert out[f"{key}.seed_max"] == max(g[0].mean(), g[1].mean())
        ratio = ratio_interval(per_world, g["control"])
        assert (out[f"{key}.over_real_trained"], out[f"{key}.over_real_trained_ci95"]) == ratio
    paired = (got["agent_walls"][0] + got["agent_walls"][1] - got["agent"][0] - got["agent"][1]) / 2
    key = "stage5.agent_walls.untuned_seeds.minus_agent"
    np.testing.assert_allclose([out[key], out[f"{key}_ci95"]], mean_interval(paired))
    key = "stage5.agent_walls.untuned.minus_agent"  # the shipped agents alone, one run each
    np.testing.assert_allclose(
        [out[key], out[f"{key}_ci95"]], mean_interval(got["agent_walls"][0] - got["agent"][0])
    )
