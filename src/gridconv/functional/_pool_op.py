"""Max pooling as the torch custom op ``gridconv::max_pool`` (and its backward), which
``torch.compile`` calls as one opaque ATen kernel on the CPU.

Measured on this project's 2-core CPU (torch 2.13, ``benchmarks/compile_step.py``): inductor's
generated kernels for ``max_pool2d_with_indices`` and its backward take about 13 ms of a
22 ms training step of a small ConvNet where ATen's take about 4 ms, which made a compiled
step slower than the eager one. Through this op a compiled gridconv step is as fast as
eager. ``torch.export`` keeps torch's own op, which ONNX can express.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

_FORWARD = {2: torch.ops.aten.max_pool2d_with_indices, 3: torch.ops.aten.max_pool3d_with_indices}
_BACKWARD = {
    2: torch.ops.aten.max_pool2d_with_indices_backward,
    3: torch.ops.aten.max_pool3d_with_indices_backward,
}


def max_pool(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
    """Max pooling of an already padded ``x`` (no padding, no dilation) by the custom op.

    Shape:
        ``(N, C, *n) -> (N, C, *o)``, ``o = (n - kernel) // stride + 1``, 1 to 3 dims.
    """
    if len(kernel) == 1:  # as 2-D, height 1
        return max_pool(x.unsqueeze(2), (1, *kernel), (1, *stride)).squeeze(2)
    return _max_pool(x, list(kernel), list(stride))[0]


@torch.library.custom_op("gridconv::max_pool", mutates_args=(), device_types="cpu")
def _max_pool(x: Tensor, kernel: list[int], stride: list[int]) -> tuple[Tensor, Tensor]:
    d = len(kernel)
    out, indices = _FORWARD[d](x, kernel, stride, [0] * d, [1] * d, False)
    return out, indices


@_max_pool.register_fake
def _max_pool_fake(x: Tensor, kernel: list[int], stride: list[int]) -> tuple[Tensor, Tensor]:
    out = [(n - k) // s + 1 for n, k, s in zip(x.shape[2:], kernel, stride)]
    return x.new_empty(*x.shape[:2], *out), x.new_empty(*x.shape[:2], *out, dtype=torch.long)


@torch.library.custom_op("gridconv::max_pool_backward", mutates_args=(), device_types="cpu")
def _max_pool_backward(
    grad: Tensor, x: Tensor, indices: Tensor, kernel: list[int], stride: list[int]
) -> Tensor:
    d = len(kernel)
    return _BACKWARD[d](grad.contiguous(), x, kernel, stride, [0] * d, [1] * d, False, indices)


@_max_pool_backward.register_fake
def _max_pool_backward_fake(
    grad: Tensor, x: Tensor, indices: Tensor, kernel: list[int], stride: list[int]
) -> Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _setup_context(ctx: Any, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    x, kernel, stride = inputs
    ctx.save_for_backward(x, output[1])
    ctx.kernel, ctx.stride = kernel, stride
    ctx.set_materialize_grads(False)


def _backward(ctx: Any, grad: Tensor | None, _: Tensor | None) -> tuple[Tensor | None, ...]:
    x, indices = ctx.saved_tensors
    if grad is None:
        return None, None, None
    return _max_pool_backward(grad, x, indices, ctx.kernel, ctx.stride), None, None


_max_pool.register_autograd(_backward, setup_context=_setup_context)
