"""Presets, env flags, device/precision choice and the typed config mechanism."""

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pytest
import torch

from hitchhiker import devices
from hitchhiker.config import (
    PRESETS,
    config_from_dict,
    config_to_dict,
    describe_setup,
    env_flag,
    make_config,
    resolve_preset,
)
from hitchhiker.devices import Precision, hardware_name, pick_device, pick_precision


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("HITCHHIKER_SMOKE", "CI", "HITCHHIKER_PRESET"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def no_gpu(clean_env):
    clean_env.setattr(torch.cuda, "is_available", lambda: False)
    clean_env.setattr(devices, "mps_available", lambda: False)
    return clean_env


@dataclass
class Inner:
    depth: int = 2
    """Layers."""


@dataclass
class Toy:
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"width": 4, "steps": 3},
        "gpu": {"width": 256},
    }
    width: int = 32
    """Channels."""
    steps: int = 100
    """Optimizer steps."""
    lr: float = 1e-3
    """Learning rate."""
    betas: tuple[float, float] = (0.9, 0.95)
    """Adam betas."""
    mode: Literal["mask", "diffuse"] = "mask"
    """Training objective."""
    device: str | None = None
    """Device name or None."""
    inner: Inner = None
    """A nested config."""

    def __post_init__(self):
        if self.inner is None:
            self.inner = Inner()


# ----------------------------------------------------------------------------- env & preset


@pytest.mark.parametrize(
    "raw,expected",
    [("1", True), ("TRUE", True), (" yes ", True), ("On", True), ("0", False), ("false", False)]
    + [("No", False), ("off", False), ("", False)],
)
def test_env_flag_words(clean_env, raw, expected):
    clean_env.setenv("HITCHHIKER_X", raw)
    assert env_flag("HITCHHIKER_X") is expected


def test_env_flag_unset_and_garbage(clean_env):
    assert env_flag("HITCHHIKER_UNSET_FLAG") is False
    assert env_flag("HITCHHIKER_UNSET_FLAG", default=True) is True
    clean_env.setenv("HITCHHIKER_X", "maybe")
    with pytest.raises(ValueError, match=r"HITCHHIKER_X='maybe'.*'1', 'true'"):
        env_flag("HITCHHIKER_X")


def test_resolve_preset_order(no_gpu):
    assert resolve_preset() == "cpu"  # auto on a machine without a GPU
    assert resolve_preset("gpu") == "gpu"
    no_gpu.setenv("HITCHHIKER_PRESET", "large")
    assert resolve_preset() == "large" and resolve_preset("cpu") == "cpu"  # argument beats env
    for flag in ("HITCHHIKER_SMOKE", "CI"):
        no_gpu.setenv(flag, "true")
        assert resolve_preset("large") == "smoke"  # forced
        no_gpu.setenv(flag, "0")
        assert resolve_preset() == "large"
    no_gpu.setenv(
        "CI", "woodpecker"
    )  # CI services name themselves; anything but a false word counts
    assert resolve_preset() == "smoke"


def test_resolve_preset_errors(no_gpu):
    with pytest.raises(ValueError, match=r"'colab'.*\('smoke', 'cpu', 'gpu', 'large'\)"):
        resolve_preset("colab")
    no_gpu.setenv("HITCHHIKER_SMOKE", "1")
    with pytest.raises(ValueError, match="valid presets"):
        resolve_preset("typo")  # a typo is reported even when smoke is forced
    no_gpu.delenv("HITCHHIKER_SMOKE")
    no_gpu.setenv("HITCHHIKER_PRESET", "huge")
    with pytest.raises(ValueError, match="HITCHHIKER_PRESET"):
        resolve_preset()


def test_resolve_preset_auto_by_hardware(clean_env):
    class Props:
        total_memory = 0

    clean_env.setattr(torch.cuda, "is_available", lambda: True)
    clean_env.setattr(torch.cuda, "get_device_properties", lambda i: Props)
    Props.total_memory = 15.8e9  # T4
    assert resolve_preset() == "gpu"
    Props.total_memory = 42.5e9  # A100 40GB
    assert resolve_preset() == "large"
    clean_env.setattr(torch.cuda, "is_available", lambda: False)
    clean_env.setattr(devices, "mps_available", lambda: True)
    assert resolve_preset() == "gpu"


