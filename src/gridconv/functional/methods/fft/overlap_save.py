"""1-D FFT convolution on the CPU by the compiled overlap-save kernel (gridconv._native): the
FFT method's fast path, with its own rule of when it applies (:func:`applies`, the one place
that decides) and its own cost model.

torch's path (:mod:`.transforms`) makes each stage a pass over memory: padded
tiles, spectra, spectra frequency-major for the mixing matmul, products, inverse, valid
parts. The compiled kernel takes eight tiles at a time through every stage while they are in
cache, a tile per vector lane, at power-of-two lengths. In training it also computes both
gradients (:func:`backward`) from one transform of each tile of the output gradient: the
input's by overlap-add of the tiles' products with the kernel's spectrum, the kernel's as
sums over tiles of products with the input's tile spectra. The results agree with torch's
path to float32 rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gridconv import _memo, _native
from gridconv._shapes import ceil_div
from gridconv.functional._spec import ConvSpec, dilate_kernel
from gridconv.functional._trace import constant
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
# The most bytes of workspace a thread may take for the kernel gradient (above it, torch's
# FFTs compute it): its sums per channel pair and bin are 8 lanes of complex float32 each.
ACCUMULATOR_MAX_BYTES = 32 * 2**20
# The backward's time over the forward's, measured on five shapes (1 - 64 channels, K9 -
# K100, L 256 - 512): the input gradient's 1.25 - 1.6, the kernel gradient's 1.1 - 1.6 with
# its sums in cache, slower by SUMS_SPILL per MiB of a thread's sums beyond the first (3.6
# at 8 MiB).
BACKWARD_X = 1.4
BACKWARD_W = 1.3
SUMS_SPILL = 0.2


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
    tiles = ceil_div(valid, length - kernel + 1)
    workspace = _native.workspace_bytes(length, in_channels) / 2**20
    spectra = 64 * in_channels * (length // 2 + 1) / 2**19
    mix = MIX_PASSES * in_channels * out_channels / groups * (1 + MIX_SPILL * max(0, spectra - 1))
    per_point = (in_channels + out_channels) * (math.log2(length) + LANE_PASSES) + mix
    return tiles * length * per_point * (1 + WORKSPACE_SPILL * max(0, workspace - 1))


@constant
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


@constant
def applies(spec: ConvSpec, device: str, dtype: torch.dtype, out_channels: int) -> bool:
    """Whether the FFT method takes the compiled path for a convolution ``spec`` with
    ``out_channels`` kernels of an input of ``dtype`` on a ``device`` type: 1-D, on the CPU,
    float32 (or half precision, computed in float32), a length that fits, and the compiled
    kernels available on this machine."""
    if spec.ndim != 1 or device != "cpu":
        return False
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return False
    C, G = spec.in_channels, spec.groups
    if compiled_length(spec.padded_size[0], spec.span[0], C, out_channels, G) is None:
        return False
    return _native.available()


def _upsampled(g: Tensor, valid: int, spec: ConvSpec) -> Tensor:
    """The output gradient at every valid position (zeros where the stride skips), float32."""
    (stride,) = spec.stride
    if stride == 1:
        return g.to(torch.float32).contiguous()
    full = g.new_zeros(*g.shape[:2], valid, dtype=torch.float32)
    full[..., ::stride] = g
    return full


def kernel_gradient_fits(kernel: CompiledKernel, spec: ConvSpec) -> bool:
    """Whether a thread's workspace for the kernel gradient (the spectra of every input and
    output channel, and a sum per channel pair and bin) fits ACCUMULATOR_MAX_BYTES."""
    return sums_fit(kernel.length, spec.in_channels, kernel.out_channels, spec.groups)


def sums_fit(length: int, in_channels: int, out_channels: int, groups: int) -> bool:
    need = _native.workspace_bytes(length, in_channels + out_channels)
    sums = _native.accumulator_bytes(length, in_channels, out_channels, groups)
    return need + sums <= ACCUMULATOR_MAX_BYTES


def backward_factor(
    spec: ConvSpec, out_channels: int, grads: tuple[bool, bool]
) -> tuple[float, bool]:
    """The time of the forward and the backward ``grads`` wants, over the forward's; and
    whether the kernel's gradient falls to torch's FFTs (then it is not in the factor)."""
    want_x, want_w = grads
    C, G = spec.in_channels, spec.groups
    length = compiled_length(spec.padded_size[0], spec.span[0], C, out_channels, G)
    if length is None:
        return math.inf, False
    factor = 1 + BACKWARD_X * want_x
    if want_w and not sums_fit(length, C, out_channels, G):
        return factor, True
    sums = _native.accumulator_bytes(length, C, out_channels, G) / 2**20
    return factor + want_w * BACKWARD_W * (1 + SUMS_SPILL * max(0, sums - 1)), False


def backward(
    x: Tensor, g: Tensor, kernel: CompiledKernel, spec: ConvSpec, want: tuple[bool, bool]
) -> tuple[Tensor | None, Tensor | None]:
    """The gradients of the padded input (the chapter's eq. 9.13: the output gradient,
    stride-upsampled, convolved with the kernel) and of the kernel (the input correlated
    with the output gradient; only the kernel's taps), by the compiled kernel from one
    transform of each tile of the output gradient. ``want`` says which; the caller computes
    the kernel's where it does not :func:`kernel_gradient_fits`.

    Shape:
        ``(N, C_in, n), (N, C_out, o) -> (N, C_in, P), (C_out, C_in / groups, k)``, float32,
        ``P`` the padded input's length.
    """
    xp: Tensor | tuple[int, int, int]
    if want[1]:
        xp, valid = _padded(x, kernel, spec)
    else:  # the padded input's shape will do
        xp, valid = _padded_shape(x, kernel, spec)
    gxp, taps = _native.backward(
        xp, _upsampled(g, valid, spec), kernel.packed, spec.groups, kernel.block,
        kernel.length, valid, want,
    )  # fmt: skip
    if gxp is not None:
        gxp = gxp[..., : spec.padded_size[0]]
    (dilation,) = spec.dilation
    if taps is not None and dilation > 1:
        taps = taps[..., ::dilation]
    return gxp, taps


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
    xp, valid = _padded(x, kernel, spec)
    y = _native.overlap_save(
        xp,
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


def _padded_shape(
    x: Tensor, kernel: CompiledKernel, spec: ConvSpec
) -> tuple[tuple[int, int, int], int]:
    """The shape of ``x`` padded as :func:`_padded` pads it; and the valid outputs per row."""
    N, C, n = x.shape
    ((before, after),) = spec.pairs
    valid = n + before + after - kernel.kernel + 1
    tiles = ceil_div(valid, kernel.block)
    return (N, C, (tiles - 1) * kernel.block + kernel.length), valid


def _padded(x: Tensor, kernel: CompiledKernel, spec: ConvSpec) -> tuple[Tensor, int]:
    """``x`` padded as ``spec`` says and, with zeros, on to the end of its last tile,
    float32 and contiguous; and the valid outputs per row."""
    x = x.to(torch.float32)
    n = x.shape[-1]
    ((before, after),) = spec.pairs
    (_, _, row), valid = _padded_shape(x, kernel, spec)  # row >= the padded length
    if spec.padding_mode == "zeros":
        xp = pad(x, ((before, row - n - before),))
    else:
        xp = pad(pad(x, spec.pairs, spec.padding_mode), ((0, row - n - before - after),))
    return xp.contiguous(), valid


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
