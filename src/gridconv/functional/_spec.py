"""Validation and shape resolution shared by every convolution-like op.

``conv_spec`` turns the user's arguments (stride, padding, dilation, groups, padding_mode)
into a :class:`ConvSpec` of plain tuples, raising a clear error for anything wrong. Every
conv method (direct, fft, separable), ``conv_transpose`` and ``conv_matrix`` starts here,
so they accept exactly the same arguments and report errors the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from gridconv import _memo
from gridconv._checks import (
    TENSOR_TYPES,
    TensorMeta,
    check_choice,
    check_int,
    check_same_kind,
    check_tensor,
    describe,
)
from gridconv._shapes import (
    Padding,
    PaddingPairs,
    check_kernel_fits,
    conv_output_size,
    ntuple,
    parse_padding,
    resolve_padding,
    trailing,
)
from gridconv.functional._trace import Record, constant, tracing
from gridconv.functional.padding import PADDING_MODES

# torch's convolution for each number of spatial dims
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class HasShape(Protocol):
    """A kernel known by its shape ``(C_out, C_in / groups, *kernel_size)``, dtype, device."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...


@dataclass(frozen=True)
class ConvSpec(Record):
    """A fully resolved convolution: every field is one value per spatial dim."""

    in_channels: int
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pairs: PaddingPairs
    groups: int
    padding_mode: str
    output_size: tuple[int, ...]
    padded_size: tuple[int, ...]  # input_size plus the padding on both sides
    span: tuple[int, ...]  # the dilated kernel's extent: dilation * (kernel_size - 1) + 1
    ndim: int  # spatial dims (a field, not a property: traced code reads it as a constant)

    def __hash__(self) -> int:  # specs key the planner's caches on every call: hash once
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(getattr(self, f.name) for f in fields(self)))
            object.__setattr__(self, "_hash", cached)
        return cached


def check_weight(w: object, name: str = "w") -> int:
    """``w`` is ``(C_out, C_in / groups, *kernel_size)`` with 1, 2 or 3 spatial dims; returns d."""
    w = check_tensor(name, w)
    if w.ndim not in (3, 4, 5):
        raise ValueError(
            f"`{name}` must have shape (out_channels, in_channels/groups, *kernel_size) with 1, 2 "
            f"or 3 spatial dims, i.e. 3, 4 or 5 dims; got shape {tuple(w.shape)} ({w.ndim} dims)."
        )
    if 0 in w.shape:
        raise ValueError(f"`{name}` must have no empty dims, got shape {tuple(w.shape)}.")
    return w.ndim - 2


def check_input(x: object, d: int, name: str = "x") -> bool:
    """``x`` is ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; returns whether batched."""
    x = check_tensor(name, x)
    if x.ndim not in (d + 1, d + 2):
        raise ValueError(
            f"`{name}` must have shape (N, C, *spatial) or (C, *spatial) with {d} spatial dims "
            f"(from the kernel), i.e. {d + 2} or {d + 1} dims; got shape {tuple(x.shape)}."
        )
    if any(n < 1 for n in x.shape[-d:]):
        raise ValueError(f"`{name}` has an empty spatial dim: shape {tuple(x.shape)}.")
    return x.ndim == d + 2


def parse_input_size(input_size: Any, d: int, in_channels: int | None = None) -> tuple[int, ...]:
    """Spatial size from an int, ``d`` ints, or a whole input shape ``(N, C, *spatial)``."""
    if input_size is None:
        raise ValueError("`input_size` is required: the spatial size of the convolution input.")
    is_shape = isinstance(input_size, Sequence) and not isinstance(input_size, str)
    if is_shape and len(input_size) in (d + 1, d + 2):
        channels = input_size[-d - 1]
        if in_channels is not None and channels != in_channels:
            raise ValueError(
                f"`input_size` {tuple(input_size)} has {channels} channels but the kernel "
                f"expects {in_channels}."
            )
        input_size = tuple(input_size[-d:])
    return ntuple("input_size", input_size, d)