# ----------------------------------------------------------------------------- device & precision


def test_pick_device(no_gpu):
    assert pick_device() == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="MPS"):
        pick_device("mps")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        pick_device("tpu")


def test_pick_precision_by_device(monkeypatch):
    assert pick_precision("cpu") == Precision(torch.float32, False, False, "fp32")
    assert pick_precision(torch.device("mps")).name == "fp32"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (7, 5))  # T4
    t4 = pick_precision(torch.device("cuda"))
    assert (t4.dtype, t4.autocast, t4.grad_scaling, t4.name) == (torch.float16, True, True, "fp16")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (8, 0))  # A100
    a100 = pick_precision(torch.device("cuda"))
    assert (a100.dtype, a100.autocast, a100.grad_scaling) == (torch.bfloat16, True, False)
    assert pick_precision("cpu", "bf16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="'fp8'.*fp32"):
        pick_precision("cpu", "fp8")
    with pytest.raises(AttributeError):
        t4.name = "x"  # frozen


def test_describe_setup_and_hardware_name(no_gpu):
    line = describe_setup("cpu")
    assert "preset=cpu" in line and "device=cpu" in line and "precision=fp32" in line
    assert torch.__version__ in line and "\n" not in line
    assert hardware_name().endswith("cores)") and hardware_name() in line


# ----------------------------------------------------------------------------- typed configs


def test_make_config_layers_defaults_preset_overrides(clean_env):
    cpu = make_config(Toy, "cpu")  # no "cpu" row: field defaults
    assert (cpu.width, cpu.steps) == (32, 100)
    gpu = make_config(Toy, "gpu", steps=7, lr=1)
    assert (gpu.width, gpu.steps, gpu.lr) == (256, 7, 1.0) and isinstance(gpu.lr, float)
    assert make_config(Toy, "smoke", width=8).width == 8  # overrides win over the preset row
    clean_env.setenv("HITCHHIKER_SMOKE", "1")
    assert make_config(Toy, "large").steps == 3


def test_make_config_errors(clean_env):
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['widht'\].*valid fields"):
        make_config(Toy, "cpu", widht=3)
    with pytest.raises(ValueError, match="valid presets"):
        make_config(Toy, "tiny")
    with pytest.raises(TypeError, match=r"Toy.steps.*expects int"):
        make_config(Toy, "cpu", steps=1e3)
    with pytest.raises(TypeError, match="Toy.betas"):
        make_config(Toy, "cpu", betas=(0.9,))
    with pytest.raises(ValueError, match=r"one of \('mask', 'diffuse'\)"):
        make_config(Toy, "cpu", mode="ar")
    with pytest.raises(TypeError, match="dataclass"):
        make_config(dict, "cpu")

    @dataclass
    class BadRow:
        PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"gpu": {"sise": 1}}
        size: int = 1
        """Size."""

    with pytest.raises(ValueError, match=r"\['sise'\] for BadRow in BadRow.PRESETS\['gpu'\]"):
        make_config(BadRow, "cpu")  # a typo in any row fails on every machine

    @dataclass
    class BadPreset:
        PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"colab": {}}
        size: int = 1
        """Size."""

    with pytest.raises(ValueError, match="unknown preset"):
        make_config(BadPreset, "cpu")


def test_config_dict_round_trip(clean_env):
    cfg = make_config(Toy, "gpu", betas=(0.8, 0.99), mode="diffuse", inner=Inner(depth=5))
    data = config_to_dict(cfg)
    assert data["betas"] == [0.8, 0.99] and data["inner"] == {"depth": 5}
    back = config_from_dict(Toy, json.loads(json.dumps(data)))
    assert back == cfg and isinstance(back.betas, tuple) and isinstance(back.inner, Inner)
    assert config_from_dict(Toy, {"width": 3}) == Toy(width=3)  # missing keys: defaults
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['colour'\]"):
        config_from_dict(Toy, {**data, "colour": "red"})
    with pytest.raises(TypeError, match="expected a dict"):
        config_from_dict(Toy, [1, 2])
    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        config_to_dict(Toy(device=torch.device("cpu")))


