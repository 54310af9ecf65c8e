"""The training loop and checkpoints: it learns, resumes bit-identically, writes atomically, runs DDP."""

import importlib.util
import json
import math
import os
import random
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset, TensorDataset

import hitchhiker.checkpoint as ckpt_mod
from hitchhiker.checkpoint import (
    CheckpointError,
    add_to_manifest,
    checkpoint_dirs,
    file_sha256,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    read_metadata,
    save_checkpoint,
    save_weights,
    verify_manifest,
    write_manifest,
)
from hitchhiker.config import make_config
from hitchhiker.plots import LivePlot, ema
from hitchhiker.train import (
    StepBatchSampler,
    TrainConfig,
    lr_at,
    seed_everything,
    to_device,
    train,
    weight_decay_groups,
)

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def regression_data(n=256, noise=0.01):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 8, generator=g)
    w = torch.randn(8, 1, generator=g)
    return TensorDataset(x, x @ w + noise * torch.randn(n, 1, generator=g))


def mse(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def cfg_for(**kw):
    base = dict(steps=12, batch_size=16, lr=0.05, warmup_steps=2, log_every=3, device="cpu")
    return TrainConfig(**{**base, **kw})


# ----------------------------------------------------------------------------- schedule & groups


def test_lr_warmup_then_cosine_at_known_steps():
    cfg = TrainConfig(steps=21, lr=1.0, warmup_steps=4, min_lr_ratio=0.1)
    assert [lr_at(s, cfg) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, cfg) == pytest.approx(1.0)  # cosine starts at the peak
    assert lr_at(4 + 8, cfg) == pytest.approx(0.55)  # half-way: (lr + lr_min) / 2
    assert lr_at(20, cfg) == pytest.approx(0.1)  # last step: lr_min
    assert lr_at(500, cfg) == pytest.approx(0.1)  # a run extended past its schedule stays at min
    no_warmup = TrainConfig(steps=11, lr=2.0, warmup_steps=0, min_lr_ratio=0.0)
    assert lr_at(0, no_warmup) == 2.0 and lr_at(10, no_warmup) == pytest.approx(0.0)
    lrs = [lr_at(s, cfg) for s in range(4, 21)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_weight_decay_only_on_matrices():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[3].bias.requires_grad_(False)
    decay, no_decay = weight_decay_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [names[id(p)] for p in decay["params"]] == ["0.weight", "1.weight", "3.weight"]
    assert [names[id(p)] for p in no_decay["params"]] == ["1.bias", "2.weight", "2.bias"]
    with pytest.raises(ValueError, match="no trainable"):
        weight_decay_groups(nn.Linear(2, 2).requires_grad_(False), 0.1)


# ----------------------------------------------------------------------------- data


def test_sampler_is_a_pure_function_of_the_step():
    full = list(StepBatchSampler(20, 4, seed=3, start=0, stop=15))
    assert len(full) == 15 and all(len(b) == 4 for b in full)
    for epoch in range(3):  # each epoch of 5 batches is a permutation of the dataset
        assert sorted(sum(full[5 * epoch : 5 * epoch + 5], [])) == list(range(20))
    assert full[:5] != full[5:10]  # reshuffled every epoch
    assert list(StepBatchSampler(20, 4, seed=3, start=7, stop=15)) == full[7:]  # mid-epoch resume
    assert list(StepBatchSampler(20, 4, seed=4, start=0, stop=5)) != full[:5]
    ranks = [list(StepBatchSampler(20, 4, seed=3, stop=15, rank=r, world_size=2)) for r in (0, 1)]
    for step, batch in enumerate(full):  # ranks split the same global batch
        assert ranks[0][step] == batch[0::2] and ranks[1][step] == batch[1::2]
    with pytest.raises(ValueError, match="batch_size"):
        StepBatchSampler(20, 5, world_size=2)
    with pytest.raises(ValueError, match="dataset_size"):
        StepBatchSampler(3, 4)


def test_to_device_moves_nested_tensors():
    Pair = namedtuple("Pair", "a b")
    batch = {
        "x": torch.ones(2),
        "seq": [torch.zeros(1), (torch.ones(3), "tag")],
        "p": Pair(torch.ones(1), 5),
    }
    moved = to_device(batch, torch.device("meta"))
    assert moved["x"].is_meta and moved["seq"][0].is_meta and moved["seq"][1][0].is_meta
    assert moved["seq"][1][1] == "tag" and isinstance(moved["seq"][1], tuple)
    assert isinstance(moved["p"], Pair) and moved["p"].a.is_meta and moved["p"].b == 5


# ----------------------------------------------------------------------------- the loop learns


def test_train_learns_a_regression_and_logs():
    seed_everything(0)
    seen = []

    def loss_fn(model, batch):
        loss = mse(model, batch)
        return loss, {"rmse": loss.detach().sqrt()}

    result = train(
        nn.Linear(8, 1),
        regression_data(),
        loss_fn,
        cfg_for(steps=60, batch_size=32, lr=0.1, weight_decay=0.0),
        callbacks=(lambda info: seen.append((info.step, info.lr, info.is_main)),),
        progress=False,
    )
    assert result.step == 60 and len(result.losses) == 60 and result.run_dir is None
    assert result.losses[0] > 1.0 and np.mean(result.losses[-5:]) < 0.02
    assert [s for s, _, _ in seen] == list(range(1, 61)) and all(main for *_, main in seen)
    assert [e["step"] for e in result.log] == list(range(3, 61, 3))
    last = result.log[-1]
    assert last["rmse"] == pytest.approx(math.sqrt(result.losses[-1]), rel=1e-5)
    assert last["loss"] == pytest.approx(np.mean(result.losses[-3:]))
    assert last["lr"] == pytest.approx(0.01) and last["grad_norm"] >= 0
    assert not result.model.training


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_paths_learn(precision):
    seed_everything(0)
    cfg = cfg_for(steps=40, batch_size=32, lr=0.1, weight_decay=0.0, precision=precision)
    result = train(nn.Linear(8, 1), regression_data(), mse, cfg, progress=False)
    assert result.losses[0] > 1.0 and np.mean(result.losses[-5:]) < 0.1


# ----------------------------------------------------------------------------- exact resume


class NoisyData(Dataset):
    """Regression data with numpy noise drawn in __getitem__ (exercises numpy RNG restore)."""

    def __init__(self):
        self.inner = regression_data(64)

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        x, y = self.inner[i]
        return {"x": x + torch.from_numpy(np.random.normal(0, 0.1, 8).astype(np.float32)), "y": y}


def dropout_net(seed):
    seed_everything(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.2), nn.GELU(), nn.Linear(16, 1))


def noisy_loss(model, batch):  # torch RNG via dropout, python RNG here
    loss = nn.functional.mse_loss(model(batch["x"]), batch["y"])
    return loss * (1 + 0.01 * random.random())


class Crash(Exception):
    pass


def crash_at(step):
    def callback(info):
        if info.step == step:
            raise Crash

    return callback


@pytest.mark.parametrize("precision,checkpoint_every", [("fp32", 7), ("fp32", 5), ("fp16", 5)])
def test_resume_is_bit_identical(tmp_path, precision, checkpoint_every):
    cfg = cfg_for(steps=12, checkpoint_every=checkpoint_every, precision=precision)
    straight = train(dropout_net(0), NoisyData(), noisy_loss, cfg, tmp_path / "a", progress=False)

    with pytest.raises(Crash):  # the process "dies" at step 7, after any checkpoint of step 7
        train(
            dropout_net(0),
            NoisyData(),
            noisy_loss,
            cfg,
            tmp_path / "b",
            callbacks=(crash_at(7),),
            progress=False,
        )
    seed_everything(99)  # a new process: other RNG states, other initial weights
    resumed = train(dropout_net(1), NoisyData(), noisy_loss, cfg, tmp_path / "b", progress=False)

    assert resumed.start_step == (7 if checkpoint_every == 7 else 5) and resumed.step == 12
    assert resumed.losses == straight.losses and resumed.log == straight.log
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values()
    ):
        assert torch.equal(a, b), name
    again = train(dropout_net(2), NoisyData(), noisy_loss, cfg, tmp_path / "b", progress=False)
    assert again.start_step == 12 and again.losses == straight.losses  # finished: nothing to do


