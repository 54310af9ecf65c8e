"""The longer plain window (recipe "window16"), Stage IV's control: it starts as the Stage III model
exactly, trains on walks that come back inside its window, and refuses a window that is not
longer."""

from types import SimpleNamespace

import pytest
import torch

from hitchhiker import zoo
from hitchhiker.memory import window_recipe
from hitchhiker.memory.memory_recipe import walk_tokens


@pytest.fixture(scope="module")
def smoke_window():
    cfg, deps = zoo.prepare("window16", "smoke")
    return cfg, deps


def test_the_widened_model_starts_as_the_stage3_model_on_its_newest_slots(smoke_window):
    cfg, deps = smoke_window
    start = deps["dynamics"].eval()
    wide = window_recipe.widen(window_recipe.build(cfg), start).eval()
    assert wide.context == cfg.context > start.context
    g = torch.Generator().manual_seed(0)
    f, n = start.context + 1, start.cfg.seq_len
    tokens = torch.randint(0, start.mask_id, (2, f, n), generator=g)
    actions = torch.randint(0, start.num_actions, (2, f), generator=g)
    with torch.no_grad():
        narrow = start(tokens, actions)
        widened = wide(tokens, actions, slot=wide.context - start.context)
    torch.testing.assert_close(widened, narrow)
    table, old = wide.modality.weight, start.modality.weight
    extra = wide.context - start.context
    assert torch.equal(table[:extra], old[:1].expand(extra, -1))  # older slots start as the oldest


def test_a_window_no_longer_than_the_dynamics_models_is_refused():
    base = SimpleNamespace(context=4)
    with pytest.raises(ValueError, match="longer than the dynamics model's 4 frames"):
        window_recipe.bind({"context": 4}, {"dynamics": SimpleNamespace(shipped_config=base)})


def test_its_training_walks_come_back_inside_its_window(smoke_window):
    cfg, deps = smoke_window
    p = cfg.loop_period
    assert 2 <= p <= cfg.context
    _, _, positions = walk_tokens(cfg, "train", 3, deps["tokenizer"], period=p)
    loops = positions[:3]  # the policies one after another: "loop" first
    starts = loops[:, ::p]
    assert (starts == starts[:, :1]).all()  # back where it set out every p steps
    assert (loops != loops[:, :1]).any()  # and it did set out


def test_a_training_loop_longer_than_the_window_is_refused():
    with pytest.raises(ValueError, match="loop_period must lie in"):
        zoo.config_for("window16", "smoke", loop_period=7)
