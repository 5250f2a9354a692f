"""Unshared convolution (sec. 9.6): the locally connected layer.

``local_conv`` gives every output location its own kernel; the patches it reads are
gathered a slab of output rows at a time (never the whole im2col matrix), multiplied by
that slab's kernels in one batched matmul, and gathered again in the backward pass instead
of being kept. Tiled convolution, which shares a few kernels, is in
:mod:`gridconv.functional.tiled`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from gridconv._shapes import Padding, trailing
from gridconv.functional._spec import ConvSpec, check_bias, finish
from gridconv.functional._trace import tracing
from gridconv.functional._unshared import setup_unshared
from gridconv.functional.padding import pad, pad_adjoint

CHUNK_BYTES = 4 * 2**20  # the gathered patches of one slab stay under this (measured: 1-2 MiB
# cost 10-15 % more Python and add calls, 8-16 MiB gain nothing)


def _patches(slab: Tensor, spec: ConvSpec) -> Tensor:
    """The input windows of ``slab``, one matrix per output location.

    The slab is laid out ``(C, *spatial, N)`` so that a window's last kernel dim and the
    batch are one contiguous run of the input: the gather copies long runs, not single
    numbers.

    Shape:
        ``(C, *padded_slab, N)`` -> ``(locations, C * prod(kernel_size), N)``, locations in
        row-major order of the output.
    """
    d = spec.ndim
    C, N = slab.shape[0], slab.shape[-1]
    spans = spec.span
    for i in range(d):
        slab = slab.unfold(1 + i, spans[i], spec.stride[i])  # (C, *out, N, *span)
    if any(dl > 1 for dl in spec.dilation):
        slab = slab[trailing(slice(None, None, dl) for dl in spec.dilation)]
    slab = slab.permute(*range(1, d + 1), 0, *range(d + 2, 2 * d + 2), d + 1)  # (*out, C, *k, N)
    return slab.reshape(-1, C * math.prod(spec.kernel_size), N)


def _fold(grad: Tensor, spec: ConvSpec, into: Tensor) -> None:
    """The adjoint of :func:`_patches`: add every window's gradient onto ``into``.

    One spatial dim at a time, the first first: a kernel offset at a time, the windows'
    gradients are added onto the rows they came from (``k_i`` strided adds per dim, each
    over long contiguous runs).

    Shape:
        ``grad``: ``(locations, C * prod(kernel_size), N)``; ``into``: ``(*padded_slab, C, N)``
    """
    d = spec.ndim
    rows = grad.shape[0] // math.prod(spec.output_size[1:])
    out = (rows, *spec.output_size[1:])
    g = grad.view(*out, into.shape[d], *spec.kernel_size, into.shape[d + 1])
    for i in range(d):  # g: (*padded[:i], *out[i:], C, *k[i:], N)
        s, dl = spec.stride[i], spec.dilation[i]
        offsets = [
            (j, (slice(None),) * i + (slice(j * dl, j * dl + (out[i] - 1) * s + 1, s),))
            for j in range(spec.kernel_size[i])
        ]
        if i == d - 1:
            target = into
        else:
            target = g.new_empty(
                *g.shape[:i], into.shape[i], *g.shape[i + 1 : d + 1], *g.shape[d + 2 :]
            )
            if s == 1:  # the first offset covers rows [0, out): written, the rest zeroed
                target[(slice(None),) * i + (slice(out[i], None),)] = 0
                j, rows_hit = offsets.pop(0)
                target[rows_hit] = g.select(d + 1, j)
            else:
                target.zero_()
        for j, rows_hit in offsets:
            target[rows_hit] += g.select(d + 1, j)
        g = target


def _slabs(spec: ConvSpec, batch: int, itemsize: int) -> list[tuple[int, int, int, int]]:
    """Output rows ``[r0, r1)`` per slab, with the padded input rows ``[i0, i1)`` they read."""
    o1 = spec.output_size[0]
    per_row = batch * spec.in_channels * math.prod(spec.kernel_size)
    per_row *= math.prod(spec.output_size[1:]) * itemsize
    rows = max(1, min(o1, CHUNK_BYTES // max(per_row, 1)))
    span = spec.dilation[0] * (spec.kernel_size[0] - 1) + 1
    s = spec.stride[0]
    return [
        (r0, min(r0 + rows, o1), r0 * s, (min(r0 + rows, o1) - 1) * s + span)
        for r0 in range(0, o1, rows)
    ]


def _batch_last(x: Tensor, spec: ConvSpec) -> Tensor:
    """The padded input laid out for :func:`_patches`: ``(N, C, *n)`` -> ``(C, *padded, N)``."""
    xp = pad(x, spec.pairs, spec.padding_mode)
    return xp.permute(1, *range(2, spec.ndim + 2), 0).contiguous()


class _LocalConv(torch.autograd.Function):
    """Batched matmuls over slabs of locations; the backward pass gathers the patches anew
    rather than keeping them, so memory stays at one slab's patches. Everything runs with
    the batch last: ``(location, C_out, C_in * k) @ (location, C_in * k, N)``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, spec: ConvSpec) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.spec = spec
        xt = _batch_last(x, spec)
        N, O = x.shape[0], w.shape[spec.ndim]
        weights = w.reshape(-1, O, math.prod(w.shape[spec.ndim + 1 :]))  # (P, O, C*K)
        out = x.new_empty(math.prod(spec.output_size), O, N)
        per_row = math.prod(spec.output_size[1:])
        for r0, r1, i0, i1 in _slabs(spec, N, x.element_size()):
            chunk = slice(r0 * per_row, r1 * per_row)
            if tracing():  # torch.export traces this forward with gradients: no out=
                out[chunk] = torch.bmm(weights[chunk], _patches(xt[:, i0:i1], spec))
            else:
                torch.bmm(weights[chunk], _patches(xt[:, i0:i1], spec), out=out[chunk])
        return out.permute(2, 1, 0).reshape(N, O, *spec.output_size)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w = ctx.saved_tensors
        spec = ctx.spec
        d = spec.ndim
        want_x, want_w = ctx.needs_input_grad[:2]
        xt = _batch_last(x, spec)
        N, O = x.shape[0], w.shape[d]
        weights = w.reshape(-1, O, math.prod(w.shape[d + 1 :]))
        grad = grad.reshape(N, O, -1).permute(2, 1, 0).contiguous()  # (P, O, N)
        grad_w: Any = torch.empty_like(weights) if want_w else None
        C, *padded, _ = xt.shape  # the input gradient accumulates in (*padded, C, N): _fold
        grad_xt: Any = x.new_zeros(*padded, C, N) if want_x else None
        per_row = math.prod(spec.output_size[1:])
        for r0, r1, i0, i1 in _slabs(spec, N, x.element_size()):
            chunk = slice(r0 * per_row, r1 * per_row)
            if want_w:  # the patches go before the next slab's gradient comes
                patches = _patches(xt[:, i0:i1], spec).transpose(1, 2)
                torch.bmm(grad[chunk], patches, out=grad_w[chunk])
                del patches
            if want_x:
                _fold(torch.bmm(weights[chunk].transpose(1, 2), grad[chunk]), spec, grad_xt[i0:i1])
        grad_x = None
        if want_x:
            grad_xp = grad_xt.permute(d + 1, d, *range(d))
            grad_x = pad_adjoint(grad_xp, spec.pairs, spec.padding_mode).contiguous()
        return grad_x, None if grad_w is None else grad_w.reshape(w.shape), None


