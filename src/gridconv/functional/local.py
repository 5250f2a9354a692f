"""Unshared convolution (sec. 9.6): locally connected and tiled layers.

``local_conv`` gives every output location its own kernel; the patches it reads are
gathered a slab of output rows at a time (never the whole im2col matrix), multiplied by
that slab's kernels in one batched matmul, and gathered again in the backward pass instead
of being kept. ``tiled_conv`` cycles ``prod(tile)`` kernels over the output (Le et al.
2010): one strided convolution per kernel, whose outputs interleave.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from gridconv._checks import check_same_kind, check_tensor
from gridconv._shapes import Padding, ntuple
from gridconv.functional._spec import ConvSpec, check_bias, check_input, conv_spec, finish
from gridconv.functional.padding import pad, pad_adjoint

_TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CHUNK_BYTES = 2 * 2**20  # the gathered patches of one slab stay under this (measured: the
# time hardly depends on it from 256 KiB to 32 MiB)


def _split_weight(w: object, name: str) -> int:
    """``w`` is ``(*lead, C_out, C_in, *kernel_size)`` with 1-3 spatial dims; returns d."""
    w = check_tensor(name, w)
    if w.ndim not in (4, 6, 8):
        raise ValueError(
            f"`{name}` must have shape (*{'out_spatial' if name == 'w' else 'tile_size'}, "
            f"C_out, C_in, *kernel_size) with 1, 2 or 3 spatial dims, i.e. 4, 6 or 8 dims; "
            f"got shape {tuple(w.shape)}."
        )
    if 0 in w.shape:
        raise ValueError(f"`{name}` must have no empty dims, got shape {tuple(w.shape)}.")
    return (w.ndim - 2) // 2


def _setup(
    x: Tensor, w: Tensor, bias: Tensor | None, name: str, **hyper: Any
) -> tuple[Tensor, ConvSpec, bool, int]:
    """Validate ``op(x, w, bias, ...)`` for local and tiled weights; batch ``x``."""
    d = _split_weight(w, name)
    batched = check_input(x, d)
    check_same_kind(x=x, w=w)
    if not batched:
        x = x.unsqueeze(0)
    spec = conv_spec(tuple(w.shape[d:]), x.shape[1], x.shape[2:], groups=1, **hyper)
    return x, spec, batched, d


def _patches(slab: Tensor, spec: ConvSpec) -> Tensor:
    """The input windows of ``slab``, one row per output location.

    Shape:
        ``(N, C, *padded_slab)`` -> ``(locations, N, C * prod(kernel_size))``, locations in
        row-major order of the output.
    """
    d = spec.ndim
    N, C = slab.shape[:2]
    spans = [dl * (k - 1) + 1 for k, dl in zip(spec.kernel_size, spec.dilation)]
    for i in range(d):
        slab = slab.unfold(2 + i, spans[i], spec.stride[i])  # (N, C, *out, *span)
    if any(dl > 1 for dl in spec.dilation):
        slab = slab[(..., *(slice(None, None, dl) for dl in spec.dilation))]
    slab = slab.permute(*range(2, 2 + d), 0, 1, *range(2 + d, 2 + 2 * d))  # (*out, N, C, *k)
    return slab.reshape(-1, N, C * math.prod(spec.kernel_size))


def _fold(grad: Tensor, spec: ConvSpec, slab_shape: Sequence[int]) -> Tensor:
    """The adjoint of :func:`_patches`: add every window's gradient back onto its slab.

    Works in the ``(*spatial, N, C)`` layout, where each window's ``(N, C)`` block is
    contiguous: twice as fast as folding ``(N, C, *spatial)``.

    Shape:
        ``(locations, N, C * prod(kernel_size))`` -> ``slab_shape = (*padded_slab, N, C)``
    """
    d = spec.ndim
    N, C = slab_shape[d:]
    rows = grad.shape[0] // math.prod(spec.output_size[1:])
    out = (rows, *spec.output_size[1:])
    g = grad.reshape(*out, N, C, *spec.kernel_size)  # (*out, N, C, *k)
    spans = [dl * (k - 1) + 1 for k, dl in zip(spec.kernel_size, spec.dilation)]
    if any(dl > 1 for dl in spec.dilation):
        dilated = g.new_zeros(*g.shape[: d + 2], *spans)
        dilated[(..., *(slice(None, None, dl) for dl in spec.dilation))] = g
        g = dilated
    sizes = [list(slab_shape)]
    for i in range(d):  # the shapes between the nested unfolds
        sizes.append([*sizes[-1][:i], out[i], *sizes[-1][i + 1 :], spans[i]])
    for i in reversed(range(d)):
        g = torch.ops.aten.unfold_backward(g, sizes[i], i, spans[i], spec.stride[i])
    return g


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


class _LocalConv(torch.autograd.Function):
    """Batched matmuls over slabs of locations; the backward pass gathers the patches anew
    rather than keeping them, so memory stays at one slab's patches."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, spec: ConvSpec) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.spec = spec
        xp = pad(x, spec.pairs, spec.padding_mode)
        N, O = x.shape[0], w.shape[spec.ndim]
        weights = w.reshape(-1, O, math.prod(w.shape[spec.ndim + 1 :]))  # (P, O, C*K)
        out = x.new_empty(math.prod(spec.output_size), N, O)
        per_row = math.prod(spec.output_size[1:])
        for r0, r1, i0, i1 in _slabs(spec, N, x.element_size()):
            patches = _patches(xp[:, :, i0:i1], spec)  # (locations, N, C*K)
            chunk = slice(r0 * per_row, r1 * per_row)
            torch.bmm(patches, weights[chunk].transpose(1, 2), out=out[chunk])
        return out.permute(1, 2, 0).reshape(N, O, *spec.output_size)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w = ctx.saved_tensors
        spec = ctx.spec
        want_x, want_w = ctx.needs_input_grad[:2]
        xp = pad(x, spec.pairs, spec.padding_mode)
        N, O = x.shape[0], w.shape[spec.ndim]
        weights = w.reshape(-1, O, math.prod(w.shape[spec.ndim + 1 :]))
        grad = grad.reshape(N, O, -1).permute(2, 0, 1).contiguous()  # (P, N, O)
        grad_w = torch.empty_like(weights) if want_w else None
        d = spec.ndim
        # the input gradient accumulates in (*padded, N, C): see _fold
        grad_xp = xp.new_zeros(*xp.shape[2:], *xp.shape[:2]) if want_x else None
        per_row = math.prod(spec.output_size[1:])
        for r0, r1, i0, i1 in _slabs(spec, N, x.element_size()):
            chunk = slice(r0 * per_row, r1 * per_row)
            g = grad[chunk]  # (locations, N, O)
            if want_w:
                patches = _patches(xp[:, :, i0:i1], spec)
                torch.bmm(g.transpose(1, 2), patches, out=grad_w[chunk])
            if want_x:
                slab = grad_xp[i0:i1]
                slab += _fold(torch.bmm(g, weights[chunk]), spec, slab.shape)
        grad_x = None
        if want_x:
            grad_xp = grad_xp.permute(d, d + 1, *range(d))
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
    at a time (about 32 MiB), and gathered again in the backward pass instead of stored.

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
    x, spec, batched, d = _setup(
        x,
        w,
        bias,
        "w",
        stride=stride,
        padding=padding,
        dilation=dilation,
        padding_mode=padding_mode,
    )
    if tuple(w.shape[:d]) != spec.output_size:
        expected = (*spec.output_size, *w.shape[d:])
        raise ValueError(
            f"`w` must have shape (*out_spatial, C_out, C_in, *kernel_size) = {expected} for an "
            f"input of size {tuple(x.shape[2:])} with padding {spec.pairs} and stride "
            f"{spec.stride}; got {tuple(w.shape)}."
        )
    check_bias(bias, x, w.shape[d], spec.output_size)
    return finish(_LocalConv.apply(x, w, spec), bias, batched)


