"""The separable method: d one-dimensional passes over an exact decomposition of the kernel
(sec. 9.8), as many terms as the kernel needs (one when it is separable).

``auto`` takes it only for a kernel that is exactly separable to rounding and needs no
gradient, so it never changes results beyond rounding. With a gradient to the kernel, the
passes run forward and the direct convolution's exact gradients run backward.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor

from gridconv import _memo
from gridconv.functional._spec import ConvSpec
from gridconv.functional._trace import constant, tracing
from gridconv.functional.methods import direct
from gridconv.functional.methods.base import KernelCache, Method, Workload, cache_for, wanted_grads
from gridconv.functional.padding import pad, pad_adjoint
from gridconv.functional.separable import apply_separable, decompose, is_rank_one

CPU = {
    "separable_gmacs": 60.3,  # depthwise 1-D passes
    "separable_per_point": 0.0,  # seconds per element read by a pass
    "separable_per_moved_point": 4.37e-9,  # ... and by a pass along a dim other than the last
    "separable_overhead": 3.44e-4,
}
# The 1-D passes cost launches on a GPU. Not calibrated: use planning("measure").
CUDA = {
    "separable_gmacs": 500.0,
    "separable_per_point": 0.0,
    "separable_per_moved_point": 0.0,
    "separable_overhead": 3e-5,
}


def seconds(work: Workload, rank: int = 1) -> float:
    """Predicted time of ``rank``-term separable passes, plus the backward pass of each
    gradient ``work.grads`` wants: autograd through the passes for the input alone (about
    the passes' own time again), the direct convolution's backward when the kernel wants
    one."""
    passes = _passes(work.batch, work.out_channels, work.spec, work.device, rank)
    if work.grads[1]:
        forward = dataclasses.replace(work, grads=(False, False))
        return passes + direct.seconds(work) - direct.seconds(forward)
    return passes * (1 + work.grads[0])


def _passes(batch: int, out_channels: int, spec: ConvSpec, device: str, rank: int) -> float:
    c = CUDA if device == "cuda" else CPU
    fan = spec.in_channels * out_channels // spec.groups * rank
    size = list(spec.padded_size)
    macs = points = moved = 0
    for i in reversed(range(spec.ndim)):  # the passes' order: the last dim first
        points += batch * fan * math.prod(size)
        if i < spec.ndim - 1:
            moved += batch * fan * math.prod(size)  # the pass's dim is moved last and back
        size[i] = spec.output_size[i]
        macs += batch * fan * math.prod(size) * spec.kernel_size[i]
    seconds = macs / (c["separable_gmacs"] * 1e9) + c["separable_per_point"] * points
    return seconds + c["separable_per_moved_point"] * moved + c["separable_overhead"]


@constant
@_memo.cached(maxsize=None)
def tolerance(dtype: torch.dtype, ulps: float) -> float:
    """A relative tolerance of ``ulps`` units of rounding of ``dtype`` (float32 for halves)."""
    return ulps * torch.finfo(dtype if dtype == torch.float64 else torch.float32).eps


def exactly_separable(w: Tensor, cache: KernelCache | None) -> bool:
    """Whether auto may take this method for ``w``: separable to rounding, no gradient wanted
    (the answer is kept with the kernel)."""
    if w.ndim < 4 or any(wanted_grads(w)):
        return False
    rtol = tolerance(w.dtype, 32)
    return cache_for(cache, w).get(w, "rank-one", lambda: is_rank_one(w, rtol))


class _ExactSeparable(torch.autograd.Function):
    """Separable passes forward; the direct convolution's exact gradients backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, spec: ConvSpec, kernel: Any) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.spec = spec
        return apply_separable(x, kernel, spec)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w = ctx.saved_tensors
        spec = ctx.spec
        zeros = [0] * spec.ndim
        gx, gw, _ = torch.ops.aten.convolution_backward(
            grad,
            pad(x, spec.pairs, spec.padding_mode),
            w,
            None,
            list(spec.stride),
            zeros,
            list(spec.dilation),
            False,
            zeros,
            spec.groups,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False],
        )
        if gx is not None:
            gx = pad_adjoint(gx, spec.pairs, spec.padding_mode)
        return gx, gw, None, None


def run(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None = None) -> Tensor:
    """Exact: as many separable terms as the kernel needs (one when it is separable). While
    tracing, the direct method (equal to rounding): how many terms a kernel needs depends on
    its values, which a traced program does not know."""
    if tracing():  # the rank depends on the kernel's values: no graph can hold it
        return direct.run(x, w, spec)
    rtol = tolerance(w.dtype, 8)
    kernel = cache_for(cache, w).get(w, "separable", lambda: decompose(w, rtol=rtol))
    if any(wanted_grads(w)):
        return _ExactSeparable.apply(x, w, spec, kernel)
    return apply_separable(x, kernel, spec)


METHOD = Method(
    name="separable",
    run=run,
    seconds=seconds,
    memory=direct.memory,  # its backward is the direct convolution's
    plannable=lambda spec: spec.ndim > 1,
    usable=exactly_separable,
    portable=False,  # it runs direct while tracing; auto takes direct itself there
    constants={"cpu": (CPU,), "cuda": (CUDA,)},
)