def local_conv(
    x: Tensor,
    w: Tensor,
    bias: Tensor | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "valid",
    dilation: int | Sequence[int] = 1,
    padding_mode: str = "zeros",
) -> Tensor:
    """Unshared convolution: every output location has its own kernel (sec. 9.6).

    ``out[n, o, p] = bias + sum_{c, k} x[n, c, p * stride + k * dilation - before]
    * w[p, o, c, k]``: a convolution whose weights are not shared across locations, the
    chapter's "locally connected layer". With every ``w[p]`` equal to one kernel it is
    :func:`gridconv.conv`. Memory stays bounded: patches are gathered a slab of output rows
    at a time (about 4 MiB), and gathered again in the backward pass instead of stored.

    Args:
        x: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
        w: one kernel per output location, ``(*out_spatial, C_out, C_in, *kernel_size)``.
        bias: ``None``, untied ``(C_out, *out_spatial)`` or tied ``(C_out,)``.
        stride, padding, dilation, padding_mode: as in :func:`gridconv.conv`.

    Shape:
        - x: ``(N, C_in, n_1, ..., n_d)``
        - w: ``(o_1, ..., o_d, C_out, C_in, k_1, ..., k_d)``
        - Output: ``(N, C_out, o_1, ..., o_d)`` with
          ``o_i = floor((n_i + before_i + after_i - dilation_i * (k_i - 1) - 1) / stride_i) + 1``

    Raises:
        ValueError: the location dims of ``w`` do not match the output size (the message
            gives the expected shape), a kernel larger than the padded input, and every
            error of :func:`gridconv.conv`.

    Example:
        >>> import torch, gridconv as gc
        >>> x = torch.randn(2, 3, 10, 10)
        >>> w = torch.randn(8, 8, 4, 3, 3, 3)  # an 8 x 8 output: 64 kernels
        >>> gc.local_conv(x, w).shape
        torch.Size([2, 4, 8, 8])
    """
    x, spec, batched, d = setup_unshared(x, w, bias, "w", stride, padding, dilation, padding_mode)
    if tuple(w.shape[:d]) != spec.output_size:
        expected = (*spec.output_size, *w.shape[d:])
        raise ValueError(
            f"`w` must have shape (*out_spatial, C_out, C_in, *kernel_size) = {expected} for an "
            f"input of size {tuple(x.shape[2:])} with padding {spec.pairs} and stride "
            f"{spec.stride}; got {tuple(w.shape)}."
        )
    check_bias(bias, x, w.shape[d], spec.output_size)
    return finish(_LocalConv.apply(x, w, spec), bias, batched)
