"""The compiled 1-D FFT path as torch custom ops, for traced programs (``torch.compile``,
``torch.export``): ``gridconv::fft_conv1d`` and its backward ``gridconv::fft_conv1d_backward``,
each one opaque call with a fake implementation (the output's shape) and an autograd formula.

Eager calls take :class:`.run.CompiledFFTConv`, which keeps the kernel's transform between
calls; the ops transform it on each call, as a traced program holds no cache. A double
backward goes through the direct method's autograd (equal to rounding).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gridconv.functional._spec import ConvSpec, conv_spec
from gridconv.functional.methods import direct
from gridconv.functional.methods.base import register_conv_autograd, wanted_grads
from gridconv.functional.methods.fft import overlap_save
from gridconv.functional.padding import pad_adjoint


def traceable(x: Tensor, w: Tensor, spec: ConvSpec) -> bool:
    """Whether a traced call takes the ops: static sizes, and the kernel gradient's sums
    fit where the kernel wants a gradient (the ops have no fallback to torch's FFTs)."""
    if not all(isinstance(n, int) for n in (*x.shape, *w.shape)):
        return False
    if not any(wanted_grads(w)):
        return True
    C, O, G = spec.in_channels, w.shape[0], spec.groups
    length = overlap_save.compiled_length(spec.padded_size[0], spec.span[0], C, O, G)
    return length is not None and overlap_save.sums_fit(length, C, O, G)


def fft_conv1d_op(x: Tensor, w: Tensor, spec: ConvSpec) -> Tensor:
    """``conv(x, w)`` as described by ``spec`` (1-D), by the op ``gridconv::fft_conv1d``."""
    ((before, after),) = spec.pairs
    return fft_conv1d(
        x, w, before, after, spec.stride[0], spec.dilation[0], spec.groups, spec.padding_mode
    )


def _spec(x: Tensor, w: Tensor, *params: Any) -> ConvSpec:
    """The spec of the ops' ``(before, after, stride, dilation, groups, padding_mode)``."""
    before, after, stride, dilation, groups, mode = params
    padding = [(before, after)]
    return conv_spec(
        w, x.shape[1], x.shape[2:], stride=stride, padding=padding, dilation=dilation,
        groups=groups, padding_mode=mode,
    )  # fmt: skip


@torch.library.custom_op("gridconv::fft_conv1d", mutates_args=(), device_types="cpu")
def fft_conv1d(
    x: Tensor,
    w: Tensor,
    before: int,
    after: int,
    stride: int,
    dilation: int,
    groups: int,
    padding_mode: str,
) -> Tensor:
    """1-D correlation by the compiled overlap-save kernel.

    Shape:
        ``(N, C_in, n), (C_out, C_in / groups, k) -> (N, C_out, o)``.
    """
    spec = _spec(x, w, before, after, stride, dilation, groups, padding_mode)
    return overlap_save.apply(x, overlap_save.prepare(w, spec), spec).contiguous()


@fft_conv1d.register_fake
def _fft_conv1d_fake(
    x: Tensor, w: Tensor, before: int, after: int, stride: int, dilation: int, *_: object
) -> Tensor:
    """The output's shape (``groups`` and ``padding_mode`` do not change it)."""
    span = dilation * (w.shape[-1] - 1) + 1
    out = (x.shape[-1] + before + after - span) // stride + 1
    return x.new_empty(x.shape[0], w.shape[0], out)


@torch.library.custom_op("gridconv::fft_conv1d_backward", mutates_args=(), device_types="cpu")
def fft_conv1d_backward(
    g: Tensor,
    x: Tensor,
    w: Tensor,
    before: int,
    after: int,
    stride: int,
    dilation: int,
    groups: int,
    padding_mode: str,
    want_x: bool,
    want_w: bool,
) -> tuple[Tensor, Tensor]:
    """The gradients of :func:`fft_conv1d`'s ``x`` and ``w`` (empty where not wanted).

    Shape:
        ``(N, C_out, o), (N, C_in, n), w -> (N, C_in, n), w`` (or ``(0,)`` each).
    """
    spec = _spec(x, w, before, after, stride, dilation, groups, padding_mode)
    kernel = overlap_save.prepare(w, spec)
    gxp, gw = overlap_save.backward(x, g, kernel, spec, (want_x, want_w))
    gx = x.new_empty(0) if gxp is None else pad_adjoint(gxp, spec.pairs, padding_mode)
    gw = w.new_empty(0) if gw is None else gw
    return gx.to(x.dtype).contiguous(), gw.to(w.dtype).contiguous()


# the gradients' shapes: x's and w's where wanted (the last two arguments), else empty
fft_conv1d_backward.register_fake(
    lambda g, x, w, *params: (
        x.new_empty(x.shape if params[-2] else (0,)),
        w.new_empty(w.shape if params[-1] else (0,)),
    )
)


def _double_backward(
    x: Tensor, w: Tensor, g: Tensor, params: list, want_x: bool, want_w: bool
) -> tuple[Tensor | None, Tensor | None]:
    """Both gradients through the direct method's autograd (equal to rounding)."""
    spec = _spec(x, w, *params)
    wanted = [t for t, want in ((x, want_x), (w, want_w)) if want]
    grads = iter(torch.autograd.grad(direct.run(x, w, spec), wanted, g, create_graph=True))
    return next(grads) if want_x else None, next(grads) if want_w else None


register_conv_autograd(fft_conv1d, fft_conv1d_backward, _double_backward)
