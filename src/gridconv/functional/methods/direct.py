"""The direct method: torch's ``convNd`` (oneDNN on CPU, cuDNN on GPU), padding done once.

Symmetric zero padding is left to torch; what is asymmetric, or in another mode, is padded
here first. The backward pass is torch's own: the transposed convolution for the input
(the chapter's eq. 9.13) and the correlation of input and output gradient for the kernel.
"""

from __future__ import annotations

import math

from torch import Tensor

from gridconv import _memo
from gridconv.functional._spec import TORCH_CONV, ConvSpec
from gridconv.functional._trace import constant
from gridconv.functional.methods.base import KernelCache, Method, Workload
from gridconv.functional.padding import pad

# torch's direct convolution has three regimes: a JIT kernel for kernels up to 8 wide
# (depthwise up to 10), im2col + GEMM above that, and a naive reference loop for a single
# channel or a huge im2col buffer. Fitted by benchmarks/calibrate.py: see
# benchmarks/results/cost-model.md#direct.
CPU = {
    "direct_jit_gmacs": 101.0,  # GMAC/s with many channel pairs; half of it at `..._half`
    "direct_jit_half": 22.7,
    "direct_jit_3d": 0.542,  # rate factor of 3-D JIT kernels
    "direct_small3d_gmacs": 3.32,
    "direct_depthwise_gmacs": 17.2,
    "direct_gemm_gmacs": 33.2,
    "direct_gemm_half": 26.4,
    "direct_ref_gmacs": 0.358,
    "direct_im2col_limit": 4.8e8,  # im2col elements above which oneDNN gives up on GEMM
    "direct_per_point": 1.43e-9,  # seconds per padded input element (copies)
    "direct_overhead": 3.62e-5,
    # The backward pass (per gradient): at the forward's rate, but where oneDNN has no fast
    # backward kernel (see benchmarks/results/cost-model.md#direct-backward).
    "direct_backward_depthwise_gmacs": 3.3,
    "direct_backward_slow_gmacs": 4.0,
}
# cuDNN is fast at every kernel size it supports. Not calibrated (no GPU was at hand): on a
# GPU, use planning("measure").
CUDA = {
    "direct_jit_gmacs": 5000.0,
    "direct_jit_half": 64.0,
    "direct_jit_3d": 1.0,
    "direct_small3d_gmacs": 5000.0,
    "direct_depthwise_gmacs": 5000.0,
    "direct_gemm_gmacs": 5000.0,
    "direct_gemm_half": 64.0,
    "direct_ref_gmacs": 5000.0,
    "direct_im2col_limit": math.inf,
    "direct_per_point": 0.0,
    "direct_overhead": 1e-5,
    "direct_backward_depthwise_gmacs": 5000.0,
    "direct_backward_slow_gmacs": 5000.0,
}

# The widest kernels oneDNN's JIT kernels take (measured: with 8 x 8 kernels, the model
# said 3x too slow in 2-D and picked the FFT over direct's 4.2 ms in 1-D at 8.0 ms).
JIT_WIDEST = 8
JIT_WIDEST_DEPTHWISE = 10
# im2col + GEMM backward passes keep the forward's rate up to 13-wide kernels (measured at
# 9, 11, 13: 3.0-3.1x the forward for both gradients; 15: 9-16x).
GEMM_BACKWARD_WIDEST = 13


def padded_points(batch: int, spec: ConvSpec) -> int:
    """Elements of the padded input: what a pass that copies it touches."""
    return batch * spec.in_channels * math.prod(spec.padded_size)


