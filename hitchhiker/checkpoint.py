"""Checkpoints without pickle: safetensors for tensors, JSON for everything else.

A ``torch.save`` file is a pickle, and unpickling runs arbitrary code, so this course never writes
one. Tensors go to safetensors (a JSON header plus raw bytes), everything else to plain JSON.

Two kinds of files:

* **Training checkpoints** (resume a run exactly), one directory per step::

      run_dir/ckpt-0000700/
          model.safetensors       weights
          optimizer.safetensors   optimizer tensors "state.{param_idx}.{name}" + RNG states "rng.*"
          state.json              step, config, param_groups, non-tensor state, numpy/python RNG,
                                  scaler, extra (loss history, ...), format version

  Written atomically: everything goes into a hidden sibling ``.tmp-ckpt-*`` directory, is fsynced,
  then renamed in one ``os.replace``. A crash leaves either the old set of checkpoints or the new
  one, never half a checkpoint. A checkpoint is complete iff ``ckpt-NNNNNNN/state.json`` exists;
  leftover temp dirs are ignored and removed by the next save.

* **Shipped weights** (:func:`save_weights` / :func:`load_weights`): one ``.safetensors`` file per
  model, optionally stored in fp16, with JSON metadata in the header, listed with its sha256 in
  ``data/checkpoints/manifest.json`` (:func:`write_manifest`, :func:`verify_manifest`).

Every failure (missing, truncated or corrupt file, wrong keys, wrong shapes, sha mismatch) raises a
:class:`CheckpointError` that says what was expected and what was found.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hitchhiker.config import PRESETS

FORMAT_VERSION = 1
CKPT_PATTERN = re.compile(r"^ckpt-(\d{7,})$")
TMP_PREFIX = ".tmp-ckpt-"
MANIFEST_FIELDS = ("file", "sha256", "preset", "command", "figures")


class CheckpointError(ValueError):
    """A checkpoint or weights file is missing, corrupt, or does not match the model."""


# ----------------------------------------------------------------------------- small file helpers


def _fsync_dir(path: Path) -> None:
    try:  # make the rename itself durable; not possible on every OS (Windows), so best effort
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
):
    # safetensors refuses tensors that share storage (tied weights) or are non-contiguous: give
    # each one its own contiguous CPU copy where needed.
    seen, clean = set(), {}
    for key, t in tensors.items():
        t = t.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel() > 0:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        clean[key] = t
    save_file(clean, str(path), metadata=metadata)
    _fsync_file(path)


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"expected a safetensors file at {path}, but it does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as err:  # safetensors raises its own (Rust) error types
        raise CheckpointError(
            f"could not read {path} ({path.stat().st_size} bytes) as safetensors: the file is "
            f"truncated or corrupt ({type(err).__name__}: {err})"
        ) from err


def _check_keys_and_shapes(
    model: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool, src
):
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    problems = []
    if strict and missing:
        problems.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if strict and unexpected:
        problems.append(f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    problems += [
        f"{k}: expected shape {tuple(expected[k].shape)}, got {tuple(state[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if expected[k].shape != state[k].shape
    ]
    if problems:
        raise CheckpointError(
            f"{src} does not fit {type(model).__name__} ({len(expected)} tensors): "
            + "; ".join(problems)
        )


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model


# ----------------------------------------------------------------------------- training checkpoints


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.torch_cuda.{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return tensors, {
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }


def _set_rng_state(tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch_cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.torch_cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def checkpoint_dirs(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``run_dir`` as (step, path), oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        m = CKPT_PATTERN.match(p.name)
        if m and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint directory in ``run_dir``, or None."""
    found = checkpoint_dirs(run_dir)
    return found[-1][1] if found else None