def test_resume_warns_when_the_recipe_changed(tmp_path):
    train(nn.Linear(8, 1), regression_data(), mse, cfg_for(steps=4), tmp_path, progress=False)
    with pytest.warns(UserWarning, match="lr"):
        result = train(
            nn.Linear(8, 1),
            regression_data(),
            mse,
            cfg_for(steps=6, lr=0.5),
            tmp_path,
            progress=False,
        )
    assert result.start_step == 4 and len(result.losses) == 6


def test_keep_n_checkpoints(tmp_path):
    cfg = cfg_for(steps=10, checkpoint_every=2, keep_checkpoints=2)
    train(nn.Linear(8, 1), regression_data(), mse, cfg, tmp_path, progress=False)
    assert [s for s, _ in checkpoint_dirs(tmp_path)] == [8, 10]
    model = nn.Linear(2, 2)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path / "all", step, model, None, None, {}, {}, keep=None)
    assert [s for s, _ in checkpoint_dirs(tmp_path / "all")] == [1, 2, 3]


# ----------------------------------------------------------------------------- checkpoint files


def trained_linear():
    seed_everything(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    return model, opt


def test_checkpoint_restores_model_optimizer_rng(tmp_path):
    model, opt = trained_linear()
    path = save_checkpoint(tmp_path, 3, model, opt, None, {"losses": [1.0, 0.5]}, {"lr": 0.01})
    expected_draw, expected_np = torch.rand(3), np.random.rand(2)

    fresh = nn.Linear(4, 3)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=0.5)
    torch.manual_seed(1234), np.random.seed(1234)
    state = load_checkpoint(path, fresh, fresh_opt)
    assert torch.equal(torch.rand(3), expected_draw) and np.array_equal(
        np.random.rand(2), expected_np
    )
    assert (
        state["step"] == 3
        and state["extra"]["losses"] == [1.0, 0.5]
        and state["config"]["lr"] == 0.01
    )
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters()))
    saved, loaded = opt.state_dict(), fresh_opt.state_dict()
    assert loaded["param_groups"][0]["lr"] == 0.01
    for idx, per_param in saved["state"].items():
        for name, value in per_param.items():
            assert torch.equal(value, loaded["state"][idx][name])