def seconds(work: Workload) -> float:
    """Predicted time of torch's direct convolution: forward, plus the backward pass of
    each gradient ``work.grads`` wants (of the input, of the kernel)."""
    batch, out_channels, spec = work.batch, work.out_channels, work.spec
    forward, rate = _forward(batch, out_channels, spec, work.device)
    if not any(work.grads):
        return forward
    c = CUDA if work.device == "cuda" else CPU
    macs = _macs(batch, out_channels, spec)
    widest = max(spec.kernel_size)
    group_in = spec.in_channels // spec.groups
    if work.device == "cuda":
        backward_rate = rate
    elif group_in == 1 and spec.groups > 1 and widest <= JIT_WIDEST_DEPTHWISE:
        backward_rate = c["direct_backward_depthwise_gmacs"]  # no JIT kernel backward
    elif spec.ndim == 1 or widest > GEMM_BACKWARD_WIDEST:
        backward_rate = c["direct_backward_slow_gmacs"]
    else:
        backward_rate = rate
    per_gradient = macs / (backward_rate * 1e9) + c["direct_per_point"] * padded_points(batch, spec)
    return forward + sum(work.grads) * per_gradient


def _macs(batch: int, out_channels: int, spec: ConvSpec) -> int:
    group_in = spec.in_channels // spec.groups
    return (
        batch * out_channels * math.prod(spec.output_size) * group_in * math.prod(spec.kernel_size)
    )


def _forward(batch: int, out_channels: int, spec: ConvSpec, device: str) -> tuple[float, float]:
    """Seconds of the forward pass, and its rate in GMAC/s."""
    c = CUDA if device == "cuda" else CPU
    group_in = spec.in_channels // spec.groups
    pairs = group_in * out_channels // spec.groups  # channel pairs per group
    taps = math.prod(spec.kernel_size)
    out = math.prod(spec.output_size)
    macs = _macs(batch, out_channels, spec)
    widest = max(spec.kernel_size)
    if spec.ndim == 3 and widest <= 3 and pairs <= 16:
        rate = c["direct_small3d_gmacs"]  # few channels, 3x3x3: not oneDNN's JIT (measured)
    elif widest <= JIT_WIDEST_DEPTHWISE and group_in == 1 and spec.groups > 1:
        rate = c["direct_depthwise_gmacs"]  # oneDNN's depthwise JIT kernel
    elif widest <= JIT_WIDEST:
        rate = c["direct_jit_gmacs"] * pairs / (pairs + c["direct_jit_half"])
        if spec.ndim == 3:
            rate *= c["direct_jit_3d"]
    else:
        im2col = group_in * taps * out
        single = spec.in_channels == 1 and out_channels == 1 and spec.ndim > 1
        if single or spec.ndim == 3 or im2col > c["direct_im2col_limit"]:
            rate = c["direct_ref_gmacs"]
        else:
            rate = c["direct_gemm_gmacs"] * pairs / (pairs + c["direct_gemm_half"])
    points = padded_points(batch, spec)
    return macs / (rate * 1e9) + c["direct_per_point"] * points + c["direct_overhead"], rate


def memory(work: Workload) -> float:
    """Extra peak bytes of a training step: the padded input (or its gradient) and the
    output, its gradient and their temporaries (measured 16 MB at N4 C16 O16 128x128 K9)."""
    outputs = work.batch * work.out_channels * math.prod(work.spec.output_size)
    return 4.0 * (padded_points(work.batch, work.spec) + 3 * outputs)


@constant
@_memo.cached()
def split_padding(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...] | None]:
    """The padding torch's convNd does itself (symmetric zeros), and the rest (None: none)."""
    if spec.padding_mode != "zeros":
        return (0,) * spec.ndim, spec.pairs
    symmetric = tuple(min(before, after) for before, after in spec.pairs)
    rest = tuple((b - s, a - s) for (b, a), s in zip(spec.pairs, symmetric))
    return symmetric, rest if any(b or a for b, a in rest) else None


def run(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None = None) -> Tensor:
    """torch's convNd; symmetric zero padding is left to torch, the rest is padded here."""
    symmetric, rest = split_padding(spec)
    if rest is not None:
        x = pad(x, rest, spec.padding_mode)
    conv_nd = TORCH_CONV[spec.ndim]
    return conv_nd(x, w, None, spec.stride, symmetric, spec.dilation, spec.groups)


METHOD = Method(
    name="direct",
    run=run,
    seconds=seconds,
    memory=memory,
    constants={"cpu": (CPU,), "cuda": (CUDA,)},
)