def tiled_conv(
    x: Tensor,
    w: Tensor,
    bias: Tensor | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "valid",
    dilation: int | Sequence[int] = 1,
    padding_mode: str = "zeros",
) -> Tensor:
    """Tiled convolution: ``prod(tile_size)`` kernels take turns over the output.

    Output location ``i`` (per dim) uses kernel ``i mod tile_size``, as in Le et al. 2010:
    neighbouring units have different filters, and the parameters grow only by
    ``prod(tile_size)``. Tile size 1 is :func:`gridconv.conv`; a tile as large as the output
    is :func:`local_conv`. Tile sizes need not divide the output. It costs what one
    convolution costs: one strided convolution per kernel, whose outputs interleave.

    Args:
        x: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
        w: ``(*tile_size, C_out, C_in, *kernel_size)``.
        bias: ``None``, tied ``(C_out,)`` or untied ``(C_out, *out_spatial)``.
        stride, padding, dilation, padding_mode: as in :func:`gridconv.conv`.

    Shape:
        - x: ``(N, C_in, n_1, ..., n_d)``
        - w: ``(t_1, ..., t_d, C_out, C_in, k_1, ..., k_d)``
        - Output: ``(N, C_out, o_1, ..., o_d)``, ``o_i`` as in :func:`gridconv.conv`.

    Example:
        >>> import torch, gridconv as gc
        >>> w = torch.randn(2, 2, 4, 3, 5, 5)  # 2 x 2 tiles of 4 x 3 x 5 x 5 kernels
        >>> gc.tiled_conv(torch.randn(1, 3, 13, 13), w, padding="same").shape
        torch.Size([1, 4, 13, 13])
    """
    x, spec, batched, d = _setup(
        x,
        w,
        bias,
        "w",
        stride=stride,
        padding=padding,
        dilation=dilation,
        padding_mode=padding_mode,
    )
    tile = ntuple("tile_size", tuple(w.shape[:d]), d)
    check_bias(bias, x, w.shape[d], spec.output_size)
    xp = pad(x, spec.pairs, spec.padding_mode)
    conv_nd = _TORCH_CONV[d]
    strides = tuple(s * t for s, t in zip(spec.stride, tile))
    pieces = {}
    for offset in itertools.product(*(range(min(t, o)) for t, o in zip(tile, spec.output_size))):
        start = (..., *(slice(a * s, None) for a, s in zip(offset, spec.stride)))
        pieces[offset] = conv_nd(xp[start], w[offset], None, strides, 0, spec.dilation)
    if len(pieces) == 1:
        out = next(iter(pieces.values()))
    else:
        out = xp.new_empty(x.shape[0], w.shape[d], *spec.output_size)
        for offset, piece in pieces.items():
            out[(..., *(slice(a, None, t) for a, t in zip(offset, tile)))] = piece
    return finish(out, bias, batched)
