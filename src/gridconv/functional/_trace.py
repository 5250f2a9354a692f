"""Whether a call is being traced (``torch.compile``, ``torch.export``, ``torch.jit.trace``),
and how gridconv's Python-side decisions become constants of the traced program.

While tracing, nothing is looked up in or added to gridconv's caches (transformed kernels,
auto's choices): they are keyed on tensors' identities and version counters, which a traced
program does not have. What gridconv decides in Python from shapes and hyper-parameters
(validation, the padding, auto's choice, tile plans) is computed once at trace time by
:func:`constant`, from stand-ins of the tensors (:func:`stand_in`): dynamo does not step
through it, and bad input raises the very ``ValueError`` or ``TypeError`` it raises in eager
mode. Sizes are specialised: a traced gridconv call recompiles for each new input shape.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from gridconv._checks import TensorMeta

F = TypeVar("F", bound=Callable[..., Any])
_TENSOR = "gridconv: a tensor's shape, dtype and device"  # tags a stand-in
_RECORD = "gridconv: a dataclass's fields"
_ERROR = "gridconv: an error to raise"


JIT_TRACE_UNSUPPORTED = (
    "gridconv's convolutions do not support torch.jit.trace: it records one run's ops "
    "without the decisions taken in Python (padding, method, tiles), so its graph would "
    "silently be wrong for other shapes. Use torch.compile, or torch.export (for ONNX: "
    "torch.onnx.export(..., dynamo=True)) instead."
)


def tracing() -> bool:
    """Whether dynamo (``torch.compile``, ``torch.export``) is tracing.

    Raises:
        RuntimeError: under ``torch.jit.trace``, which gridconv does not support (see
            :data:`JIT_TRACE_UNSUPPORTED`).
    """
    if torch.jit.is_tracing():
        raise RuntimeError(JIT_TRACE_UNSUPPORTED)
    return torch.compiler.is_compiling()


def exporting() -> bool:
    """Whether ``torch.export`` is tracing (a program for other runtimes: ONNX, say)."""
    return torch.compiler.is_exporting()


class Record:
    """Base of the frozen dataclasses (``ConvSpec``) that traced code passes from one
    :func:`constant` function to another, by their fields."""

    KINDS: ClassVar[dict[str, Any]] = {}  # every subclass, by name
    NAMES: ClassVar[tuple[str, ...]] = ()  # a subclass's fields, in order

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.NAMES = tuple(n for n, t in cls.__annotations__.items() if "ClassVar" not in str(t))
        Record.KINDS[cls.__name__] = cls


def stand_in(value: Any) -> Any:
    """What a traced program can pass to a :func:`constant` function for ``value``: a tensor
    as a plain tuple of its shape, dtype and device; sizes as plain ints (a dynamic size is
    specialised: ``operator.index`` makes dynamo guard on its value and recompile for
    another); a dataclass
    (a ``ConvSpec`` that an earlier constant returned) as its class and fields; anything
    else as it is."""
    if isinstance(value, Tensor):
        return (_TENSOR, tuple(map(operator.index, value.shape)), value.dtype, value.device)
    if isinstance(value, torch.SymInt):  # a dynamic size: specialised (dynamo guards on it)
        return operator.index(value)
    if isinstance(value, tuple) and any(isinstance(v, torch.SymInt) for v in value):
        return tuple(map(stand_in, value))
    for kind, record in Record.KINDS.items():
        if isinstance(value, record):
            return (_RECORD, kind, tuple(getattr(value, name) for name in record.NAMES))
    return value


def _revive(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 4 and value[0] == _TENSOR:
        return TensorMeta(*value[1:])
    if isinstance(value, tuple) and len(value) == 3 and value[0] == _RECORD:
        record = Record.KINDS[value[1]]
        return record(**dict(zip(record.NAMES, value[2])))
    return value


def constant(fn: F) -> F:
    """``fn``, but computed once at trace time while tracing, as a constant of the traced
    program; its arguments must be plain values or :func:`stand_in` tensors (revived as
    :class:`~gridconv._checks.TensorMeta`). A ``ValueError`` or ``TypeError`` it raises is
    raised again in the traced code, so that the user sees it as in eager mode."""

    def at_trace_time(*args: Any) -> Any:
        try:
            return fn(*map(_revive, args))
        except (ValueError, TypeError) as error:
            return (_ERROR, type(error).__name__, str(error))

    at_trace_time.__name__ = at_trace_time.__qualname__ = f"gridconv_{fn.__name__}"
    at_trace_time = torch.compiler.assume_constant_result(at_trace_time)

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        if not tracing():
            return fn(*args)
        result = at_trace_time(*map(stand_in, args))
        if isinstance(result, tuple) and len(result) == 3 and result[0] == _ERROR:
            if result[1] == "TypeError":  # raised anew from plain values: dynamo traces that
                raise TypeError(result[2])
            raise ValueError(result[2])
        return result

    for name in ("cache_clear", "cache_info"):  # a memo's, where fn is one
        if hasattr(fn, name):
            setattr(call, name, getattr(fn, name))
    return call  # type: ignore[return-value]
