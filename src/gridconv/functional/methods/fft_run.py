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
from torch.utils._python_dispatch import _disable_current_modes

from gridconv.functional._spec import ConvSpec, conv_spec
from gridconv.functional._trace import exporting, tracing
from gridconv.functional.methods import compiled as overlap_save
from gridconv.functional.methods import compiled_op, fft
from gridconv.functional.methods.base import (
    KernelCache,
    Method,
    cached,
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
    keep_kernel, keep_input = wants_grad(x, w), wants_grad(w)
    y, _, _ = fft_conv_op(x, w, pairs, list(spec.stride), list(spec.dilation), spec.groups,
                          spec.padding_mode, keep_kernel, keep_input)  # fmt: skip
    return y


# --- the FFT method as torch custom ops, for traced programs --------------------------------
# inductor re-generates the FFT path's permutes, pads and slices as kernels of its own that
# run slower here than ATen's copies (a compiled training step of 9 x 9 and 11 x 11 layers
# took 1.2-1.4x the eager step); as one opaque op each way, it runs the eager code. As in
# eager mode (FFTConv), the forward op hands the backward the spectra it made: the kernel's
# and, where the kernel wants a gradient, the input's (outputs of its own that autograd
# saves; transformed again, they cost a tenth of a training step of 9 x 9 and 11 x 11 layers).
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


def _fft_conv(
    x: Tensor, w: Tensor, pairs: list[int], stride: list[int], dilation: list[int], groups: int,
    padding_mode: str, keep_kernel: bool, keep_input: bool,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """The FFT method's correlation of a batched ``x`` (padding as flat ``(before, after)``
    pairs, one per dim), with the kernel's spectrum if ``keep_kernel`` and the input's
    spectra if ``keep_input`` (for :func:`_fft_conv_backward`; empty when not kept).

    Shape:
        ``(N, C_in, *n), (C_out, C_in / groups, *k) -> (N, C_out, *o)``, the spectra as
        :func:`.fft.prepare_fft` and :func:`.fft.input_spectra` make them.
    """
    spec = _op_spec(x, w, pairs, stride, dilation, groups, padding_mode)
    kernel = fft.prepare_fft(w.detach(), spec)
    xs, tiles = fft.input_spectra(x.detach(), kernel, spec)
    y = fft.assemble(fft.mix(xs, kernel), kernel, spec, x.shape[0], tiles).to(x.dtype)
    empty = kernel.spectrum.new_empty(0)
    spectrum = kernel.spectrum if keep_kernel else empty  # all made here: none aliases an input
    return y, spectrum, xs if keep_input else empty.clone()


def _fft_conv_backward(
    g: Tensor, x: Tensor, w: Tensor, spectrum: Tensor, xs: Tensor, pairs: list[int],
    stride: list[int], dilation: list[int], groups: int, padding_mode: str, want_x: bool,
    want_w: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The gradients of :func:`_fft_conv`'s ``x`` and ``w`` (empty where not wanted), from
    the spectra it kept (transformed again where one is empty).

    Shape:
        ``(N, C_out, *o), x, w, spectra -> x's shape, w's shape`` (or ``(0,)`` each).
    """
    spec = _op_spec(x, w, pairs, stride, dilation, groups, padding_mode)
    if spectrum.numel():
        kernel = fft.planned_kernel(spectrum, spec, w.shape[0])
    else:
        kernel = fft.prepare_fft(w, spec)
    if want_w and not xs.numel():
        xs = fft.input_spectra(x, kernel, spec)[0]
    tiles = fft.tiles_per_dim(kernel, spec)
    gx, gw = _gradients(g, kernel, xs if want_w else None, spec, tiles, x.shape[0], want_x)
    return (
        gx.to(x.dtype) if want_x and gx is not None else x.new_empty(0),
        gw.to(w.dtype) if want_w and gw is not None else w.new_empty(0),
    )


def _on_meta(op: Any, *args: Any) -> Any:
    """A fake implementation: ``op``'s eager code run on meta tensors of the same sizes,
    strides and dtypes, its outputs as fakes of theirs. The plan depends on every size, so
    symbolic sizes are specialised here (as :func:`.conv_spec` specialises them)."""

    def meta(a: Any) -> Any:
        if not isinstance(a, Tensor):
            return a
        shape, strides = (tuple(map(int, t)) for t in (a.shape, a.stride()))
        return torch.empty_strided(shape, strides, dtype=a.dtype, device="meta")

    like = next(a for a in args if isinstance(a, Tensor))
    with _disable_current_modes():  # no fake mode, and no tracing of the meta run
        outputs = op(*map(meta, args))
    return tuple(like.new_empty_strided(o.shape, o.stride(), dtype=o.dtype) for o in outputs)


fft_conv_op = torch.library.custom_op("gridconv::fft_conv", _fft_conv, mutates_args=())
fft_conv_op.register_fake(lambda *args: _on_meta(_fft_conv, *args))
fft_conv_backward_op = torch.library.custom_op(
    "gridconv::fft_conv_backward", _fft_conv_backward, mutates_args=()
)
fft_conv_backward_op.register_fake(lambda *args: _on_meta(_fft_conv_backward, *args))


def _setup_context(ctx: Any, inputs: tuple, output: tuple[Tensor, Tensor, Tensor]) -> None:
    x, w, *params, _, _ = inputs
    ctx.save_for_backward(x, w, output[1], output[2])
    ctx.params = params
    ctx.mark_non_differentiable(output[1], output[2])


def _backward(ctx: Any, g: Tensor, *_spectra_grads: Tensor) -> tuple[Tensor | None, ...]:
    x, w, spectrum, xs = ctx.saved_tensors
    want_x, want_w = ctx.needs_input_grad[:2]
    nones = (None,) * (len(ctx.params) + 2)
    if torch.is_grad_enabled():  # a double backward: through autograd
        spec = _op_spec(x, w, *ctx.params)
        return (*_double_backward(x, w, g, spec, want_x, want_w), *nones)
    gx, gw = fft_conv_backward_op(g, x, w, spectrum, xs, *ctx.params, want_x, want_w)
    return (gx if want_x else None, gw if want_w else None, *nones)


fft_conv_op.register_autograd(_backward, setup_context=_setup_context)


METHOD = Method(name="fft", run=run, seconds=fft.seconds, order=1, memory=fft.memory)
