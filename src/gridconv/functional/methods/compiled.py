"""1-D FFT convolution on the CPU by the compiled overlap-save kernel (gridconv._native): the
FFT method's fast path, with its own rule of when it applies and its own cost model.

torch's path (:mod:`gridconv.functional.methods.fft`) makes each stage a pass over memory: padded
tiles, spectra, spectra frequency-major for the mixing matmul, products, inverse, valid
parts. The compiled kernel takes eight tiles at a time through every stage while they are in
cache, a tile per vector lane, at power-of-two lengths. In training it also computes the
input gradient (:func:`input_gradient`: the output gradient correlated with the flipped,
transposed kernel); the kernel gradient is torch's FFTs' (see ``fft.CompiledFFTConv``). The
results agree with torch's path to float32 rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gridconv import _memo, _native
from gridconv.functional._spec import ConvSpec, conv_spec, dilate_kernel
from gridconv.functional.padding import pad

# Relative cost per tile point of the kernel's stages, measured (one thread, 4 x 8 x 65536,
# K64, L512): per channel (input and output) an FFT of log2(L) butterfly passes plus
# LANE_PASSES passes' worth of transposes, splits and merges; per channel pair MIX_PASSES.
LANE_PASSES = 13.5
MIX_PASSES = 0.9
# Out of cache, measured over L = 64 .. 16384 with 1 to 64 channels: the whole kernel slows
# by WORKSPACE_SPILL per MiB of a thread's workspace beyond the first (L = 16384, 8
# channels: 2.2x), the mixing by MIX_SPILL per 512 KiB of input spectra beyond the first.
WORKSPACE_SPILL = 0.2
MIX_SPILL = 0.3
# Shorter transforms lose to their per-tile overheads (measured: L = 32 and 64 up to 1.3x
# slower than 128 - 2048 at K3 and K7), but where one short transform takes the whole input.
SHORTEST, LONGEST = 128, 2**16


@dataclass(frozen=True)
class CompiledKernel:
    """A kernel transformed for the compiled overlap-save path (what layers cache)."""

    packed: Tensor  # see gridconv._native.pack
    block: int  # outputs per tile
    length: int  # transform length, a power of two
    kernel: int  # dilated kernel size
    out_channels: int


def _cost(
    length: int, kernel: int, valid: int, in_channels: int, out_channels: int, groups: int
) -> float:
    """Relative cost of the whole convolution at transform ``length``."""
    tiles = -(-valid // (length - kernel + 1))
    workspace = _native.workspace_bytes(length, in_channels) / 2**20
    spectra = 64 * in_channels * (length // 2 + 1) / 2**19
    mix = MIX_PASSES * in_channels * out_channels / groups * (1 + MIX_SPILL * max(0, spectra - 1))
    per_point = (in_channels + out_channels) * (math.log2(length) + LANE_PASSES) + mix
    return tiles * length * per_point * (1 + WORKSPACE_SPILL * max(0, workspace - 1))


@_memo.cached()
def compiled_length(
    padded: int, kernel: int, in_channels: int, out_channels: int, groups: int
) -> int | None:
    """The transform length for the compiled path: the cheapest power of two with at least
    as many outputs per tile as taps, whose workspace fits; None if none does."""
    valid = padded - kernel + 1
    best = None
    length = min(SHORTEST, 1 << max(4, (padded - 1).bit_length()))
    while length <= LONGEST:
        fits = _native.workspace_bytes(length, in_channels) <= _native.WORKSPACE_MAX_BYTES
        if fits and length - kernel + 1 >= min(kernel, valid):
            cost = _cost(length, kernel, valid, in_channels, out_channels, groups)
            if best is None or cost < best[0]:
                best = (cost, length)
        length *= 2
    return None if best is None else best[1]


def applies(x: Tensor, w: Tensor, spec: ConvSpec) -> bool:
    """Whether ``fft_conv`` takes the compiled path for this call: 1-D, on the CPU, float32
    (or half precision, computed in float32), a length that fits (for the input gradient's
    correlation too, when ``x`` wants a gradient), and the compiled kernels available on
    this machine."""
    if spec.ndim != 1 or x.device.type != "cpu" or w.device.type != "cpu":
        return False
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return False
    O = w.shape[0]
    if compiled_length(spec.padded_size[0], spec.span[0], spec.in_channels, O, spec.groups) is None:
        return False
    if torch.is_grad_enabled() and x.requires_grad:
        back = adjoint_spec(spec, O)
        if (
            compiled_length(back.padded_size[0], back.span[0], O, spec.in_channels, spec.groups)
            is None
        ):
            return False
    return _native.available()


@_memo.cached()
def adjoint_spec(spec: ConvSpec, out_channels: int) -> ConvSpec:
    """The correlation whose output is the padded input's gradient: the output gradient,
    stride-upsampled to the valid length V and padded by ``span - 1`` on both sides, with
    the flipped kernel, input and output channels exchanged in each group."""
    (span,), (P,) = spec.span, spec.padded_size
    return conv_spec(
        (spec.in_channels, out_channels // spec.groups, span),
        out_channels,
        (P - span + 1,),
        stride=1,
        padding=[(span - 1, span - 1)],
        dilation=1,
        groups=spec.groups,
        padding_mode="zeros",
    )


def input_gradient(g: Tensor, w: Tensor, spec: ConvSpec) -> Tensor:
    """The gradient of the padded input, ``(N, C_out, o) -> (N, C_in, P)``, by the compiled
    correlation of the stride-upsampled output gradient with the flipped, transposed kernel
    (the chapter's eq. 9.13)."""
    O, Cg = w.shape[:2]
    G = spec.groups
    back = adjoint_spec(spec, O)
    wd = dilate_kernel(w.detach().to(torch.float32), spec.dilation)  # (O, Cg, S)
    wt = wd.reshape(G, O // G, Cg, -1).transpose(1, 2).reshape(G * Cg, O // G, -1).flip(-1)
    N = g.shape[0]
    (valid,) = back.input_size
    (stride,) = spec.stride
    if stride > 1:
        full = g.new_zeros(N, O, valid, dtype=torch.float32)
        full[..., ::stride] = g
    else:
        full = g.to(torch.float32)
    return apply(full, prepare(wt, back), back)


def prepare(w: Tensor, spec: ConvSpec) -> CompiledKernel:
    """Transform the (dilated) kernel at the length :func:`compiled_length` picks."""
    O = w.shape[0]
    w = dilate_kernel(w.detach().to(torch.float32), spec.dilation)
    kernel = w.shape[-1]
    length = compiled_length(spec.padded_size[0], kernel, spec.in_channels, O, spec.groups)
    if length is None:
        raise ValueError(f"w: no transform length fits a kernel of {kernel} taps")
    # the 1/2 of splitting and of merging the real spectra, and the 1/(L/2) of the inverse
    spectrum = torch.fft.rfft(w, n=length).conj_physical() / (2 * length)
    packed = _native.pack(spectrum, spec.groups)
    return CompiledKernel(packed, length - kernel + 1, length, kernel, O)


def apply(x: Tensor, kernel: CompiledKernel, spec: ConvSpec) -> Tensor:
    """Correlate a batched ``x`` with a prepared kernel; ``(N, C_in, n) -> (N, C_out, o)``."""
    out_dtype = x.dtype
    x = x.to(torch.float32)
    n = x.shape[-1]
    ((before, after),) = spec.pairs
    valid = n + before + after - kernel.kernel + 1
    tiles = -(-valid // kernel.block)
    row = (tiles - 1) * kernel.block + kernel.length  # >= the padded length
    if spec.padding_mode == "zeros":
        xp = pad(x, ((before, row - n - before),))
    else:
        xp = pad(pad(x, spec.pairs, spec.padding_mode), ((0, row - n - before - after),))
    y = _native.overlap_save(
        xp.contiguous(),
        kernel.packed,
        kernel.out_channels,
        spec.groups,
        kernel.block,
        kernel.length,
        valid,
    )
    (stride,) = spec.stride
    if stride > 1:
        y = y[..., ::stride]
    return y.to(out_dtype)


def work(spec: ConvSpec, batch: int, out_channels: int) -> float:
    """The work of the compiled path, in the units of :func:`_cost` (for the planner)."""
    padded, kernel = spec.padded_size[0], spec.span[0]
    length = compiled_length(padded, kernel, spec.in_channels, out_channels, spec.groups)
    if length is None:
        return math.inf
    valid = padded - kernel + 1
    return batch * _cost(length, kernel, valid, spec.in_channels, out_channels, spec.groups)


# Seconds per unit of `work`, per padded input element (the padded copy), per call; kernel
# kept. Fitted on 17 shapes, 1 - 64 channels, K3 - K4096, within 0.74 - 1.37x
# (benchmarks/calibrate_compiled.py).
CPU = {
    "fft_compiled_unit": 1.74e-11,
    "fft_compiled_per_point": 4.07e-10,
    "fft_compiled_overhead": 2.7e-5,
}


def seconds(batch: int, out_channels: int, spec: ConvSpec) -> float:
    """Predicted time of the compiled path, its kernel's transform kept (CPU only)."""
    points = batch * spec.in_channels * spec.padded_size[0]
    return (
        CPU["fft_compiled_unit"] * work(spec, batch, out_channels)
        + CPU["fft_compiled_per_point"] * points
        + CPU["fft_compiled_overhead"]
    )
