"""Tiled convolution (sec. 9.6, after Le et al. 2010): ``prod(tile)`` kernels take turns
over the output.

Each kernel of the tile is one strided convolution, whose outputs interleave. The input is
padded once into a channels-last copy (on CPU) that every kernel's convolution reads in
place, through a shifted view. The backward pass calls each kernel's convolution backward
directly; where the input has few channels, the input gradient of all the kernels is one
stride-1 convolution on the polyphase grid of the input instead (:func:`_polyphase_grad`).
With few input channels and small outputs the whole op is one stride-1 convolution of the
input's polyphase components (:func:`_space_to_depth_conv`): oneDNN's strided kernels run
slowly there.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gridconv import _memo
from gridconv._shapes import Padding, ceil_div, depth_to_space, ntuple, trailing
from gridconv.functional._spec import TORCH_CONV, ConvSpec, check_bias, finish
from gridconv.functional._trace import constant, tracing
from gridconv.functional._unshared import setup_unshared
from gridconv.functional.padding import pad, pad_adjoint

# oneDNN's strided convolutions, forward and backward, run 15-30 % faster channels-last on
# CPU (measured here); tiled_conv uses them there. CUDA keeps torch's default layout.
_CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}


class Phase(NamedTuple):
    """A kernel of the tile that some output uses."""

    kernel: int  # its index in the tile, row-major
    reads: tuple  # the part of the padded input its strided convolution reads
    fills: tuple  # the output cells it fills
    shifted: bool  # whether it may read a shifted view of the whole input (see _shifted)


@constant
@_memo.cached(maxsize=256)
def _phases(spec: ConvSpec, tile: tuple[int, ...]) -> list[Phase]:
    """Every kernel of the tile that some output uses (:class:`Phase`), in the tile's order."""
    phases = []
    for offset in itertools.product(*(range(min(t, o)) for t, o in zip(tile, spec.output_size))):
        reads = (..., *(slice(a * s, None) for a, s in zip(offset, spec.stride)))
        fills = (..., *(slice(a, None, t) for a, t in zip(offset, tile)))
        # a view as long as the whole input: right only where it gives the same output count
        # (one more output would read past the kernel's part of the input)
        counts = zip(offset, tile, spec.output_size, spec.span, spec.input_size, spec.pairs)
        exact = all(
            len(range(a, o, t)) == (n + sum(p) - span) // (s * t) + 1
            for (a, t, o, span, n, p), s in zip(counts, spec.stride)
        )
        phases.append(Phase(int(np.ravel_multi_index(offset, tile)), reads, fills, exact))
    return phases


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
    if spec.padding_mode != "zeros" or not any(map(any, spec.pairs)):
        xs.copy_(pad(x, spec.pairs, spec.padding_mode))
        return xs
    for i, (before, after) in enumerate(spec.pairs):  # zero the borders, copy the inside
        xs.narrow(2 + i, 0, before).zero_()
        xs.narrow(2 + i, shape[2 + i] - after, after).zero_()
    xs[trailing(slice(b, b + n) for (b, _), n in zip(spec.pairs, x.shape[2:]))] = x
    return xs


def _shifted(xs: Tensor, reads: tuple) -> Tensor:
    """``xs[reads]`` as a view of ``xs``'s own shape that starts at the slice's first
    point: dense in ``xs``'s layout, so oneDNN reads it in place instead of copying the slice
    (the view's far end runs into the next row, image or the slack; no output reads it)."""
    start = sum(r.start * st for r, st in zip(reads[1:], xs.stride()[2:]))
    return xs.as_strided(xs.shape, xs.stride(), xs.storage_offset() + start)


@constant
@_memo.cached(maxsize=256)
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
        padded_size=(1, *spec.padded_size),
        span=(1, *spec.span),
        ndim=spec.ndim + 1,
    )


# At most this many input channels, and a tile and stride that cut the input into at least
# 4 phases: the input gradient is one stride-1 convolution on the polyphase grid
# (benchmarks/results/cost-model.md#tiled-polyphase).
POLYPHASE_MAX_CHANNELS = 4
POLYPHASE_MIN_PHASES = 4