def remove_partial_checkpoints(run_dir: str | Path) -> None:
    """Delete temp dirs left by a save that was killed (single writer per run_dir assumed)."""
    run_dir = Path(run_dir)
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            if p.name.startswith(TMP_PREFIX):
                shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scaler: torch.amp.GradScaler | None,
    extra_state: dict[str, Any],
    config: dict[str, Any],
    keep: int | None = None,
) -> Path:
    """Atomically write ``run_dir/ckpt-{step:07d}``; then keep only the newest ``keep`` (None: all)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_partial_checkpoints(run_dir)
    final = run_dir / f"ckpt-{step:07d}"
    tmp = run_dir / f"{TMP_PREFIX}{step:07d}-{os.getpid()}"
    tmp.mkdir()
    try:
        _save_tensors(tmp / "model.safetensors", _unwrap(model).state_dict())
        opt_tensors, rng_json = _rng_state()
        opt_json: dict[str, Any] = {"param_groups": [], "state": {}}
        if optimizer is not None:
            opt_state = optimizer.state_dict()
            opt_json["param_groups"] = opt_state["param_groups"]
            for idx, per_param in opt_state["state"].items():
                for name, value in per_param.items():
                    if torch.is_tensor(value):
                        opt_tensors[f"state.{idx}.{name}"] = value
                    else:
                        opt_json["state"].setdefault(str(idx), {})[name] = value
        _save_tensors(tmp / "optimizer.safetensors", opt_tensors)
        state = {
            "format_version": FORMAT_VERSION,
            "step": int(step),
            "config": config,
            "optimizer": opt_json,
            "rng": rng_json,
            "scaler": scaler.state_dict() if scaler is not None else {},
            "extra": extra_state,
        }
        _write_json(tmp / "state.json", state)  # last: its presence marks a complete checkpoint
        _fsync_dir(tmp)
        if final.exists():  # re-saving a step: move the old one out of the way first
            old = run_dir / f"{TMP_PREFIX}old-{step:07d}-{os.getpid()}"
            os.replace(final, old)
            shutil.rmtree(old)
        os.replace(tmp, final)
        _fsync_dir(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep:
        for _, old in checkpoint_dirs(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore a checkpoint dir into ``model`` (and optimizer, scaler, RNGs); return state.json."""
    path = Path(path)
    state_file = path / "state.json"
    if not state_file.is_file():
        raise CheckpointError(f"{path} is not a complete checkpoint: expected {state_file}")
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{state_file} is not valid JSON: {err}") from err
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: expected checkpoint format_version {FORMAT_VERSION}, got {state.get('format_version')!r}"
        )
    load_weights(path / "model.safetensors", _unwrap(model), strict=True)
    tensors, _ = _read_tensors(path / "optimizer.safetensors")
    if optimizer is not None:
        per_param: dict[int, dict[str, Any]] = {}
        for idx, values in state["optimizer"]["state"].items():
            per_param.setdefault(int(idx), {}).update(values)
        for key, t in tensors.items():
            if key.startswith("state."):
                _, idx, name = key.split(".", 2)
                per_param.setdefault(int(idx), {})[name] = t
        groups = state["optimizer"]["param_groups"]
        sizes = [len(g["params"]) for g in groups]
        expected = [len(g["params"]) for g in optimizer.param_groups]
        if sizes != expected:
            raise CheckpointError(
                f"{path}: optimizer has param groups of sizes {expected}, checkpoint has {sizes}"
            )
        optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if restore_rng:
        _set_rng_state(tensors, state["rng"])
    return state


# ----------------------------------------------------------------------------- shipped weights


@torch.no_grad()
def round_to_half(model: torch.nn.Module) -> torch.nn.Module:
    """Round a model's float32 weights and buffers to the values float16 holds, in place: what
    :func:`save_weights` with ``half=True`` stores and a load gives back, so that figures measured
    next are those of the stored file."""
    for t in _unwrap(model).state_dict().values():
        if t.dtype == torch.float32:
            t.copy_(t.to(torch.float16).to(torch.float32))
    return model