def test_interrupted_write_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    model, opt = trained_linear()
    good = save_checkpoint(tmp_path, 1, model, opt, None, {}, {})

    def disk_full(path, obj):
        raise OSError("No space left on device")

    monkeypatch.setattr(ckpt_mod, "_write_json", disk_full)  # dies after the tensors are written
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(tmp_path, 2, model, opt, None, {}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-0000001"]
    assert latest_checkpoint(tmp_path) == good
    monkeypatch.undo()

    # A hard kill mid-write leaves a temp dir; a copy gone wrong leaves a dir without state.json.
    (tmp_path / ".tmp-ckpt-0000005-999").mkdir()
    (tmp_path / "ckpt-0000009").mkdir()
    assert latest_checkpoint(tmp_path) == good
    save_checkpoint(tmp_path, 3, model, opt, None, {}, {})
    assert not (tmp_path / ".tmp-ckpt-0000005-999").exists()
    assert latest_checkpoint(tmp_path).name == "ckpt-0000003"
    assert latest_checkpoint(tmp_path / "nowhere") is None
    with pytest.raises(CheckpointError, match="state.json"):
        load_checkpoint(tmp_path / "ckpt-0000009", model)


def test_weights_round_trip_half_metadata_and_tied(tmp_path):
    seed_everything(0)
    model = nn.Sequential(nn.Embedding(50, 16), nn.Linear(16, 50))
    model[1].weight = model[0].weight  # tied weights share storage
    full = save_weights(
        tmp_path / "full.safetensors", model, metadata={"preset": "cpu", "acc": [0.5]}
    )
    half = save_weights(tmp_path / "half.safetensors", model, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    assert load_weights(half)["1.weight"].dtype == torch.float16
    assert read_metadata(full) == {"preset": "cpu", "acc": [0.5]}
    other = nn.Sequential(nn.Embedding(50, 16), nn.Linear(16, 50))
    load_weights(full, other)
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values())
    )
    load_weights(half, other)
    assert other[1].bias.dtype == torch.float32
    assert torch.allclose(other[0].weight, model[0].weight, atol=1e-3)
    with pytest.raises(CheckpointError, match="overflows float16"):
        save_weights(tmp_path / "big.safetensors", {"w": torch.tensor([1e6])}, half=True)


