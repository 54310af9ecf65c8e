"""Going home, learned: one network with memory and one without, taught by the map-reading script.

The scripted pair of go home (:mod:`.scripted`: ``RetraceHome`` undoes the remembered walk out,
``LookHome`` heads for the nearest door in view) shows what memory is worth to a policy someone
wrote. Here the *same* frame encoder learns the task twice, once with a memory and once without,
so the gap between the two is what memory is worth to a learner.

**Memory.** A GRU (Cho et al. 2014) reads the walk out (its frames, each with the move that led to
it) and then every frame of the way back with the move just made; its state is all the agent knows
of where it came from. **No memory.** The current frame only: the learned form of ``LookHome``.

**Teacher.** Both imitate :class:`~.scripted.HomeScript`, which reads the true map (privileged, as a
teacher may be); the students see only the tokenizer's codes of the frames. Plain imitation of the
teacher's own walks would leave a student lost after its first mistake, on frames the teacher never
visits, so the data is gathered by DAgger (Ross, Gordon and Bagnell, AISTATS 2011): in round 0 the
teacher drives; in every later round the student drives and the teacher labels each state the
student reached; the rounds' data is pooled and the student keeps training on all of it:

    loss = - mean_t log pi(a*_t | o_0 .. o_t, a_0 .. a_{t-1})      over the steps of the way back,
                                                                   a*_t the teacher's move

Shapes: B episodes, T steps of a sequence (the walk out's frames, then the way back's), h x w token
grid, A = 6 actions, D the GRU's width.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence
from tqdm.auto import tqdm

from hitchhiker.agents.actor_critic import TokenPolicy
from hitchhiker.agents.judge import encode
from hitchhiker.agents.scripted import HomeScript
from hitchhiker.agents.tasks import GoHome
from hitchhiker.world import ACTION_NAMES

NO_MOVE = len(ACTION_NAMES)
"""The "previous move" input of a sequence's first frame (no move led to it)."""
UNLABELLED = -1
"""Label of the walk out's frames: the teacher says nothing there, the loss skips them."""