def conv_spec(
    w: Tensor | HasShape | tuple[int, ...],
    in_channels: int,
    input_size: Sequence[int],
    *,
    stride: int | Sequence[int],
    padding: Padding,
    dilation: int | Sequence[int],
    groups: int,
    padding_mode: str,
    x_name: str = "x",
) -> ConvSpec:
    """Validate the hyper-parameters of convolving ``w`` over ``(in_channels, *input_size)``.

    ``w`` is the kernel tensor, anything with its ``shape`` (a :class:`SeparableKernel`),
    or the shape itself as a tuple. Valid specs are remembered by the ``repr`` of their
    arguments (which tells ``True`` from ``1``), so that a layer called again and again
    validates once.
    """
    shape = w if isinstance(w, tuple) else tuple(w.shape)
    key = repr(
        (
            shape,
            in_channels,
            tuple(input_size),
            stride,
            padding,
            dilation,
            groups,
            padding_mode,
        )
    )
    spec = _SPECS.get(key)
    if spec is None:
        spec = _conv_spec(
            shape, in_channels, input_size, stride, padding, dilation, groups, padding_mode, x_name
        )
        if len(_SPECS) > 4096:
            _SPECS.clear()
        _SPECS[key] = spec
    return spec


_SPECS: dict[str, ConvSpec] = _memo.register("specs", {})


def _conv_spec(
    shape: tuple[int, ...],
    in_channels: int,
    input_size: Sequence[int],
    stride: int | Sequence[int],
    padding: Padding,
    dilation: int | Sequence[int],
    groups: int,
    padding_mode: str,
    x_name: str,
) -> ConvSpec:
    d = len(shape) - 2
    out_channels, group_in, *kernel_size = shape
    groups = check_int("groups", groups, minimum=1)
    if in_channels % groups:
        raise ValueError(
            f"`groups` (={groups}) must divide the input channels (={in_channels} in `{x_name}`)."
        )
    if out_channels % groups:
        raise ValueError(
            f"`groups` (={groups}) must divide the output channels (w.shape[0]={out_channels})."
        )
    if in_channels != group_in * groups:
        raise ValueError(
            f"channel mismatch: `{x_name}` has {in_channels} channels but the kernels expect "
            f"C_in / groups * groups = {group_in} * {groups} = {group_in * groups}."
        )
    stride = ntuple("stride", stride, d)
    dilation = ntuple("dilation", dilation, d)
    padding_mode = check_choice("padding_mode", padding_mode, PADDING_MODES)
    pairs = resolve_padding(parse_padding(padding, d), input_size, kernel_size, stride, dilation)
    check_kernel_fits(input_size, kernel_size, pairs, dilation)
    output_size = conv_output_size(input_size, kernel_size, stride, pairs, dilation)
    return ConvSpec(
        padded_size=tuple(n + b + a for n, (b, a) in zip(input_size, pairs)),
        span=tuple(dl * (k - 1) + 1 for k, dl in zip(kernel_size, dilation)),
        ndim=d,
        in_channels=in_channels,
        input_size=tuple(input_size),
        kernel_size=tuple(kernel_size),
        stride=stride,
        dilation=dilation,
        pairs=pairs,
        groups=groups,
        padding_mode=padding_mode,
        output_size=output_size,
    )


def conv_spec_for_size(
    w: Tensor | HasShape,
    input_size: object,
    *,
    stride: int | Sequence[int],
    padding: Padding,
    dilation: int | Sequence[int],
    groups: int,
    padding_mode: str,
) -> ConvSpec:
    """:func:`conv_spec` for an input known by its size (int, d ints or a whole shape) alone."""
    groups = check_int("groups", groups, minimum=1)
    in_channels = w.shape[1] * groups
    return conv_spec(
        w,
        in_channels,
        parse_input_size(input_size, len(w.shape) - 2, in_channels),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
        x_name="input_size",
    )


def check_bias(
    bias: object, x: Tensor | TensorMeta, out_channels: int, output_size: tuple[int, ...]
) -> None:
    """``bias`` is None, tied ``(C_out,)`` or untied ``(C_out, *output_size)``."""
    if bias is None:
        return
    bias = check_tensor("bias", bias)
    check_same_kind(x=x, bias=bias)
    if tuple(bias.shape) not in ((out_channels,), (out_channels, *output_size)):
        raise ValueError(
            f"`bias` must have shape ({out_channels},) (tied: one per output channel) or "
            f"{(out_channels, *output_size)} (untied: one per output location); "
            f"got {describe(bias)}."
        )