def test_load_weights_errors_are_clear(tmp_path):
    model = nn.Linear(4, 3)
    path = save_weights(tmp_path / "w.safetensors", model)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(tmp_path / "missing.safetensors")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_weights(tmp_path / "cut.safetensors", model)
    (tmp_path / "junk.safetensors").write_bytes(os.urandom(300))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_weights(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match=r"0.weight: expected shape \(3, 4\), got \(2, 4\)"):
        load_weights(
            save_weights(tmp_path / "s.safetensors", nn.Sequential(nn.Linear(4, 2))),
            nn.Sequential(model),
        )
    with pytest.raises(CheckpointError, match=r"missing keys \['bias'\]"):
        load_weights(save_weights(tmp_path / "nb.safetensors", nn.Linear(4, 3, bias=False)), model)
    extra = {**model.state_dict(), "scale": torch.ones(1)}
    with pytest.raises(CheckpointError, match=r"unexpected keys \['scale'\]"):
        load_weights(save_weights(tmp_path / "x.safetensors", extra), model)
    load_weights(tmp_path / "nb.safetensors", model, strict=False)  # the bias stays as it was


def test_manifest_write_verify_and_tamper(tmp_path):
    weights = save_weights(tmp_path / "mae.safetensors", nn.Linear(2, 2))
    entry = {
        "file": "mae.safetensors",
        "sha256": None,
        "preset": "gpu",
        "command": "make tour",
        "figures": {"psnr": 30.1},
    }
    manifest = write_manifest(tmp_path / "manifest.json", [entry])
    (entries,) = verify_manifest(manifest)
    assert entries["sha256"] == file_sha256(weights) and entries["figures"] == {"psnr": 30.1}
    add_to_manifest(manifest, {**entry, "sha256": None, "figures": {"psnr": 31.0}})
    assert [e["figures"]["psnr"] for e in json.loads(manifest.read_text())["checkpoints"]] == [31.0]
    weights.write_bytes(weights.read_bytes()[:-1] + b"!")
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        verify_manifest(manifest)
    with pytest.raises(CheckpointError, match="missing \\['command'\\]"):
        write_manifest(manifest, [{k: v for k, v in entry.items() if k != "command"}])
    with pytest.raises(CheckpointError, match="preset"):
        write_manifest(manifest, [{**entry, "preset": "colab"}])


# ----------------------------------------------------------------------------- config & input errors


