"""Unshared convolution (sec. 9.6): locally connected and tiled layers.

``local_conv`` gives every output location its own kernel; the patches it reads are
gathered a slab of output rows at a time (never the whole im2col matrix), multiplied by
that slab's kernels in one batched matmul, and gathered again in the backward pass instead
of being kept. ``tiled_conv`` cycles ``prod(tile)`` kernels over the output (Le et al.
2010): one strided convolution per kernel, whose outputs interleave.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from gridconv._checks import check_same_kind, check_tensor
from gridconv._shapes import Padding, ntuple
from gridconv.functional._spec import ConvSpec, check_bias, check_input, conv_spec, finish
from gridconv.functional.padding import pad, pad_adjoint

_TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
# oneDNN's strided convolutions, forward and backward, run 15-30 % faster channels-last on
# CPU (measured here); tiled_conv uses them there. CUDA keeps torch's default layout.
_CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}
CHUNK_BYTES = 4 * 2**20  # the gathered patches of one slab stay under this (measured: 1-2 MiB
# cost 10-15 % more Python and add calls, 8-16 MiB gain nothing)


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
    spans = _spans(spec)
    for i in range(d):
        slab = slab.unfold(1 + i, spans[i], spec.stride[i])  # (C, *out, N, *span)
    if any(dl > 1 for dl in spec.dilation):
        slab = slab[(..., *(slice(None, None, dl) for dl in spec.dilation))]
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
        grad_w = torch.empty_like(weights) if want_w else None
        C, *padded, _ = xt.shape  # the input gradient accumulates in (*padded, C, N): _fold
        grad_xt = x.new_zeros(*padded, C, N) if want_x else None
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


@functools.lru_cache(maxsize=256)
def _phases(spec: ConvSpec, tile: tuple[int, ...]) -> list[tuple[int, tuple, tuple, bool]]:
    """Every kernel of the tile that some output uses: its index in the tile, the part of
    the padded input its strided convolution reads, the output cells it fills, and whether
    that convolution may read a shifted view of the whole input (:func:`_shifted`)."""
    phases = []
    for offset in itertools.product(*(range(min(t, o)) for t, o in zip(tile, spec.output_size))):
        reads = (..., *(slice(a * s, None) for a, s in zip(offset, spec.stride)))
        fills = (..., *(slice(a, None, t) for a, t in zip(offset, tile)))
        # a view as long as the whole input: right only where it gives the same output count
        # (one more output would read past the kernel's part of the input)
        counts = zip(offset, tile, spec.output_size, _spans(spec), spec.input_size, spec.pairs)
        exact = all(
            len(range(a, o, t)) == (n + sum(p) - span) // (s * t) + 1
            for (a, t, o, span, n, p), s in zip(counts, spec.stride)
        )
        phases.append((int(np.ravel_multi_index(offset, tile)), reads, fills, exact))
    return phases


def _spans(spec: ConvSpec) -> list[int]:
    """The extent of a (dilated) kernel per dim."""
    return [dl * (k - 1) + 1 for k, dl in zip(spec.kernel_size, spec.dilation)]


def _padded_copy(x: Tensor, spec: ConvSpec, layout: torch.memory_format, reads: tuple) -> Tensor:
    """The padded input, copied once in ``layout``, its storage running on in zeros as far
    past its end as ``reads`` starts past its beginning: room for :func:`_shifted` views.

    Shape:
        ``(N, C, *n) -> (N, C, *padded)``
    """
    shape = (*x.shape[:2], *(n + sum(p) for n, p in zip(x.shape[2:], spec.pairs)))
    strides = torch.empty(shape, device="meta", memory_format=layout).stride()
    numel = math.prod(shape)
    slack = sum(r.start * st for r, st in zip(reads[1:], strides[2:]))
    buffer = x.new_empty(numel + slack)
    buffer[numel:].zero_()
    xs = buffer.as_strided(shape, strides)
    if spec.padding_mode != "zeros":
        xs.copy_(pad(x, spec.pairs, spec.padding_mode))
        return xs
    for i, (before, after) in enumerate(spec.pairs):  # zero the borders, copy the inside
        xs.narrow(2 + i, 0, before).zero_()
        xs.narrow(2 + i, shape[2 + i] - after, after).zero_()
    xs[(..., *(slice(b, b + n) for (b, _), n in zip(spec.pairs, x.shape[2:])))] = x
    return xs


def _shifted(xs: Tensor, reads: tuple) -> Tensor:
    """``xs[reads]`` as a view of ``xs``'s own shape that starts at the slice's first
    point: dense in ``xs``'s layout, so oneDNN reads it in place instead of copying the slice
    (the view's far end runs into the next row, image or the slack; no output reads it)."""
    start = sum(r.start * st for r, st in zip(reads[1:], xs.stride()[2:]))
    return xs.as_strided(xs.shape, xs.stride(), xs.storage_offset() + start)


def _as_2d(spec: ConvSpec) -> ConvSpec:
    """A 1-D convolution as a 2-D one over an input of height 1."""
    return dataclasses.replace(
        spec,
        input_size=(1, *spec.input_size),
        kernel_size=(1, *spec.kernel_size),
        stride=(1, *spec.stride),
        dilation=(1, *spec.dilation),
        pairs=((0, 0), *spec.pairs),
        output_size=(1, *spec.output_size),
    )


class _TiledConv(torch.autograd.Function):
    """One strided convolution per kernel of the tile; the outputs interleave.

    The input is padded into one copy in the inner layout, with a little slack after its
    end, so that each kernel's convolution reads a shifted view of it in place (oneDNN would
    copy a slice, forward and backward). The backward pass calls each phase's convolution
    backward directly and adds the input gradients into one buffer, instead of letting
    autograd build a zero-padded gradient per slice and add them up. Under ``create_graph``
    it reads slices of a differentiable ``pad(x)`` instead, so double backward works.
    ``kernels`` are the tile's kernels stacked along ``C_out``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        kernels: Tensor,
        spec: ConvSpec,
        tile: tuple[int, ...],
        layout: torch.memory_format,
        caller: torch.memory_format,
    ) -> Tensor:
        phases = _phases(spec, tile)
        if x.device.type != "cpu":  # measured on oneDNN only: CUDA reads slices
            phases = [(k, reads, fills, False) for k, reads, fills, _ in phases]
        xs = _padded_copy(x, spec, layout, phases[-1][1])  # the last phase starts farthest
        ctx.save_for_backward(x, kernels)
        ctx.xs, ctx.phases = xs, phases
        ctx.spec, ctx.tile, ctx.layout, ctx.caller = spec, tile, layout, caller
        O = kernels.shape[0] // math.prod(tile)
        strides = tuple(s * t for s, t in zip(spec.stride, tile))
        shape = (x.shape[0], O, *spec.output_size)
        out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=caller)
        for k, reads, fills, shifts in phases:
            out[fills] = _TORCH_CONV[spec.ndim](
                _shifted(xs, reads) if shifts else xs[reads],
                kernels[k * O : (k + 1) * O],
                None,
                strides,
                0,
                spec.dilation,
            )
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, kernels = ctx.saved_tensors
        spec, tile, d = ctx.spec, ctx.tile, ctx.spec.ndim
        want_x, want_w = ctx.needs_input_grad[:2]
        O = kernels.shape[0] // math.prod(tile)
        strides = [s * t for s, t in zip(spec.stride, tile)]
        in_place = not torch.is_grad_enabled()  # else slices of pad(x), differentiable in x
        xs = ctx.xs if in_place else pad(x, spec.pairs, spec.padding_mode)
        grad_xp = None
        grad_k = torch.zeros_like(kernels) if want_w else None
        for k, reads, fills, shifts in ctx.phases:
            shifts = shifts and in_place
            gx, gk, _ = torch.ops.aten.convolution_backward(
                grad[fills].contiguous(memory_format=ctx.layout),  # one copy, not two
                _shifted(xs, reads) if shifts else xs[reads],
                kernels[k * O : (k + 1) * O],
                None,
                strides,
                [0] * d,
                list(spec.dilation),
                False,
                [0] * d,
                1,
                [want_x, want_w, False],
            )
            if want_x and shifts:  # the gradient of the whole shifted view: crop it
                gx = gx[(..., *(slice(0, n - r.start) for r, n in zip(reads[1:], xs.shape[2:])))]
            if want_x and grad_xp is None:  # the first phase starts at 0: it covers all of xs
                grad_xp = gx
            elif want_x:
                grad_xp[reads].add_(gx)  # (`+=` would copy the sum onto itself once more)
            if want_w:
                grad_k[k * O : (k + 1) * O] = gk
        grad_x = None
        if want_x:  # in the caller's layout, not the one used inside
            grad_x = pad_adjoint(grad_xp, spec.pairs, spec.padding_mode)
            grad_x = grad_x.contiguous(memory_format=ctx.caller)
        grad_k = None if grad_k is None else grad_k.contiguous()
        return grad_x, grad_k, None, None, None, None


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
    is :func:`local_conv`. Tile sizes need not divide the output. It does the
    multiply-adds of one convolution, as one strided convolution per kernel whose outputs
    interleave; forward + backward it takes 1.5-2x a convolution's time on CPU, where
    strided convolutions run less efficiently (``gridconv bench --suite local``).

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
    kernels = w.reshape(-1, *w.shape[d + 1 :])  # (prod(tile) * C_out, C_in, *kernel_size)
    on_cpu = x.device.type == "cpu"
    if d == 1 and on_cpu:  # as a 2-D one of height 1, to run channels-last
        x, kernels, spec, tile = x.unsqueeze(2), kernels.unsqueeze(2), _as_2d(spec), (1, *tile)
    layout = _CHANNELS_LAST.get(spec.ndim, torch.contiguous_format)
    if not on_cpu:
        layout = torch.contiguous_format
    # The output (and the input's gradient) come in the caller's layout, as torch's own
    # convolutions do: channels-last inputs get channels-last outputs, and skip two copies.
    caller = torch.contiguous_format
    if (
        d > 1
        and layout != caller
        and x.is_contiguous(memory_format=layout)
        and not x.is_contiguous()
    ):
        caller = layout
    kernels = kernels.contiguous(memory_format=layout)
    out = _TiledConv.apply(x, kernels, spec, tile, layout, caller)
    return finish(out.squeeze(2) if d < spec.ndim else out, bias, batched)
