"""Presets and typed configs: the knobs every stage of the course shares.

One notebook has to run in seconds under CI, in minutes on a 2-core laptop, and at full size on a
Colab T4 or an A100. Instead of scattering ``if on_gpu:`` through the code, every stage declares its
config as a dataclass and a small table of per-preset values; :func:`make_config` picks the row for
the current machine and applies the caller's overrides on top::

    @dataclass
    class MAEConfig:
        PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"width": 32}, "gpu": {"width": 256}}
        width: int = 128
        \"\"\"Channels of the encoder.\"\"\"

    cfg = make_config(MAEConfig, width=64)   # preset resolved automatically, override wins

A checkpoint stores its config as a dict (:func:`config_to_dict`). When a field is added later
with a default that changes the model, ``STORED_BEFORE`` on the class names the value an older
dict, which lacks the field, was trained with (:func:`config_from_dict`).

Preset resolution, in order (:func:`resolve_preset`):

    HITCHHIKER_SMOKE or CI true  ->  "smoke"  (forced: tests and CI must stay fast)
    explicit argument            ->  that preset
    HITCHHIKER_PRESET            ->  that preset
    auto                         ->  "large" (CUDA, >= 40 GB), "gpu" (other CUDA, MPS), "cpu"

A config nests the settings that several recipes share as configs of their own (``train:
TrainConfig``, ``data: DataConfig``); a preset row or an override reaches a nested field by a dict
(``{"train": {"steps": 30}}``) or a dotted name (``**{"train.lr": 3e-4}``). A dict stored before the
configs were nested is migrated on load (:func:`migrate_flat`). Which device and precision run the
models is :mod:`hitchhiker.devices`' concern.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from typing import Any, Literal

import torch

from hitchhiker import devices
from hitchhiker.devices import hardware_name, pick_device, pick_precision

PRESETS = ("smoke", "cpu", "gpu", "large")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")
LARGE_GPU_BYTES = 40e9  # an "A100 40GB" reports ~42.5e9 bytes; a T4 ~15.8e9


# ----------------------------------------------------------------------------- environment & preset


def env_flag(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable; ``default`` when it is unset."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(
        f"environment variable {name}={raw!r} is not a boolean: expected one of "
        f"{TRUE_WORDS} (true) or {FALSE_WORDS} (false), case-insensitive"
    )


def _ci_flag() -> bool:
    """CI services spell ``CI`` many ways (true, 1, a service name): any value but a false word is true."""
    return os.environ.get("CI", "").strip().lower() not in FALSE_WORDS


def _check_preset(name: str, source: str) -> str:
    if not isinstance(name, str) or name.strip().lower() not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (from {source}); valid presets: {PRESETS}")
    return name.strip().lower()


def resolve_preset(name: str | None = None) -> str:
    """The preset to run at: forced smoke, else ``name``, else $HITCHHIKER_PRESET, else auto."""
    if name is not None:
        name = _check_preset(name, "argument")  # validate even when smoke wins, to surface typos
    if env_flag("HITCHHIKER_SMOKE") or _ci_flag():
        return "smoke"
    if name is not None:
        return name
    from_env = os.environ.get("HITCHHIKER_PRESET", "").strip()
    if from_env:
        return _check_preset(from_env, "$HITCHHIKER_PRESET")
    if torch.cuda.is_available():
        memory = torch.cuda.get_device_properties(0).total_memory
        return "large" if memory >= LARGE_GPU_BYTES else "gpu"
    if devices.mps_available():
        return "gpu"
    return "cpu"


# ----------------------------------------------------------------------------- typed configs


def _field_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # unresolvable forward refs: fall back to unchecked values
        return {}


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check ``value`` against a field's type hint; convert JSON lists to tuples, ints to floats."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is None:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, where)
            except (TypeError, ValueError):
                continue
        raise TypeError(f"{where} expects {_type_name(hint)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where} must be one of {args}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{where} expects a tuple {_type_name(hint)}, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if args and len(args) != len(value):
            raise TypeError(
                f"{where} expects {len(args)} items ({_type_name(hint)}), got {value!r}"
            )
        return tuple(_coerce(a, v, where) for a, v in zip(args, value)) if args else tuple(value)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError(f"{where} expects a float, got {value!r}")
    if hint in (int, bool, str):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        raise TypeError(f"{where} expects {hint.__name__}, got {type(value).__name__} {value!r}")
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return config_from_dict(hint, value) if isinstance(value, dict) else value
    return value  # a type we do not police (torch.dtype, callables, ...)


def _init_fields(cls: type) -> list[dataclasses.Field]:
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"expected a dataclass type, got {cls!r}")
    return [f for f in dataclasses.fields(cls) if f.init]


def nested_configs(cls: type) -> dict[str, type]:
    """The fields of ``cls`` that are configs themselves (``train``, ``data``, ...), with their class."""
    hints = _field_hints(cls)
    return {
        f.name: hints[f.name]
        for f in _init_fields(cls)
        if isinstance(hints.get(f.name), type) and dataclasses.is_dataclass(hints[f.name])
    }


def _expand_dotted(values: dict[str, Any]) -> dict[str, Any]:
    """{"train.lr": 3e-4, "dim": 8} -> {"train": {"lr": 3e-4}, "dim": 8}: overrides may name a nested
    field by its dotted path, as on a command line."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        head, dot, rest = key.partition(".")
        if not dot:
            if isinstance(out.get(key), dict) and isinstance(value, dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
            continue
        inner = out.setdefault(head, {})
        if not isinstance(
            inner, dict
        ):  # "train" given whole and "train.lr" too: the dotted one wins
            inner = out[head] = _as_tree(inner) if dataclasses.is_dataclass(inner) else {}
        inner.update(_expand_dotted({rest: value}))
    return out


def _as_tree(cfg: Any) -> dict[str, Any]:
    """A config instance as a tree of dicts, its values as they are (tuples stay tuples)."""
    return {
        f.name: _as_tree(v) if dataclasses.is_dataclass(v := getattr(cfg, f.name)) else v
        for f in _init_fields(type(cfg))
    }


def _default_tree(cls: type) -> dict[str, Any]:
    """A config's defaults as a tree of dicts (nested configs as dicts of their own defaults)."""
    tree: dict[str, Any] = {}
    for f in _init_fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue  # a required field: it must come from a preset row or an override
        tree[f.name] = _as_tree(value) if dataclasses.is_dataclass(value) else value
    return tree


def _merge(cls: type, tree: dict[str, Any], values: dict[str, Any], source: str) -> dict[str, Any]:
    """``tree`` (a config of class ``cls`` as dicts) with ``values`` checked and laid over it.

    A nested config given as a dict changes only the fields it names; given as an instance, it
    replaces the whole nested config. Unknown fields, at any depth, raise and name the valid ones.
    """
    values = _expand_dotted(values)
    fields = {f.name for f in _init_fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(
            f"unknown field(s) {unknown} for {cls.__name__} in {source}; valid fields: {sorted(fields)}"
        )
    nested, hints = nested_configs(cls), _field_hints(cls)
    out = dict(tree)
    for key, value in values.items():
        if key in nested and isinstance(value, dict):
            base = out.get(key)
            base = base if isinstance(base, dict) else _default_tree(nested[key])
            out[key] = _merge(nested[key], base, value, f"{source}, {key}.*")
        elif key in nested:
            if value is not None and not isinstance(value, nested[key]):
                raise TypeError(
                    f"{cls.__name__}.{key} ({source}) expects a {nested[key].__name__} or a dict of "
                    f"its fields, got {value!r}"
                )
            out[key] = None if value is None else _as_tree(value)
        else:
            out[key] = _coerce(hints.get(key, Any), value, f"{cls.__name__}.{key} ({source})")
    return out


def _construct(cls: type, tree: dict[str, Any]) -> Any:
    """The config instance of a checked tree of dicts."""
    nested = nested_configs(cls)
    return cls(
        **{
            k: _construct(nested[k], v) if k in nested and v is not None else v
            for k, v in tree.items()
        }
    )


def config_values(cls: type, preset: str | None = None, **overrides: Any) -> dict[str, Any]:
    """What :func:`make_config` would build, as a checked tree of dicts (before construction):
    the zoo reads a recipe's choices from it (which tokenizer?) before it completes the config."""
    _init_fields(cls)
    table = getattr(cls, "PRESETS", None) or {}
    bad = sorted(set(table) - set(PRESETS))
    if bad:
        raise ValueError(f"{cls.__name__}.PRESETS has unknown preset(s) {bad}; valid: {PRESETS}")
    for name, row in table.items():  # check every row so a typo fails on any machine
        _merge(cls, _default_tree(cls), dict(row), f"{cls.__name__}.PRESETS[{name!r}]")
    preset = resolve_preset(preset)
    tree = _merge(
        cls, _default_tree(cls), dict(table.get(preset, {})), f"{cls.__name__}.PRESETS[{preset!r}]"
    )
    return _merge(cls, tree, overrides, "overrides")


def make_config(cls: type, preset: str | None = None, **overrides: Any) -> Any:
    """An instance of dataclass ``cls``: field defaults < ``cls.PRESETS[preset]`` < ``overrides``.

    A nested config (a field whose type is a dataclass, e.g. ``train: TrainConfig``) is reached by
    a dict in a preset row (``{"train": {"steps": 30}}``) or a dotted override
    (``make_config(C, **{"train.lr": 3e-4})``); either changes only the fields it names.
    """
    return _construct(cls, config_values(cls, preset, **overrides))


def _jsonable(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    raise TypeError(f"{where} = {value!r} ({type(value).__name__}) cannot be stored as JSON")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-able dict of a config's fields (tuples become lists, nested configs dicts)."""
    cls = type(cfg)
    return {
        f.name: _jsonable(getattr(cfg, f.name), f"{cls.__name__}.{f.name}")
        for f in _init_fields(cls)
    }


def migrate_flat(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """A stored config dict written before ``cls`` nested its settings, in today's shape.

    Files written before the house nested its configs store one flat dict (``lr``, ``episodes``,
    ``vocab_size`` side by side). A dict that lacks a nested config's key is such a file: each key
    moves to ``cls.RENAMED[key]`` (a dotted path, or None to drop it) if the class names one, stays
    where it is if it is still a field, and otherwise moves into the one nested config that has a
    field of that name. A dict in today's shape comes back as it is.
    """
    nested = nested_configs(cls)
    if not nested or all(k in data for k in nested):
        return data
    renamed = getattr(cls, "RENAMED", None) or {}
    fields = {f.name for f in _init_fields(cls)}
    moved: dict[str, Any] = {}
    for key, value in data.items():
        if key in renamed:
            path = renamed[key]
        elif key in fields:
            path = key
        else:
            owners = [n for n, sub in nested.items() if key in {f.name for f in _init_fields(sub)}]
            if len(owners) != 1:
                raise ValueError(
                    f"stored {cls.__name__} field {key!r} has no place in today's config "
                    f"(found in {owners or 'no nested config'}); name it in {cls.__name__}.RENAMED"
                )
            path = f"{owners[0]}.{key}"
        if path is not None:
            moved[path] = value
    return _expand_dotted(moved)


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Inverse of :func:`config_to_dict`; unknown keys raise.

    A flat dict from before the configs were nested is migrated first (:func:`migrate_flat`). A
    missing key takes ``cls.STORED_BEFORE[key]`` if the class names one, else the field's default.
    ``STORED_BEFORE`` is for a field added after files were written whose default changes what gets
    built: an old file must rebuild the model it was trained as, while a new config gets the new
    default without every preset repeating it.
    """
    if not isinstance(data, dict):
        raise TypeError(f"expected a dict to build {cls.__name__}, got {type(data).__name__}")
    data = migrate_flat(cls, data)
    before = getattr(cls, "STORED_BEFORE", None) or {}
    values = {k: v for k, v in before.items() if k not in data}
    values.update(data)
    return _construct(cls, _merge(cls, _default_tree(cls), values, "dict"))


def describe_setup(preset: str | None = None, device: str | None = None) -> str:
    """One line for a notebook's first cell: preset, device, precision, torch, hardware."""
    dev = pick_device(device)
    return (
        f"preset={resolve_preset(preset)} | device={dev} | precision={pick_precision(dev).name}"
        f" | torch {torch.__version__} | {hardware_name()}"
    )