def test_train_config_presets_and_errors():
    smoke = make_config(TrainConfig, "smoke")
    assert smoke.steps == TrainConfig.PRESETS["smoke"]["steps"] and smoke.lr == TrainConfig.lr
    with pytest.raises(ValueError, match="lr=0"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="precision='fp8'"):
        TrainConfig(precision="fp8")
    with pytest.raises(TypeError, match="TrainConfig"):
        train(nn.Linear(8, 1), regression_data(), mse, {"steps": 3})

    class Stream(IterableDataset):
        def __iter__(self):
            yield from ()

    with pytest.raises(TypeError, match="map-style"):
        train(nn.Linear(8, 1), Stream(), mse, cfg_for())
    with pytest.raises(TypeError, match="scalar tensor"):
        train(nn.Linear(8, 1), regression_data(), lambda m, b: m(b[0]), cfg_for(), progress=False)
    with pytest.raises(ValueError, match="dataset_size=8"):
        train(nn.Linear(8, 1), regression_data(8), mse, cfg_for(), progress=False)
    with pytest.raises(FloatingPointError, match="loss became"):
        train(
            nn.Linear(8, 1),
            regression_data(),
            lambda m, b: mse(m, b) * math.nan,
            cfg_for(),
            progress=False,
        )


# ----------------------------------------------------------------------------- live plot


def test_live_plot_updates_one_display_handle(monkeypatch):
    calls = []

    class Handle:
        def update(self, obj):
            calls.append(("update", obj))

    def fake_display(obj, display_id=False):
        calls.append(("display", obj))
        return Handle()

    import IPython.display

    monkeypatch.setattr(IPython.display, "display", fake_display)
    assert LivePlot().enabled is False  # pytest is not a notebook
    LivePlot().update([1.0] * 100, force=True)
    assert calls == []
    plot = LivePlot(every=10, enabled=True)
    cfg = cfg_for(steps=24, log_every=4)
    train(nn.Linear(8, 1), regression_data(), mse, cfg, live_plot=plot, progress=False)
    kinds = [k for k, _ in calls]
    assert kinds == ["display", "update"]  # drawn at step 12, then forced at the end (24)
    assert calls[-1][1].data[:4] == b"\x89PNG"
    assert np.allclose(ema([2.0, 2.0, 2.0]), 2.0) and ema([]).size == 0


# ----------------------------------------------------------------------------- DDP


def test_ddp_two_cpu_ranks_match_single_process(tmp_path):
    worker = ROOT / "tests" / "_ddp_worker.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    proc = subprocess.run(
        [*cmd, str(worker), str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (load_weights(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    losses = read_metadata(tmp_path / "rank0.safetensors")["losses"]
    assert read_metadata(tmp_path / "rank0.safetensors")["world_size"] == 2
    assert losses[0] > 1.0 and np.mean(losses[-5:]) < 0.05
    assert [s for s, _ in checkpoint_dirs(tmp_path / "run")] == [20, 40]

    # Each rank takes half of the same global batch, so one process computes the same run.
    spec = importlib.util.spec_from_file_location("_ddp_worker", worker)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    single = train(
        mod.make_model(), mod.make_dataset(), mod.loss_fn, TrainConfig(**mod.CONFIG), progress=False
    )
    for k, v in single.model.state_dict().items():
        assert torch.allclose(v, rank0[k], atol=1e-5), k
    assert np.allclose(single.losses, losses, rtol=1e-4)


def test_a_warmup_longer_than_the_run_ends_inside_it_and_log_every_0_logs_each_quarter(tmp_path):
    cfg = TrainConfig(steps=8, batch_size=4, lr=0.01, warmup_steps=100, log_every=0, device="cpu")
    assert [lr_at(s, cfg) for s in range(7)] == pytest.approx(
        [0.01 * (s + 1) / 7 for s in range(7)]
    )
    assert lr_at(7, cfg) == pytest.approx(0.01)  # the warmup is cut to steps - 1: one decay step
    model = nn.Linear(2, 1)
    data = [{"x": torch.randn(2)} for _ in range(16)]
    result = train(model, data, lambda m, b: m(b["x"]).pow(2).mean(), cfg, progress=False)
    assert [e["step"] for e in result.log] == [2, 4, 6, 8]  # 0: every quarter of the run