def test_a_stored_config_without_a_newer_field_loads_as_it_was_trained(clean_env):
    @dataclass
    class Grown:
        STORED_BEFORE: ClassVar[dict[str, Any]] = {"trick": 0.0}
        width: int = 1
        """Width."""
        trick: float = 0.5
        """A knob added later; files written before it were trained with 0."""

    assert make_config(Grown, "cpu").trick == 0.5  # a new config gets the new default
    assert config_from_dict(Grown, {"width": 2}) == Grown(width=2, trick=0.0)  # an old file
    assert config_from_dict(Grown, {"trick": 0.25}).trick == 0.25  # a stored value wins
    assert config_from_dict(Grown, config_to_dict(Grown())) == Grown()


def test_presets_constant():
    assert PRESETS == ("smoke", "cpu", "gpu", "large")


@dataclass
class Optim:
    steps: int = 100
    """Steps."""
    lr: float = 1e-3
    """Learning rate."""


@dataclass
class Recipe:
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"width": 4, "train": {"steps": 3}},
        "gpu": {"train": {"lr": 3e-4}},
    }
    RENAMED: ClassVar[dict[str, str | None]] = {"train_steps": "train.steps", "old_knob": None}
    width: int = 32
    """Width."""
    train: Optim = dataclasses.field(default_factory=lambda: Optim(lr=2e-3))
    """How it trains (the recipe's own defaults: lr 2e-3)."""


def test_nested_configs_take_rows_and_dotted_overrides_field_by_field(clean_env):
    cpu = make_config(Recipe, "cpu")
    assert cpu.train == Optim(steps=100, lr=2e-3)  # the recipe's default factory, not Optim's
    gpu = make_config(Recipe, "gpu", **{"train.steps": 7})
    assert gpu.train == Optim(steps=7, lr=3e-4)  # the row changes lr only, the override steps
    assert make_config(Recipe, "gpu", train={"steps": 9}).train == Optim(steps=9, lr=3e-4)
    assert make_config(Recipe, "gpu", train=Optim(steps=1)).train == Optim(steps=1, lr=1e-3)
    assert make_config(Recipe, "smoke").train == Optim(steps=3, lr=2e-3)
    with pytest.raises(
        ValueError,
        match=r"\['lrr'\] for Optim in overrides, train\.\*; valid fields: \['lr', 'steps'\]",
    ):
        make_config(Recipe, "cpu", **{"train.lrr": 1.0})
    with pytest.raises(TypeError, match=r"Optim\.lr .* expects a float"):
        make_config(Recipe, "cpu", **{"train.lr": "fast"})
    with pytest.raises(TypeError, match="expects a Optim or a dict"):
        make_config(Recipe, "cpu", train=3)


def test_a_flat_stored_config_migrates_into_the_nested_shape(clean_env):
    old = {"width": 8, "train_steps": 40, "lr": 0.5, "old_knob": 1}
    cfg = config_from_dict(Recipe, old)
    assert cfg == Recipe(width=8, train=Optim(steps=40, lr=0.5))
    assert config_from_dict(Recipe, config_to_dict(cfg)) == cfg  # today's shape: unchanged
    with pytest.raises(ValueError, match="stored Recipe field 'colour' has no place"):
        config_from_dict(Recipe, {"width": 8, "colour": "red"})


def test_nested_defaults_keep_their_types(clean_env):
    from hitchhiker.train import TrainConfig

    @dataclass
    class WithTrainer:
        PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
        train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
        """How it trains."""

    cfg = make_config(WithTrainer, "cpu", **{"train.lr": 1e-2})
    assert cfg.train.betas == (0.9, 0.95) and isinstance(cfg.train.betas, tuple)
    assert config_from_dict(WithTrainer, config_to_dict(cfg)) == cfg
