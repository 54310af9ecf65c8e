"""Which machine runs the models: the device, the precision, and the hardware's name.

The same code runs on a laptop CPU, an Apple GPU (MPS), a Colab T4 and an A100: nothing is
hard-wired to CUDA or to the CPU. :func:`pick_device` takes the best device there is (or the one
asked for, with a clear error when it is missing), :func:`device_of` finds where a model lives.

Precision (:func:`pick_precision`) follows the hardware: bf16 autocast on CUDA with compute
capability >= 8.0 (A100, H100, RTX 30xx+), fp16 autocast plus gradient scaling on older CUDA GPUs
(T4 = 7.5; fp16 has a narrow exponent, so small gradients would underflow without the scaler),
plain fp32 on CPU and MPS.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import torch

PRECISIONS = ("fp32", "bf16", "fp16")


def mps_available() -> bool:
    """Whether an Apple GPU (MPS) can run torch here."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """``prefer`` if given ("cpu", "cuda", "cuda:1", "mps"), else the best available device."""
    if prefer is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    try:
        device = torch.device(prefer)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"unknown device {prefer!r}; expected 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {prefer!r} requested but CUDA is not available on this machine"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {prefer!r} requested but only {torch.cuda.device_count()} CUDA GPU(s) exist"
            )
    elif device.type == "mps":
        if not mps_available():
            raise ValueError(f"device {prefer!r} requested but MPS (Apple GPU) is not available")
    elif device.type != "cpu":
        raise ValueError(
            f"unsupported device {prefer!r}; expected 'cpu', 'cuda', 'cuda:N' or 'mps'"
        )
    return device


def device_of(module: Any) -> torch.device:
    """The device a module's parameters (or, lacking any, its buffers) live on; CPU for anything else."""
    if not isinstance(module, torch.nn.Module):
        return torch.device("cpu")
    tensor = next(iter(module.parameters()), None)
    if tensor is None:
        tensor = next(iter(module.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


@dataclass(frozen=True)
class Precision:
    """How the forward pass computes: the autocast dtype and whether the loss is scaled."""

    dtype: torch.dtype
    """The dtype autocast runs matmuls in (float32 when autocast is off)."""
    autocast: bool
    """Wrap the forward pass in ``torch.autocast``."""
    grad_scaling: bool
    """Scale the loss with ``torch.amp.GradScaler`` so fp16 gradients do not underflow."""
    name: str
    """Short name: "fp32", "bf16" or "fp16"."""


_PRECISION_BY_NAME = {
    "fp32": Precision(torch.float32, autocast=False, grad_scaling=False, name="fp32"),
    "bf16": Precision(torch.bfloat16, autocast=True, grad_scaling=False, name="bf16"),
    "fp16": Precision(torch.float16, autocast=True, grad_scaling=True, name="fp16"),
}


def pick_precision(device: torch.device | str, name: str | None = None) -> Precision:
    """The precision for ``device``; ``name`` ("fp32", "bf16", "fp16") forces one."""
    device = torch.device(device)
    if name is not None:
        if name not in _PRECISION_BY_NAME:
            raise ValueError(f"unknown precision {name!r}; valid: {PRECISIONS} or None (auto)")
        return _PRECISION_BY_NAME[name]
    if device.type != "cuda":
        return _PRECISION_BY_NAME["fp32"]  # CPU/MPS autocast is slower or patchy for training
    major, _ = torch.cuda.get_device_capability(device)
    return _PRECISION_BY_NAME["bf16" if major >= 8 else "fp16"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=2,
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):  # cores this process may use (containers, taskset)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def hardware_name() -> str:
    """What runs the models, e.g. "NVIDIA Tesla T4 (16 GB)" or "AMD EPYC (2 cores)"."""
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        name = props.name if props.name.startswith("NVIDIA") else f"NVIDIA {props.name}"
        count = torch.cuda.device_count()
        return f"{name} ({props.total_memory / 1e9:.0f} GB)" + (f" x{count}" if count > 1 else "")
    suffix = ", MPS" if mps_available() else ""
    return f"{_cpu_model()} ({_cpu_count()} cores{suffix})"
