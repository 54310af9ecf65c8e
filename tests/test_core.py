"""The one transformer core: rotary position embedding (partial RoPE) keeps its promises."""

import pytest
import torch

from hitchhiker.masks.core import (
    CoreConfig,
    KVCache,
    MaskedTokenModel,
    rotary_angles,
    rotary_dims,
    rotate,
)


def test_rotary_scores_depend_on_the_offset_alone():
    # <R(m) q, R(n) k> is the same for every pair of positions with the same n - m
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    r = rotary_dims(16, 0.5)

    def score(m, n):
        cm, sm = rotary_angles(torch.tensor([m]), r)
        cn, sn = rotary_angles(torch.tensor([n]), r)
        return (rotate(q, cm, sm) * rotate(k, cn, sn)).sum()

    assert torch.allclose(score(3, 7), score(40, 44), atol=1e-5)
    assert torch.allclose(score(0, 0), (q * k).sum(), atol=1e-6)  # position 0 is no turn
    assert not torch.allclose(score(3, 7), score(3, 8), atol=1e-3)


def test_rotary_turns_only_its_share_of_each_head():
    x = torch.randn(2, 3, 5, 32)
    r = rotary_dims(32, 0.5)
    cos, sin = rotary_angles(torch.arange(5) + 1, r)
    y = rotate(x, cos, sin)
    assert r == 16
    assert torch.equal(y[..., r:], x[..., r:])  # the unturned half is untouched
    assert not torch.allclose(y[..., :r], x[..., :r])
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)  # a rotation keeps length


@pytest.mark.parametrize("rotary", [0.0, 0.5, 1.0])
def test_cached_decoding_matches_the_full_causal_pass_with_rotary(rotary):
    torch.manual_seed(0)
    cfg = CoreConfig(vocab_size=10, seq_len=16, dim=32, depth=2, heads=2, rotary=rotary)
    model = MaskedTokenModel(cfg).eval()
    x = torch.randint(0, 10, (2, 12))
    with torch.no_grad():
        full = model(x, is_causal=True)
        cache = KVCache()
        steps = [model(x[:, i : i + 1], is_causal=True, cache=cache, start=i) for i in range(12)]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)


def test_rotary_off_is_the_model_without_it():
    torch.manual_seed(0)
    plain = MaskedTokenModel(CoreConfig(vocab_size=10, seq_len=8, dim=32, depth=1, heads=2))
    torch.manual_seed(0)
    off = MaskedTokenModel(
        CoreConfig(vocab_size=10, seq_len=8, dim=32, depth=1, heads=2, rotary=0.0)
    )
    x = torch.randint(0, 10, (2, 8))
    assert torch.equal(plain(x), off(x))
    assert off.core.rotary_dims == 0


def test_a_bad_rotary_share_is_refused():
    with pytest.raises(ValueError, match="share of each head"):
        MaskedTokenModel(CoreConfig(vocab_size=10, seq_len=8, dim=32, depth=1, heads=2, rotary=2))
