"""The FFT method as it runs (Goodfellow et al. 2016, sec. 9.8): forward and backward as
``torch.autograd.Function`` s of their own (:class:`FFTConv`, and :class:`CompiledFFTConv` for
the compiled 1-D path), the kernel's spectrum kept with a layer's cache or, when small, with
the kernel tensor, and, for traced programs, the method as torch custom ops. The transforms
themselves are :mod:`.fft`'s (looked up there at each call, so that they can be swapped in
tests), the backward's spectra :mod:`.fft_grad`'s.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gridconv.functional._spec import ConvSpec, conv_spec
from gridconv.functional._trace import exporting, tracing
from gridconv.functional.methods import compiled as overlap_save
from gridconv.functional.methods import compiled_op, fft
from gridconv.functional.methods.base import (
    KernelCache,
    Method,
    cached,
    register_conv_autograd,
    small,
    wants_grad,
)
from gridconv.functional.methods.compiled import CompiledKernel
from gridconv.functional.methods.fft_grad import gradient_spectra, input_gradient, kernel_gradient
from gridconv.functional.padding import pad_adjoint


def _gradients(
    g: Tensor,
    kernel: fft.FFTKernel,
    xs: Tensor | None,
    spec: ConvSpec,
    tiles: list[int],
    N: int,
    want_x: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """The input gradient (if ``want_x``) and the kernel gradient (if ``xs``, the input's
    spectra in the mixing's layout, is given), in the compute dtype (see :mod:`.fft_grad`)."""
    depthwise = kernel.spectrum.ndim == 3
    g = g.to(fft.compute_dtype(g.dtype))
    g_hat = gradient_spectra(g, spec, kernel.blocks, kernel.lengths, tiles, depthwise, spec.groups)
    gx = gw = None
    shifts = kernel.shifts or (None,) * spec.ndim
    if want_x:
        gx = input_gradient(
            g_hat, kernel.spectrum, spec, kernel.blocks, kernel.lengths, tiles, N, shifts
        )
    if xs is not None:
        gw = kernel_gradient(
            g_hat, xs, spec, kernel.lengths, kernel.out_channels, depthwise, shifts
        )
    return gx, gw


def _double_backward(
    x: Tensor, w: Tensor, g: Tensor, spec: ConvSpec, want_x: bool, want_w: bool
) -> tuple[Tensor | None, Tensor | None]:
    """The gradients from ``x`` and ``w`` by differentiable ops, for autograd to go through."""
    kernel = fft.prepare_fft(w, spec)
    xs = fft.input_spectra(x, kernel, spec)[0] if want_w else None
    gx, gw = _gradients(g, kernel, xs, spec, fft.tiles_per_dim(kernel, spec), x.shape[0], want_x)
    return _cast(gx, x), _cast(gw, w)


def _cast(t: Tensor | None, like: Tensor) -> Tensor | None:
    return None if t is None else t.to(like.dtype)


class FFTConv(torch.autograd.Function):
    """The FFT method with its own backward pass (see :mod:`.fft_grad`): the input gradient
    from the kernel spectrum this forward used, the kernel gradient from the input spectra
    it kept (only when the kernel wants a gradient). A double backward recomputes both from
    ``x`` and ``w`` and goes through autograd."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, spec: ConvSpec, kernel: fft.FFTKernel) -> Tensor:
        xs, tiles = fft.input_spectra(x, kernel, spec)
        y = fft.assemble(fft.mix(xs, kernel), kernel, spec, x.shape[0], tiles).to(x.dtype)
        ctx.save_for_backward(x, w, xs if ctx.needs_input_grad[1] else None)
        ctx.spec, ctx.kernel, ctx.tiles = spec, kernel, tiles
        return y

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, w, xs = ctx.saved_tensors
        want_x, want_w = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            return (*_double_backward(x, w, g, ctx.spec, want_x, want_w), None, None)
        gx, gw = _gradients(g, ctx.kernel, xs, ctx.spec, ctx.tiles, x.shape[0], want_x)
        return _cast(gx, x), _cast(gw, w), None, None


class CompiledFFTConv(torch.autograd.Function):
    """The compiled 1-D path, trained: the forward and both gradients by the compiled kernel
    (see :func:`.compiled.backward`), but where its sums per channel pair and frequency
    would take too much memory: there the kernel gradient is torch's FFTs', as
    :class:`FFTConv` computes it."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, spec: ConvSpec, kernel: CompiledKernel) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.spec, ctx.kernel = spec, kernel
        return overlap_save.apply(x, kernel, spec)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, w = ctx.saved_tensors
        spec = ctx.spec
        want_x, want_w = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            return (*_double_backward(x, w, g, spec, want_x, want_w), None, None)
        want = (want_x, want_w and overlap_save.kernel_gradient_fits(ctx.kernel, spec))
        gx = gw = None
        if any(want):
            gxp, gw = overlap_save.backward(x.detach(), g, ctx.kernel, spec, want)
            gx = None if gxp is None else pad_adjoint(gxp, spec.pairs, spec.padding_mode)
            gx, gw = _cast(gx, x), _cast(gw, w)
        if want_w and not want[1]:
            kernel = fft.prepare_fft(w.detach(), spec)
            xs, tiles = fft.input_spectra(x.detach(), kernel, spec)
            gw = _cast(_gradients(g, kernel, xs, spec, tiles, x.shape[0], False)[1], w)
        return gx, gw, None, None


def run(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None = None) -> Tensor:
    """The FFT method: the kernel's spectrum from ``cache``, from the small cache kept with
    ``w`` (the last input size's, when small), or transformed afresh."""
    on_compiled = overlap_save.applies(x, w, spec)
    if tracing():  # nothing cached; the compiled kernel as one opaque op
        return _traced(x, w, spec, on_compiled)
    if cache is not None or not fft.spectrum_kept(x, w, spec, None):
        key = ("fft", spec, on_compiled)
        if wants_grad(w):  # transformed without a graph: FFTConv gives w its gradient
            with torch.no_grad():
                kernel = fft.prepare_fft(w, spec, on_compiled)
        else:
            kernel = cached(cache, w, key, lambda: fft.prepare_fft(w, spec, on_compiled))
    else:
        last = small(None, w).get(w, "fft", lambda: [None, None])  # [(spec, compiled), kernel]
        if last[0] != (spec, on_compiled):
            last[:] = (spec, on_compiled), fft.prepare_fft(w, spec, on_compiled)
        kernel = last[1]
    if not wants_grad(x, w):
        return fft.apply_fft(x, kernel, spec)
    if isinstance(kernel, CompiledKernel):
        return CompiledFFTConv.apply(x, w, spec, kernel)
    return FFTConv.apply(x, w, spec, kernel)


def _traced(x: Tensor, w: Tensor, spec: ConvSpec, on_compiled: bool) -> Tensor:
    """The FFT method while tracing: nothing cached. For ``torch.export``, torch's FFT ops;
    for ``torch.compile``, the compiled 1-D kernel as one custom op (where its kernel
    gradient fits, if wanted), else torch's FFTs as one custom op (:func:`fft_conv_op`)."""
    if exporting():  # a program of standard ops, for other runtimes
        kernel = fft.prepare_fft(w, spec)
        if wants_grad(x, w):
            return FFTConv.apply(x, w, spec, kernel)
        return fft.apply_fft(x, kernel, spec)
    if on_compiled and compiled_op.traceable(x, w, spec):
        return compiled_op.fft_conv1d_op(x, w, spec)
    pairs = [v for pair in spec.pairs for v in pair]
    return fft_conv_op(x, w, pairs, list(spec.stride), list(spec.dilation), spec.groups,
                       spec.padding_mode)  # fmt: skip


# --- the FFT method as torch custom ops, for traced programs --------------------------------
# inductor re-generates the FFT path's permutes, pads and slices as kernels of its own that
# run slower here than ATen's copies (a compiled training step of 9 x 9 and 11 x 11 layers
# took 1.2-1.4x the eager step); as one opaque op each way, it runs the eager code.
def _op_spec(
    x: Tensor, w: Tensor, pairs: list[int], stride: list[int], dilation: list[int], groups: int,
    padding_mode: str,
) -> ConvSpec:  # fmt: skip
    return conv_spec(
        w,
        x.shape[1],
        x.shape[2:],
        stride=tuple(stride),
        padding=[tuple(pairs[i : i + 2]) for i in range(0, len(pairs), 2)],
        dilation=tuple(dilation),
        groups=groups,
        padding_mode=padding_mode,
    )


@torch.library.custom_op("gridconv::fft_conv", mutates_args=())
def fft_conv_op(
    x: Tensor, w: Tensor, pairs: list[int], stride: list[int], dilation: list[int], groups: int,
    padding_mode: str,
) -> Tensor:  # fmt: skip
    """The FFT method's correlation of a batched ``x`` (padding as flat ``(before, after)``
    pairs, one per dim).

    Shape:
        ``(N, C_in, *n), (C_out, C_in / groups, *k) -> (N, C_out, *o)``.
    """
    spec = _op_spec(x, w, pairs, stride, dilation, groups, padding_mode)
    return fft.apply_fft(x, fft.prepare_fft(w.detach(), spec), spec).contiguous()


@fft_conv_op.register_fake
def _fft_conv_fake(
    x: Tensor, w: Tensor, pairs: list[int], stride: list[int], dilation: list[int], groups: int,
    padding_mode: str,
) -> Tensor:  # fmt: skip
    out = [  # by arithmetic alone: sizes may be symbolic here
        (n + pairs[2 * i] + pairs[2 * i + 1] - dl * (k - 1) - 1) // s + 1
        for i, (n, k, s, dl) in enumerate(zip(x.shape[2:], w.shape[2:], stride, dilation))
    ]
    return x.new_empty(x.shape[0], w.shape[0], *out)


@torch.library.custom_op("gridconv::fft_conv_backward", mutates_args=())
def fft_conv_backward_op(
    g: Tensor, x: Tensor, w: Tensor, pairs: list[int], stride: list[int], dilation: list[int],
    groups: int, padding_mode: str, want_x: bool, want_w: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The gradients of :func:`fft_conv_op`'s ``x`` and ``w`` (empty where not wanted).

    Shape:
        ``(N, C_out, *o), x, w -> x's shape, w's shape`` (or ``(0,)`` each).
    """
    spec = _op_spec(x, w, pairs, stride, dilation, groups, padding_mode)
    gx, gw = _double_backward(x, w, g.contiguous(), spec, want_x, want_w)
    gx = x.new_empty(0) if gx is None else gx.contiguous()
    return gx, w.new_empty(0) if gw is None else gw.contiguous()


@fft_conv_backward_op.register_fake
def _fft_conv_backward_fake(
    g: Tensor, x: Tensor, w: Tensor, pairs: list[int], stride: list[int], dilation: list[int],
    groups: int, padding_mode: str, want_x: bool, want_w: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    return x.new_empty(x.shape if want_x else (0,)), w.new_empty(w.shape if want_w else (0,))


register_conv_autograd(
    fft_conv_op,
    fft_conv_backward_op,
    lambda x, w, g, params, want_x, want_w: _double_backward(
        x, w, g, _op_spec(x, w, *params), want_x, want_w
    ),
)


METHOD = Method(name="fft", run=run, seconds=fft.seconds, order=1, memory=fft.memory)
