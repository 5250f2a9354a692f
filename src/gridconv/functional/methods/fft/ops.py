"""The FFT method as torch custom ops, for traced programs (``torch.compile``):
``gridconv::fft_conv`` and its backward ``gridconv::fft_conv_backward``, each one opaque call
that runs the eager code, with a fake implementation and an autograd formula.

inductor re-generates the FFT path's permutes, pads and slices as kernels of its own that
run slower here than ATen's copies (a compiled training step of 9 x 9 and 11 x 11 layers
took 1.2-1.4x the eager step); as one opaque op each way, it runs the eager code. As in
eager mode (:class:`.run.FFTConv`), the forward op hands the backward the spectra it made:
the kernel's and, where the kernel wants a gradient, the input's (outputs of its own that
autograd saves; transformed again, they cost a tenth of a training step of 9 x 9 and 11 x 11
layers).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import _disable_current_modes

from gridconv.functional._spec import ConvSpec, conv_spec
from gridconv.functional.methods.fft import transforms
from gridconv.functional.methods.fft.grad import double_backward, gradients


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
        :func:`.transforms.prepare_fft` and :func:`.transforms.input_spectra` make them.
    """
    spec = _op_spec(x, w, pairs, stride, dilation, groups, padding_mode)
    kernel = transforms.prepare_fft(w.detach(), spec)
    xs, tiles = transforms.input_spectra(x.detach(), kernel, spec)
    y = transforms.assemble(transforms.mix(xs, kernel), kernel, spec, x.shape[0], tiles).to(x.dtype)
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
        kernel = transforms.planned_kernel(spectrum, spec, w.shape[0])
    else:
        kernel = transforms.prepare_fft(w, spec)
    if want_w and not xs.numel():
        xs = transforms.input_spectra(x, kernel, spec)[0]
    tiles = transforms.tiles_per_dim(kernel, spec)
    gx, gw = gradients(g, kernel, xs if want_w else None, spec, tiles, x.shape[0], want_x)
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
        return (*double_backward(x, w, g, spec, want_x, want_w), *nones)
    gx, gw = fft_conv_backward_op(g, x, w, spectrum, xs, *ctx.params, want_x, want_w)
    return (gx if want_x else None, gw if want_w else None, *nones)


fft_conv_op.register_autograd(_backward, setup_context=_setup_context)