def save_weights(
    path: str | Path,
    model_or_state_dict: torch.nn.Module | dict[str, torch.Tensor],
    metadata: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write one safetensors file; ``half`` stores float32 tensors as float16 (half the size)."""
    path = Path(path)
    state = model_or_state_dict
    if isinstance(state, torch.nn.Module):
        state = _unwrap(state).state_dict()
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise TypeError(f"expected an nn.Module or a dict of tensors, got {type(state).__name__}")
    if half:
        halved = {}
        for k, t in state.items():
            if t.dtype == torch.float32:
                h = t.detach().to(torch.float16)
                if not torch.isfinite(h).all() and torch.isfinite(t).all():
                    raise CheckpointError(f"{k} overflows float16 (max |x| = {t.abs().max():.3g})")
                t = h
            halved[k] = t
        state = halved
    meta = {str(k): json.dumps(v) for k, v in (metadata or {}).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        _save_tensors(tmp, state, metadata={"format": "pt", **meta})
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata stored by :func:`save_weights` (without the safetensors "format" tag)."""
    _, meta = _read_tensors(Path(path))
    out = {}
    for k, v in meta.items():
        if k == "format":
            continue
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v  # written by another tool: keep the raw string
    return out


def rewrite_metadata(path: str | Path, metadata: dict[str, Any]) -> Path:
    """Store ``metadata`` in place of a weights file's metadata; the tensors are copied as they are
    stored (same dtypes, same bytes). Used to migrate a shipped file's config, not its weights."""
    tensors, _ = _read_tensors(Path(path))
    return save_weights(path, tensors, metadata=metadata, half=False)


def load_weights(
    path: str | Path, model: torch.nn.Module | None = None, strict: bool = True
) -> dict[str, torch.Tensor]:
    """Read a safetensors file (on CPU); with ``model``, check keys/shapes and load it in place."""
    state, _ = _read_tensors(Path(path))
    if model is not None:
        _check_keys_and_shapes(model, state, strict, Path(path))
        model.load_state_dict(state, strict=strict)  # copies, casting fp16 storage back to fp32
    return state


# ----------------------------------------------------------------------------- manifest


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise CheckpointError(
            f"{where}: expected a dict with fields {MANIFEST_FIELDS}, got {entry!r}"
        )
    missing = [k for k in MANIFEST_FIELDS if k not in entry]
    unknown = sorted(set(entry) - set(MANIFEST_FIELDS))
    if missing or unknown:
        raise CheckpointError(
            f"{where}: expected fields {MANIFEST_FIELDS}; missing {missing}, unknown {unknown}"
        )
    if entry["preset"] not in PRESETS:
        raise CheckpointError(f"{where}: preset {entry['preset']!r} is not one of {PRESETS}")
    if not isinstance(entry["figures"], dict):
        raise CheckpointError(f"{where}: 'figures' must be a dict, got {entry['figures']!r}")


def write_manifest(path: str | Path, entries: list[dict[str, Any]]) -> Path:
    """Write manifest.json; ``file`` is relative to the manifest, a None ``sha256`` is computed."""
    path = Path(path)
    out = []
    for i, entry in enumerate(entries):
        entry = dict(entry)
        if entry.get("sha256") is None:
            entry["sha256"] = file_sha256(path.parent / entry.get("file", ""))
        _check_entry(entry, f"manifest entry {i}")
        out.append(entry)
    files = [e["file"] for e in out]
    if len(set(files)) != len(files):
        raise CheckpointError(f"manifest lists a file twice: {sorted(files)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    _write_json(tmp, {"format_version": FORMAT_VERSION, "checkpoints": out})
    os.replace(tmp, path)
    return path


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a manifest.json, validated (no file hashing)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"expected a manifest at {path}, but it does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["checkpoints"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: expected JSON {{'checkpoints': [...]}}: {err}") from err
    for i, entry in enumerate(entries):
        _check_entry(entry, f"{path} entry {i}")
    return entries


def add_to_manifest(path: str | Path, entry: dict[str, Any]) -> Path:
    """Insert or replace (by ``file``) one entry of a manifest, creating it if needed."""
    entries = read_manifest(path) if Path(path).is_file() else []
    entries = [e for e in entries if e["file"] != entry.get("file")] + [entry]
    return write_manifest(path, sorted(entries, key=lambda e: e["file"]))


def verify_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Check every listed file exists and matches its sha256; return the entries."""
    path = Path(path)
    entries = read_manifest(path)
    for entry in entries:
        target = path.parent / entry["file"]
        if not target.is_file():
            raise CheckpointError(f"{path} lists {entry['file']}, but {target} does not exist")
        got = file_sha256(target)
        if got != entry["sha256"]:
            raise CheckpointError(
                f"{target}: sha256 mismatch, manifest expects {entry['sha256']}, file has {got}"
            )
    return entries