class HomePolicy(nn.Module):
    """Token grids (B, T, h, w) and previous moves (B, T) -> move logits (B, T, A).

    ``memory``: a GRU over the sequence (the logits at t see everything up to t); else each frame
    alone. The frame encoder is the actor-critic's (:class:`~.actor_critic.TokenPolicy`'s
    features; its own two outputs are not used here)."""

    def __init__(self, vocab: int, grid: tuple[int, int], memory: bool, width: int = 128):
        super().__init__()
        self.memory, self.grid = bool(memory), tuple(grid)
        self.eyes = TokenPolicy(vocab, grid)
        seen = self.eyes.mlp[0].out_features
        if self.memory:
            self.moves = nn.Embedding(NO_MOVE + 1, 16)
            self.core = nn.GRU(seen + 16, width, batch_first=True)
        self.pi = nn.Linear(width if self.memory else seen, len(ACTION_NAMES))

    def _inputs(self, tokens: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 4 or tuple(tokens.shape[2:]) != self.grid:
            raise ValueError(
                f"expected token sequences (B, T, {self.grid[0]}, {self.grid[1]}); "
                f"got {tuple(tokens.shape)}"
            )
        if tuple(prev.shape) != tuple(tokens.shape[:2]):
            raise ValueError(
                f"expected one previous move per frame, {tuple(tokens.shape[:2])}; "
                f"got {tuple(prev.shape)}"
            )
        b, t = tokens.shape[:2]
        seen = self.eyes.features(tokens.flatten(0, 1)).view(b, t, -1)
        return torch.cat([seen, self.moves(prev.long())], -1) if self.memory else seen

    def forward(self, tokens: torch.Tensor, prev: torch.Tensor, state=None):
        """(logits (B, T, A), GRU state (1, B, D) or None) after the sequence, from ``state``."""
        x = self._inputs(tokens, prev)
        if not self.memory:
            return self.pi(x), None
        out, state = self.core(x, state)
        return self.pi(out), state

    def remember(self, tokens: torch.Tensor, prev: torch.Tensor, lengths) -> torch.Tensor | None:
        """The GRU state (1, B, D) after each sequence's first ``lengths[b]`` steps (right-padded
        batch; a length 0 leaves the state at zero). None without memory."""
        if not self.memory:
            return None
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        state = torch.zeros(1, len(lengths), self.core.hidden_size, device=tokens.device)
        some = torch.nonzero(lengths > 0)[:, 0]
        if len(some):
            x = self._inputs(tokens[some], prev[some])
            packed = pack_padded_sequence(x, lengths[some], batch_first=True, enforce_sorted=False)
            state[:, some] = self.core(packed)[1]
        return state


class HomeWalker:
    """A :class:`HomePolicy` playing B episodes of go home: shown their walks out, then asked for
    one move at a time (sampled from its distribution, seeded, or the argmax if ``greedy``)."""

    def __init__(self, policy: HomePolicy, tokenizer, generator=None, greedy: bool = False):
        self.policy, self.tokenizer = policy.eval(), tokenizer
        self.generator, self.greedy = generator, greedy
        self.device = next(policy.parameters()).device

    @torch.no_grad()
    def start(self, walks: list[dict]) -> None:
        """Read each walk out but its last frame (the first frame ``act`` is given): frames
        (K+1, H, W, 3), actions (K,)."""
        seqs = [walk_sequence(self.tokenizer, w) for w in walks]
        tokens = pad_sequence([s[0][:-1] for s in seqs], batch_first=True)
        prev = pad_sequence([s[1][:-1] for s in seqs], batch_first=True)
        lengths = [len(s[0]) - 1 for s in seqs]
        if max(lengths) == 0:  # no walk had a move: nothing to remember yet
            tokens = torch.zeros(len(seqs), 1, *self.policy.grid, dtype=torch.long)
            prev = torch.full((len(seqs), 1), NO_MOVE)
        self.state = self.policy.remember(tokens.to(self.device), prev.to(self.device), lengths)
        self.prev = torch.stack([s[1][-1] for s in seqs]).to(self.device)  # the move into the frame

    @torch.no_grad()
    def act(self, frames: np.ndarray) -> np.ndarray:
        """Moves (B,) for the current frames (B, H, W, 3) of all B episodes."""
        return self.act_tokens(torch.as_tensor(encode(self.tokenizer, frames)))

    @torch.no_grad()
    def act_tokens(self, tokens: torch.Tensor) -> np.ndarray:
        """Moves (B,) for the current frames of all B episodes as token grids (B, h, w) (a
        dream's frames come as tokens: nothing to encode)."""
        tokens = tokens.to(self.device)
        logits, self.state = self.policy(tokens[:, None], self.prev[:, None], self.state)
        logits = logits[:, 0].float()
        if self.greedy:
            moves = logits.argmax(1)
        else:
            probs = logits.softmax(1).cpu()
            moves = torch.multinomial(probs, 1, generator=self.generator)[:, 0]
        self.prev = moves.to(self.device)
        return moves.cpu().numpy()


def walk_sequence(tokenizer, walk: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """A walk out as the policy reads it: tokens (K+1, h, w) and the move into each frame (K+1,)."""
    tokens = torch.as_tensor(encode(tokenizer, walk["frames"]))
    prev = torch.as_tensor([NO_MOVE, *np.asarray(walk["actions"]).tolist()], dtype=torch.long)
    return tokens, prev


def play_home(seeds, tokenizer, walker: HomeWalker | None = None, **task_kw):
    """Go home in worlds ``seeds``, the ``walker`` driving (None: the teacher drives), the teacher
    labelling every state of the way back. Returns (success (E,), episodes), an episode a dict of
    tokens (T, h, w), previous moves (T,) and teacher labels (T,) (UNLABELLED on the walk out)."""
    envs = [GoHome(**task_kw) for _ in seeds]
    firsts = [env.reset(seed=s) for env, s in zip(envs, seeds)]
    frames = np.stack([f for f, _ in firsts])
    infos = [i for _, i in firsts]
    teachers = [HomeScript() for _ in seeds]
    for teacher, env, s in zip(teachers, envs, seeds):
        teacher.reset(env, s)
    walks = [i["walk_out"] for i in infos]
    if walker is not None:
        walker.start(walks)
    episodes = []
    for w in walks:
        tokens, prev = walk_sequence(tokenizer, w)
        labels = [UNLABELLED] * (len(prev) - 1)
        episodes.append({"tokens": [tokens[:-1]], "prev": prev[:-1].tolist(), "labels": labels})
    moved = [int(w["actions"][-1]) if len(w["actions"]) else NO_MOVE for w in walks]
    success = np.zeros(len(seeds))
    live = np.ones(len(seeds), dtype=bool)
    while live.any():
        wanted = {i: teachers[i].act(frames[i], infos[i]) for i in np.flatnonzero(live)}
        moves = walker.act(frames) if walker is not None else None
        here = encode(tokenizer, frames[live])
        for j, i in enumerate(np.flatnonzero(live)):
            ep = episodes[i]
            ep["tokens"].append(torch.as_tensor(here[j : j + 1]))
            ep["prev"].append(moved[i])
            ep["labels"].append(wanted[i])
            move = wanted[i] if moves is None else int(moves[i])
            frames[i], reward, term, trunc, infos[i] = envs[i].step(move)
            moved[i], success[i] = move, reward
            live[i] = not (term or trunc)
    for ep in episodes:
        ep["tokens"] = torch.cat(ep["tokens"])
        ep["prev"] = torch.as_tensor(ep["prev"], dtype=torch.long)
        ep["labels"] = torch.as_tensor(ep["labels"], dtype=torch.long)
    return success, episodes


def imitation_loss(policy: HomePolicy, episodes: list[dict]) -> torch.Tensor:
    """Cross-entropy of the policy's moves against the teacher's on the labelled steps of a batch
    of episodes (right-padded; the GRU is causal, so padding after a sequence changes nothing)."""
    dev = next(policy.parameters()).device
    tokens = pad_sequence([e["tokens"] for e in episodes], batch_first=True).to(dev)
    prev = pad_sequence([e["prev"] for e in episodes], batch_first=True).to(dev)
    labels = pad_sequence(
        [e["labels"] for e in episodes], batch_first=True, padding_value=UNLABELLED
    ).to(dev)
    logits, _ = policy(tokens, prev)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=UNLABELLED)


def dagger(
    policy: HomePolicy,
    tokenizer,
    seeds_of_round,
    rounds: int,
    steps: int,
    batch: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
    play=None,
    **task_kw,
) -> list[dict]:
    """DAgger: round 0 the teacher drives, rounds 1.. the student; ``steps`` Adam steps on the pooled
    episodes after each round. ``seeds_of_round(r)`` gives each round its (train) worlds. ``play``
    plays a round, ``play(seeds, tokenizer, walker, **task_kw) -> (success, episodes)``: the real
    world and its map-reading teacher (:func:`play_home`, the default) or a dream and its own
    (:func:`.home_dream.play_dream_home`). Returns one record per round: the driver's success on
    that round's worlds (in the world it was played in) and the last loss."""
    play = play_home if play is None else play
    torch.manual_seed(seed)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    pool, log = [], []
    bar = tqdm(range(rounds), desc="DAgger rounds", disable=not progress)
    for r in bar:
        walker = None if r == 0 else HomeWalker(policy, tokenizer, gen)
        success, episodes = play(seeds_of_round(r), tokenizer, walker, **task_kw)
        pool += episodes
        policy.train()
        for _ in range(steps):
            picks = rng.integers(len(pool), size=min(batch, len(pool)))
            loss = imitation_loss(policy, [pool[i] for i in picks])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(policy.parameters(), 5.0)
            opt.step()
        policy.eval()
        log.append({"driver_success": float(success.mean()), "loss": float(loss.detach())})
        bar.set_postfix(success=f"{success.mean():.2f}", loss=f"{float(loss.detach()):.3f}")
    return log


def home_success(policy: HomePolicy, tokenizer, seeds, seed: int = 0, **task_kw) -> np.ndarray:
    """Success (E,) of the policy going home in worlds ``seeds`` (moves sampled, seeded)."""
    walker = HomeWalker(policy, tokenizer, torch.Generator().manual_seed(seed))
    return play_home(seeds, tokenizer, walker, **task_kw)[0]
