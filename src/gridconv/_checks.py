"""Argument validation shared by every public entry point.

Each helper raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind,
wrong value) with a message that names the argument, what was expected and what was
given. Nothing here uses ``assert``: checks on user input must survive ``python -O``.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import torch


@dataclass(frozen=True)
class TensorMeta:
    """What the checks read of a tensor (shape, dtype, device), standing in for it where a
    traced program validates its calls once, at trace time (see ``gridconv.functional._trace``)."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point


TENSOR_TYPES = (torch.Tensor, TensorMeta)


def describe(value: Any) -> str:
    """A short, readable description of ``value`` for error messages."""
    if isinstance(value, TENSOR_TYPES):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)} on {value.device}"
    return f"{value!r} ({type(value).__name__})"


def check_tensor(name: str, value: Any) -> torch.Tensor:
    """``value`` must be a floating-point tensor."""
    if not isinstance(value, TENSOR_TYPES):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {describe(value)}.")
    if not value.is_floating_point():
        raise TypeError(
            f"`{name}` must have a floating-point dtype (e.g. torch.float32), got {value.dtype}."
        )
    return cast(torch.Tensor, value)  # or a TensorMeta, which reads as one at trace time


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """``value`` must be an integer (an int, a NumPy integer; not a bool), at least ``minimum``."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"`{name}` must be an int, got {describe(value)}.")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` must be one of the strings in ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        expected = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {expected}; got {describe(value)}.")
    return value


def check_same_kind(**tensors: Any) -> None:
    """All given tensors (or objects with ``dtype`` and ``device``) share one dtype and one
    device; ``None`` entries are skipped."""
    named = [(name, t) for name, t in tensors.items() if t is not None]
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.dtype != first.dtype:
            raise TypeError(
                f"`{name}` has dtype {t.dtype} but `{first_name}` has dtype {first.dtype}; "
                "convert them to one dtype."
            )
        if t.device != first.device:
            raise ValueError(
                f"`{name}` is on device {t.device} but `{first_name}` is on {first.device}; "
                "move them to one device."
            )