def add_bias(out: Tensor, bias: Tensor | None) -> Tensor:
    """Add a tied ``(C,)`` or untied ``(C, *spatial)`` bias to a batched ``(N, C, *spatial)``."""
    if bias is None:
        return out
    d = out.ndim - 2
    if bias.ndim == 1:
        bias = bias.view(-1, *([1] * d))
    return out + bias


def setup(
    x: Tensor,
    w: Tensor | HasShape,
    bias: Tensor | None,
    stride: int | Sequence[int],
    padding: Padding,
    dilation: int | Sequence[int],
    groups: int,
    padding_mode: str,
) -> tuple[Tensor, ConvSpec, bool]:
    """Validate a call ``op(x, w, bias, ...)``; returns the batched ``x``, its spec, and
    whether ``x`` came batched (for :func:`finish`). A ``w`` that is not a tensor (a
    :class:`SeparableKernel`) must have been checked by its own op.

    A call like one validated before (tensors of the same types, shapes, dtypes and
    devices; the same hyper-parameters, ``True`` and ``1.0`` told from ``1``) skips the
    checks.
    """
    if tracing():  # validated at trace time, from the tensors' stand-ins
        spec, batched = _validate(x, w, bias, stride, padding, dilation, groups, padding_mode)
        return (x if batched else x.unsqueeze(0)), spec, batched
    values = (stride, padding, dilation, groups, padding_mode)
    hyper: object = values
    if not all(type(v) in _PLAIN for v in values):  # tell True and 1.0 from 1
        hyper = repr(values)
    try:
        key = (
            (type(x), x.shape, x.dtype, x.device),
            (type(w), w.shape, w.dtype, w.device),
            None if bias is None else (type(bias), bias.shape, bias.dtype, bias.device),
            hyper,
        )
        known = _VALID_CALLS.get(key)
    except (AttributeError, TypeError):  # not tensors: the checks below say what is wrong
        key, known = None, None
    if known is None:
        known = _validate(x, w, bias, stride, padding, dilation, groups, padding_mode)
        if key is not None:
            if len(_VALID_CALLS) > 4096:
                _VALID_CALLS.clear()
            _VALID_CALLS[key] = known
    spec, batched = known
    return (x if batched else x.unsqueeze(0)), spec, batched


@constant
def _validate(
    x: Tensor | TensorMeta,
    w: Tensor | TensorMeta | HasShape,
    bias: Tensor | TensorMeta | None,
    stride: int | Sequence[int],
    padding: Padding,
    dilation: int | Sequence[int],
    groups: int,
    padding_mode: str,
) -> tuple[ConvSpec, bool]:
    """The checks of :func:`setup`, on tensors or their stand-ins (while tracing)."""
    if isinstance(w, TENSOR_TYPES):
        d = check_weight(w)
        check_input(x, d)
        check_same_kind(x=x, w=w)
    else:
        d = len(w.shape) - 2
        check_input(x, d)
        check_same_kind(x=x, kernel=w)
    batched = x.ndim == d + 2
    shape = tuple(x.shape) if batched else (1, *x.shape)
    spec = conv_spec(
        w,
        shape[1],
        shape[2:],
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    check_bias(bias, x, w.shape[0], spec.output_size)
    return spec, batched


# Calls validated before. Checking costs ~10 us a call, which a 0.3 ms convolution feels
# two to three times over (the caches the checks disturb); a lookup costs ~2 us.
_VALID_CALLS: dict[tuple, tuple[ConvSpec, bool]] = _memo.register("valid calls", {})
_PLAIN = (int, str)


def dilate_kernel(w: Tensor, dilation: tuple[int, ...]) -> Tensor:
    """The kernel with ``dilation - 1`` zeros between its taps: what a dilated convolution
    correlates with.

    Shape:
        ``(C_out, Cg, *k) -> (C_out, Cg, *(dilation * (k - 1) + 1))``.
    """
    if all(dl == 1 for dl in dilation):
        return w
    span = [dl * (k - 1) + 1 for k, dl in zip(w.shape[2:], dilation)]
    wd = w.new_zeros(*w.shape[:2], *span)
    wd[trailing(slice(None, None, dl) for dl in dilation)] = w
    return wd


def finish(out: Tensor, bias: Tensor | None, batched: bool) -> Tensor:
    """Add the bias and undo the batching of :func:`setup`."""
    out = add_bias(out, bias)
    return out if batched else out.squeeze(0)
