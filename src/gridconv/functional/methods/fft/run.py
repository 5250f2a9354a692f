"""The FFT method as it runs (Goodfellow et al. 2016, sec. 9.8), eager and traced.

:func:`run` decides once whether the compiled 1-D path applies
(:func:`.overlap_save.applies`), and takes the kernel's transform from a layer's cache, from
the small cache kept with the kernel tensor, or makes it afresh. Forward and backward are
``torch.autograd.Function`` s of their own (:class:`FFTConv`, and :class:`CompiledFFTConv`
for the compiled path); traced programs get custom ops (:mod:`.ops`,
:mod:`.overlap_save_ops`). The transforms are :mod:`.transforms`'s (looked up there at each
call, so that tests can swap them), the backward's spectra :mod:`.grad`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gridconv.functional._spec import ConvSpec
from gridconv.functional._trace import exporting, tracing
from gridconv.functional.methods.base import KernelCache, cache_for, cached, wanted_grads
from gridconv.functional.methods.fft import overlap_save, overlap_save_ops, plan, transforms
from gridconv.functional.methods.fft.grad import cast, double_backward, gradients
from gridconv.functional.methods.fft.ops import fft_conv_op
from gridconv.functional.methods.fft.overlap_save import CompiledKernel
from gridconv.functional.padding import pad_adjoint


def run(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None = None) -> Tensor:
    """The FFT method: by the compiled 1-D kernel where it applies, else by torch's FFTs;
    the kernel's transform from ``cache``, from the small cache kept with ``w`` (the last
    input size's, when small), or made afresh."""
    compiled = overlap_save.applies(spec, x.device.type, x.dtype, w.shape[0])
    if tracing():  # nothing cached; the method as one opaque op
        return _traced(x, w, spec, compiled)
    kernel = _kernel(x, w, spec, cache, compiled)
    want_x, want_w = wanted_grads(x, w)
    if compiled:
        if want_x or want_w:
            return CompiledFFTConv.apply(x, w, spec, kernel)
        return overlap_save.apply(x, kernel, spec)
    if want_x or want_w:
        return FFTConv.apply(x, w, spec, kernel)
    return transforms.apply_fft(x, kernel, spec)


@dataclass
class _LastTransform:
    """The transform kept with a kernel tensor: of the last convolution it served."""

    key: tuple[ConvSpec, bool] | None = None
    kernel: Any = None


def _kernel(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None, compiled: bool) -> Any:
    """The kernel's transform, for the compiled path or for torch's FFTs."""
    prepare: Callable[[Tensor, ConvSpec], Any]
    prepare = overlap_save.prepare if compiled else transforms.prepare_fft
    if cache is None and plan.spectrum_kept(x, w, spec, None):
        last = cache_for(None, w).get(w, "fft", _LastTransform)
        if last.key != (spec, compiled):
            last.key, last.kernel = (spec, compiled), prepare(w, spec)
        return last.kernel
    if any(wanted_grads(w)):  # transformed without a graph: the Function gives w its gradient
        with torch.no_grad():
            return prepare(w, spec)
    return cached(cache, w, ("fft", spec, compiled), lambda: prepare(w, spec))


class FFTConv(torch.autograd.Function):
    """The FFT method with its own backward pass (see :mod:`.grad`): the input gradient
    from the kernel spectrum this forward used, the kernel gradient from the input spectra
    it kept (only when the kernel wants a gradient). A double backward recomputes both from
    ``x`` and ``w`` and goes through autograd."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, w: Tensor, spec: ConvSpec, kernel: transforms.FFTKernel
    ) -> Tensor:
        xs, tiles = transforms.input_spectra(x, kernel, spec)
        y = transforms.assemble(transforms.mix(xs, kernel), kernel, spec, x.shape[0], tiles).to(
            x.dtype
        )
        ctx.save_for_backward(x, w, xs if ctx.needs_input_grad[1] else None)
        ctx.spec, ctx.kernel, ctx.tiles = spec, kernel, tiles
        return y

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, w, xs = ctx.saved_tensors
        want_x, want_w = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            return (*double_backward(x, w, g, ctx.spec, want_x, want_w), None, None)
        gx, gw = gradients(g, ctx.kernel, xs, ctx.spec, ctx.tiles, x.shape[0], want_x)
        return cast(gx, x), cast(gw, w), None, None


class CompiledFFTConv(torch.autograd.Function):
    """The compiled 1-D path, trained: the forward and both gradients by the compiled kernel
    (see :func:`.overlap_save.backward`), but where its sums per channel pair and frequency
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
            return (*double_backward(x, w, g, spec, want_x, want_w), None, None)
        want = (want_x, want_w and overlap_save.kernel_gradient_fits(ctx.kernel, spec))
        gx = gw = None
        if any(want):
            gxp, gw = overlap_save.backward(x.detach(), g, ctx.kernel, spec, want)
            gx = None if gxp is None else pad_adjoint(gxp, spec.pairs, spec.padding_mode)
            gx, gw = cast(gx, x), cast(gw, w)
        if want_w and not want[1]:
            kernel = transforms.prepare_fft(w.detach(), spec)
            xs, tiles = transforms.input_spectra(x.detach(), kernel, spec)
            gw = cast(gradients(g, kernel, xs, spec, tiles, x.shape[0], False)[1], w)
        return gx, gw, None, None


def _traced(x: Tensor, w: Tensor, spec: ConvSpec, compiled: bool) -> Tensor:
    """The FFT method while tracing: nothing cached. For ``torch.export``, torch's FFT ops;
    for ``torch.compile``, the compiled 1-D kernel as one custom op (where its kernel
    gradient fits, if wanted), else torch's FFTs as one custom op (:mod:`.ops`)."""
    if exporting():  # a program of standard ops, for other runtimes
        kernel = transforms.prepare_fft(w, spec)
        if any(wanted_grads(x, w)):
            return FFTConv.apply(x, w, spec, kernel)
        return transforms.apply_fft(x, kernel, spec)
    if compiled and overlap_save_ops.traceable(x, w, spec):
        return overlap_save_ops.fft_conv1d_op(x, w, spec)
    pairs = [v for pair in spec.pairs for v in pair]
    want_x, want_w = wanted_grads(x, w)
    keep_kernel, keep_input = want_x or want_w, want_w
    y, _, _ = fft_conv_op(x, w, pairs, list(spec.stride), list(spec.dilation), spec.groups,
                          spec.padding_mode, keep_kernel, keep_input)  # fmt: skip
    return y