def _phase_grid(spec: ConvSpec, tile: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """Per dim, ``S = stride * tile`` (the input's phases) and ``E``, the largest polyphase
    tap offset: ``((tile - 1) * stride + (kernel - 1) * dilation) // S``."""
    S = [s * t for s, t in zip(spec.stride, tile)]
    E = [
        ((t - 1) * s + (k - 1) * dl) // n
        for t, s, k, dl, n in zip(tile, spec.stride, spec.kernel_size, spec.dilation, S)
    ]
    return S, E


def _polyphase_kernel(
    kernels: Tensor, spec: ConvSpec, tile: tuple[int, ...], forward: bool = False
) -> Tensor:
    """The polyphase kernel gathered from the tile's kernels (:func:`_polyphase_index`)."""
    O = kernels.shape[0] // math.prod(tile)
    index = _polyphase_index(spec, tile, O, forward).to(kernels.device)
    return torch.cat([kernels.reshape(-1), kernels.new_zeros(1)])[index]


@constant
@_memo.cached(maxsize=64)
def _polyphase_index(
    spec: ConvSpec, tile: tuple[int, ...], out_channels: int, forward: bool = False
) -> Tensor:
    """Where each weight of the polyphase kernel comes from among the tile's kernels.

    With ``S = stride * tile`` per dim, input cell ``S * m + p`` gets, from output cell ``i``
    of kernel ``a`` (its phase in the tile), tap ``u`` with ``a * stride + u * dilation =
    S * e + p``, at ``i = m - e``. So the input gradient at phase ``p`` of the input is a
    correlation of the kernels' stacked output gradients with a kernel ``V[(c, p), (a, o),
    e] = w_a[o, c, u]`` (zero where no tap fits), flipped. The same kernel unflipped, its
    channel roles swapped (``forward``), is the tiled convolution itself as a stride-1
    convolution of the input's polyphase components (:func:`_space_to_depth_conv`). Indices
    point into the tile's kernels ``(prod(tile) * C_out, C_in, *kernel_size)`` flattened; the
    last one (their count) into a zero appended to them.

    Shape:
        ``(C_in * prod(S), prod(tile) * C_out, *(E + 1))`` (``forward``: the first two
        swapped), ``E = ((tile - 1) * stride + (kernel - 1) * dilation) // S`` per dim.
    """
    d = spec.ndim
    shape = (*tile, out_channels, spec.in_channels, *spec.kernel_size)
    ids = np.arange(math.prod(shape)).reshape(shape)
    ids = np.pad(ids, [(0, 0)] * (d + 2) + [(0, 1)] * d, constant_values=ids.size)
    phases, taps = [], []  # per dim: index arrays over (p_1.., a_1.., e_1..), 3 d dims
    grid = zip(tile, spec.stride, spec.kernel_size, spec.dilation, *_phase_grid(spec, tile))
    for i, (t, s, k, dl, S, E) in enumerate(grid):
        U = np.full((S, t, E + 1), k)  # k: the zero tap
        for a, u in itertools.product(range(t), range(k)):
            e, p = divmod(a * s + u * dl, S)
            U[p, a, e] = u
        at = [1] * (3 * d)
        at[i], at[d + i], at[2 * d + i] = U.shape
        taps.append(U.reshape(at))
        at = [1] * (3 * d)
        at[d + i] = t
        phases.append(np.arange(t).reshape(at))
    V = ids[tuple[Any, ...]((*phases, slice(None), slice(None), *taps))]  # (p.., a.., e.., O, C)
    V = V.transpose(3 * d + 1, *range(2 * d), 3 * d, *range(2 * d, 3 * d))
    V = V.reshape(-1, math.prod(tile) * out_channels, *V.shape[-d:])
    if forward:
        return torch.from_numpy(V.swapaxes(0, 1).copy())
    return torch.from_numpy(np.flip(V, tuple(range(2, 2 + d))).copy())


def _polyphase_grad(
    grads: list[Tensor],
    phases: list[Phase],
    kernels: Tensor,
    spec: ConvSpec,
    tile: tuple[int, ...],
    padded: Sequence[int],
    layout: torch.memory_format,
) -> Tensor:
    """The gradient of the padded input from every kernel's output gradient, as one stride-1
    convolution on the polyphase grid of the input (see :func:`_polyphase_index`).

    Shape:
        ``grads[j]``: ``(N, C_out, *h_j)``, one per phase -> ``(N, C_in, *padded)``
    """
    d = spec.ndim
    O = kernels.shape[0] // math.prod(tile)
    V = _polyphase_kernel(kernels, spec, tile).contiguous(memory_format=layout)
    S, E = _phase_grid(spec, tile)
    Q = [ceil_div(n, s) for n, s in zip(padded, S)]  # the polyphase grid
    N = grads[0].shape[0]
    size = (N, kernels.shape[0], *(q + e for q, e in zip(Q, E)))
    stacked = torch.empty(size, dtype=kernels.dtype, device=kernels.device, memory_format=layout)
    stacked.zero_()  # the borders, and the kernels no output uses
    for phase, g in zip(phases, grads):
        k = phase.kernel
        inner = (slice(e, e + h) for e, h in zip(E, g.shape[2:]))
        where = (slice(None), slice(k * O, (k + 1) * O), *inner)
        stacked[where] = g
    y = TORCH_CONV[d](stacked, V)  # (N, C_in * prod(S), *Q)
    y = depth_to_space(y.reshape(N, -1, *S, *Q), 1, 2 + d, 2, d)  # (N, C_in, *(Q * S))
    return y[trailing(slice(0, n) for n in padded)]


# At most this many input channels, a polyphase kernel at most this many times the tile's
# kernels in taps, and in 2-D and 3-D at most this many outputs per kernel of the tile: the
# whole tiled convolution is one stride-1 convolution of the input's polyphase components
# (benchmarks/results/cost-model.md#tiled-space-to-depth).
SPACE_TO_DEPTH_MAX_CHANNELS = 4
SPACE_TO_DEPTH_MAX_TAPS = 1.5
SPACE_TO_DEPTH_MAX_OUTPUTS = 576


@constant
def _space_to_depth_pays(spec: ConvSpec, tile: tuple[int, ...]) -> bool:
    """Whether :func:`_space_to_depth_conv` is the faster way (measured above, CPU)."""
    S, E = _phase_grid(spec, tile)
    taps = math.prod(n * (e + 1) for n, e in zip(S, E)) / math.prod(spec.kernel_size)
    per_kernel = math.prod(spec.output_size) / math.prod(tile)
    return (
        spec.in_channels <= SPACE_TO_DEPTH_MAX_CHANNELS
        and math.prod(S) > 1
        and taps <= SPACE_TO_DEPTH_MAX_TAPS
        and (spec.ndim == 1 or per_kernel <= SPACE_TO_DEPTH_MAX_OUTPUTS)
    )


def _space_to_depth_conv(
    x: Tensor, kernels: Tensor, spec: ConvSpec, tile: tuple[int, ...]
) -> Tensor:
    """The tiled convolution as one stride-1 convolution: output ``t * i + a`` of kernel
    ``a`` reads input ``S * (i + e) + p`` through tap ``u`` (``a * stride + u * dilation = S
    * e + p``, as in :func:`_polyphase_index`), so stacking the input's ``S`` phases as
    channels and the tile's kernels as output channels makes it one convolution with the
    kernel ``V[(a, o), (c, p), e] = w_a[o, c, u]``; the outputs then interleave (depth to
    space). Made of differentiable ops: autograd gives both gradients, and their gradients.

    Shape:
        ``(N, C_in, *n) -> (N, C_out, *o)``; ``kernels``: ``(prod(tile) * C_out, C_in, *k)``
    """
    d = spec.ndim
    N, C = x.shape[:2]
    O = kernels.shape[0] // math.prod(tile)
    V = _polyphase_kernel(kernels, spec, tile, forward=True)
    S, E = _phase_grid(spec, tile)
    padded = [n + sum(p) for n, p in zip(x.shape[2:], spec.pairs)]
    # whole phases, and room for the last output of every kernel of the tile
    Q = [
        max(ceil_div(n, s), ceil_div(o, t) + e)
        for n, s, o, t, e in zip(padded, S, spec.output_size, tile, E)
    ]
    xp = pad(x, spec.pairs, spec.padding_mode)
    xp = F.pad(
        xp,
        [v for n, s, q in zip(reversed(padded), reversed(S), reversed(Q)) for v in (0, q * s - n)],
    )
    xs = xp.reshape(N, C, *(v for q, s in zip(Q, S) for v in (q, s)))
    xs = xs.permute(0, 1, *range(3, 2 + 2 * d, 2), *range(2, 2 + 2 * d, 2))
    xs = xs.reshape(N, C * math.prod(S), *Q)  # (N, (C, p_1.., p_d), q_1.., q_d)
    layout = _CHANNELS_LAST.get(d, torch.contiguous_format)
    y = TORCH_CONV[d](xs.contiguous(memory_format=layout), V.contiguous(memory_format=layout))
    R = y.shape[2:]  # (N, (a_1.., a_d, o), r_1.., r_d) -> (N, o, r_1 a_1, ..., r_d a_d)
    y = depth_to_space(y.reshape(N, *tile, O, *R), d + 1, d + 2, 1, d)
    return y[trailing(slice(0, o) for o in spec.output_size)]


class _GradientLayout(torch.autograd.Function):
    """The identity, whose backward pass hands the gradient on in ``layout``: a
    channels-last input gets a channels-last gradient, as from torch's convolutions."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, layout: torch.memory_format) -> Tensor:
        ctx.layout = layout
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return grad.contiguous(memory_format=ctx.layout), None


def _traced(x: Tensor, kernels: Tensor, spec: ConvSpec, tile: tuple[int, ...]) -> Tensor:
    """The tiled convolution in plain differentiable ops, for traced programs: one strided
    convolution per kernel of the tile on slices of the padded input, outputs interleaved
    (no views past a tensor's end, no custom backward: the compiler derives it)."""
    O = kernels.shape[0] // math.prod(tile)
    strides = tuple(s * t for s, t in zip(spec.stride, tile))
    xp = pad(x, spec.pairs, spec.padding_mode)
    out = x.new_zeros(x.shape[0], O, *spec.output_size)
    for phase in _phases(spec, tile):
        k = phase.kernel
        out[phase.fills] = TORCH_CONV[spec.ndim](
            xp[phase.reads], kernels[k * O : (k + 1) * O], None, strides, 0, spec.dilation
        )
    return out


class _TiledConv(torch.autograd.Function):
    """One strided convolution per kernel of the tile; the outputs interleave.

    The input is padded into one copy in the inner layout, with a little slack after its
    end, so that each kernel's convolution reads a shifted view of it in place (oneDNN would
    copy a slice, forward and backward). The backward pass calls each phase's convolution
    backward directly and adds the input gradients into one buffer, instead of letting
    autograd build a zero-padded gradient per slice and add them up; with few input
    channels the input gradient is :func:`_polyphase_grad` instead. Under ``create_graph``
    it reads slices of a differentiable ``pad(x)`` and uses the kernels' own backward
    passes, so double backward works. ``kernels`` are the tile's kernels stacked along
    ``C_out``.
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
            phases = [phase._replace(shifted=False) for phase in phases]
        xs = _padded_copy(x, spec, layout, phases[-1].reads)  # the last phase starts farthest
        sources = [_shifted(xs, p.reads) if p.shifted else xs[p.reads] for p in phases]
        ctx.save_for_backward(x, kernels)
        ctx.sources, ctx.phases = sources, phases
        ctx.spec, ctx.tile, ctx.layout, ctx.caller = spec, tile, layout, caller
        ctx.polyphase = (
            x.device.type == "cpu"
            and spec.in_channels <= POLYPHASE_MAX_CHANNELS
            and math.prod(s * t for s, t in zip(spec.stride, tile)) >= POLYPHASE_MIN_PHASES
        )
        O = kernels.shape[0] // math.prod(tile)
        strides = tuple(s * t for s, t in zip(spec.stride, tile))
        shape = (x.shape[0], O, *spec.output_size)
        out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=caller)
        per_kernel = [kernels[k : k + O] for k in range(0, len(kernels), O)]  # (split: 17 us)
        for phase, source in zip(phases, sources):
            out[phase.fills] = TORCH_CONV[spec.ndim](
                source, per_kernel[phase.kernel], None, strides, 0, spec.dilation
            )
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, kernels = ctx.saved_tensors
        spec, tile, d, phases = ctx.spec, ctx.tile, ctx.spec.ndim, ctx.phases
        want_x, want_w = ctx.needs_input_grad[:2]
        O = kernels.shape[0] // math.prod(tile)
        strides = [s * t for s, t in zip(spec.stride, tile)]
        sources, shifted = ctx.sources, [phase.shifted for phase in phases]
        if torch.is_grad_enabled():  # create_graph: slices of pad(x), differentiable in x
            xp = pad(x, spec.pairs, spec.padding_mode)
            sources, shifted = [xp[phase.reads] for phase in phases], [False] * len(phases)
        per_kernel = [kernels[k : k + O] for k in range(0, len(kernels), O)]
        polyphase = want_x and ctx.polyphase and not torch.is_grad_enabled()
        grads = []  # kept for the polyphase input gradient only
        grad_xp: Any = None  # a tensor once the first phase's gradient comes
        grad_k: Any = torch.zeros_like(kernels) if want_w else None
        for phase, source, shifts in zip(phases, sources, shifted):
            k, reads, fills = phase.kernel, phase.reads, phase.fills
            g = grad[fills].contiguous(memory_format=ctx.layout)  # one copy, not two
            if polyphase:
                grads.append(g)
            dx = want_x and not polyphase
            if not (dx or want_w):
                continue
            gx, gk, _ = torch.ops.aten.convolution_backward(
                g,
                source,
                per_kernel[k],
                None,
                strides,
                [0] * d,
                list(spec.dilation),
                False,
                [0] * d,
                1,
                [dx, want_w, False],
            )
            if dx and shifts:  # the gradient of the whole shifted view: crop it
                n = source.shape[2:]
                gx = gx[trailing(slice(0, m - r.start) for r, m in zip(reads[1:], n))]
            if dx and grad_xp is None:  # the first phase starts at 0: it covers all of xs
                grad_xp = gx
            elif dx:
                grad_xp[reads].add_(gx)  # (`+=` would copy the sum onto itself once more)
            if want_w:
                grad_k[k * O : (k + 1) * O] = gk
        if polyphase:
            padded = sources[0].shape[2:]
            grad_xp = _polyphase_grad(grads, phases, kernels, spec, tile, padded, ctx.layout)
        grad_x = None
        if want_x:  # in the caller's layout, not the one used inside
            grad_x = pad_adjoint(grad_xp, spec.pairs, spec.padding_mode)
            grad_x = grad_x.contiguous(memory_format=ctx.caller)
        grad_k = None if grad_k is None else grad_k.contiguous()
        return grad_x, grad_k, None, None, None, None


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
    is :func:`gridconv.local_conv`. Tile sizes need not divide the output. It does the
    multiply-adds of one convolution, as one strided convolution per kernel whose outputs
    interleave (or, with at most 4 input channels and small outputs, as one stride-1
    convolution of the input's polyphase components); forward + backward it takes 1.2-1.45x
    a convolution's time on CPU with 2 x 2 tiles, 1.5x in 1-D and 1.8x in 3-D, where
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
    x, spec, batched, d = setup_unshared(x, w, bias, "w", stride, padding, dilation, padding_mode)
    tile = ntuple("tile_size", tuple(w.shape[:d]), d)
    check_bias(bias, x, w.shape[d], spec.output_size)
    kernels = w.reshape(-1, *w.shape[d + 1 :])  # (prod(tile) * C_out, C_in, *kernel_size)
    if tracing():
        return finish(_traced(x, kernels, spec, tile), bias, batched)
    on_cpu = x.device.type == "cpu"
    # The output (and the input's gradient) come in the caller's layout, as torch's own
    # convolutions do: channels-last inputs get channels-last outputs, and skip two copies.
    caller = torch.contiguous_format
    if on_cpu and d > 1 and x.is_contiguous(memory_format=_CHANNELS_LAST[d]):
        caller = torch.contiguous_format if x.is_contiguous() else _CHANNELS_LAST[d]
    if on_cpu and _space_to_depth_pays(spec, tile):  # measured on oneDNN only
        if caller != torch.contiguous_format:
            x = _GradientLayout.apply(x, caller)
        out = _space_to_depth_conv(x, kernels, spec, tile).contiguous(memory_format=caller)
        return finish(out, bias, batched)
    if not on_cpu:
        layout = torch.contiguous_format
    elif d == 1:  # as a 2-D one of height 1, to run channels-last
        x, kernels, spec, tile = x.unsqueeze(2), kernels.unsqueeze(2), _as_2d(spec), (1, *tile)
        layout = torch.channels_last
    else:
        layout = _CHANNELS_LAST[d]
    kernels = kernels.contiguous(memory_format=layout)
    out = _TiledConv.apply(x, kernels, spec, tile, layout, caller)
    return finish(out.squeeze(2) if d < spec.ndim else out, bias, batched)
