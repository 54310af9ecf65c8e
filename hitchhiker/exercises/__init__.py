"""Exercises that check themselves: the learner writes the heart of a method, the package judges it.

Each notebook closes with exercises. Most ask the learner to change a setting and say what they
should expect to see; at least one asks them to *implement* something (the MaskGIT unmasking rule,
the classifier-free guidance mix, the EDM Euler step...). That one comes with a checker: the
learner's function is run on the same random inputs as the package's own implementation, and the
checker says whether the two agree and, if not, where they first differ.

    from hitchhiker import exercises

    def keep_most_confident(confidence, n_keep):
        ...  # your code

    exercises.check("02.unmask", keep_most_confident)   # prints a verdict, returns True / False

A checker never raises on the learner's behalf: an unfinished function (one that returns ``None``
or ``...``, or raises ``NotImplementedError``) gets "not done yet", a wrong one the first input on
which it differs, so a notebook with the exercise left open still runs top to bottom (CI runs it
that way, and runs the solution too: tests/test_course_frame.py).

Each notebook's exercises live in ``hitchhiker/exercises/nbNN.py``, which calls :func:`register`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class Exercise:
    """One implement-and-check exercise."""

    name: str
    """``"NN.short_name"``: the notebook number, then the exercise."""
    task: str
    """One sentence: what the learner's function must compute."""
    reference: Callable
    """The package's own implementation, called with the same arguments as the learner's."""
    cases: Callable[[torch.Generator], Sequence[tuple]]
    """Draws the argument tuples to try, from a seeded generator (same inputs on every run)."""
    atol: float = 1e-5
    """Absolute tolerance for floating-point results (integers and booleans must be equal)."""
    hint: str = ""
    """Shown when the learner's answer differs."""
    notes: dict = field(default_factory=dict)
    """Anything else the notebook may want to show (e.g. the paper's equation)."""


REGISTRY: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    """Add an exercise (called by the ``nbNN`` modules at import)."""
    if exercise.name in REGISTRY:
        raise ValueError(f"exercise {exercise.name!r} is registered twice")
    REGISTRY[exercise.name] = exercise
    return exercise


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("nb"):
            importlib.import_module(f"{__name__}.{info.name}")


def get(name: str) -> Exercise:
    """The exercise called ``name``; a clear error naming the known ones otherwise."""
    _load_all()
    if name not in REGISTRY:
        raise KeyError(f"unknown exercise {name!r}; known: {', '.join(sorted(REGISTRY)) or 'none'}")
    return REGISTRY[name]


def names() -> list[str]:
    """Every registered exercise, sorted."""
    _load_all()
    return sorted(REGISTRY)


class NotDone(Exception):
    """The learner's function is still the skeleton."""


def _compare(got, want, atol: float, where: str) -> str | None:
    """None when ``got`` matches ``want``; otherwise one line saying how they differ."""
    if isinstance(want, np.ndarray):  # NumPy answers are compared as tensors
        want = torch.from_numpy(want)
        got = torch.from_numpy(np.asarray(got)) if isinstance(got, (np.ndarray, list)) else got
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"{where}: expected a sequence of {len(want)} results, got {type(got).__name__}"
        for i, (g, w) in enumerate(zip(got, want)):
            msg = _compare(g, w, atol, f"{where}[{i}]")
            if msg:
                return msg
        return None
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{where}: expected a tensor, got {type(got).__name__}"
        if tuple(got.shape) != tuple(want.shape):
            return f"{where}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
        if want.dtype.is_floating_point or want.dtype.is_complex:
            diff = (got.detach().double() - want.detach().double()).abs()
            if not bool((diff <= atol + 1e-4 * want.detach().double().abs()).all()):
                return f"{where}: values differ by up to {diff.max().item():.3g}"
            return None
        if not torch.equal(got.to(want.dtype), want):
            n = int((got.to(want.dtype) != want).sum())
            return f"{where}: {n} of {want.numel()} entries differ"
        return None
    if isinstance(want, float):
        return (
            None
            if abs(float(got) - want) <= atol + 1e-4 * abs(want)
            else f"{where}: {got} != {want}"
        )
    return None if got == want else f"{where}: {got!r} != {want!r}"


def _describe(args: tuple) -> str:
    parts = []
    for a in args:
        if isinstance(a, torch.Tensor):
            parts.append(f"tensor{tuple(a.shape)}")
        else:
            parts.append(repr(a))
    return ", ".join(parts)


def _clone(args: tuple) -> tuple:
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def check(name: str, fn: Callable, verbose: bool = True) -> bool:
    """Run ``fn`` against the package's implementation on the exercise's inputs; print a verdict.

    Returns True when every case agrees. Never raises because of ``fn``.
    """
    ex = get(name)
    cases = ex.cases(torch.Generator().manual_seed(0))

    def say(text: str) -> None:
        if verbose:
            print(text)

    for i, args in enumerate(cases):
        want = ex.reference(*_clone(args))
        try:
            got = fn(*_clone(args))
            if got is None or got is Ellipsis:
                raise NotDone
        except (NotDone, NotImplementedError):
            say(f"{name}: not done yet. {ex.task}")
            return False
        except Exception as err:  # the learner's bug, reported, not raised
            say(
                f"{name}: your function raised {type(err).__name__}: {err} (case {i}: {_describe(args)})"
            )
            return False
        msg = _compare(got, want, ex.atol, "result")
        if msg:
            hint = f" Hint: {ex.hint}" if ex.hint else ""
            say(f"{name}: not yet. On case {i} ({_describe(args)}) {msg}.{hint}")
            return False
    say(f"{name}: correct. Your function agrees with the package on all {len(cases)} cases.")
    return True
