"""The FFT method's plan: transform lengths, overlap-save tiles, the work they cost, and the
method's cost model (its calibrated constants, time and memory; the compiled 1-D path's
own are :mod:`.overlap_save`'s).

Lengths are fast (2-3-5-7-smooth, even); a dim is cut into overlap-save tiles only when
that costs less than one whole transform (see :func:`tile_plan`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from gridconv import _memo
from gridconv._shapes import ceil_div
from gridconv.functional._spec import ConvSpec
from gridconv.functional._trace import constant
from gridconv.functional.methods.base import KernelCache, Workload, wanted_grads
from gridconv.functional.methods.fft import overlap_save

# Fitted by benchmarks/calibrate.py (see gridconv.plan). The work is
# counted in FFT butterflies (per point per log2 of the length); `fft_mix`, `fft_copy` and
# `fft_kernel` weigh the other kinds against one: a complex multiply-add of the channel
# mixing, a copied point of an overlapping tile, a complex multiply-add of the kernel's DFT.
CPU = {
    "fft_unit_1d": 1.02e-10,  # seconds per butterfly
    "fft_unit_2d": 1.65e-10,
    "fft_unit_3d": 2.94e-10,
    "fft_mix": 2.67,
    "fft_copy": 1.98,
    "fft_kernel": 0.062,
    "fft_overhead": 3.15e-4,
    # transforming the kernel, part of the above: fitted on 36 shapes (within 1.5x) for
    # calls that keep the spectrum (seconds; per byte of complex64 spectrum; per kernel
    # multiply-add)
    "fft_prepare_overhead": 8.5e-5,
    "fft_prepare_per_byte": 1.68e-10,
    "fft_prepare_per_kernel": 3.7e-12,
    # The backward pass against the forward (kernel transformed): the input gradient, and
    # the kernel gradient. Measured on 9 shapes of the train suite: forward + backward
    # 2.5-2.9x the forward, 1.7-2.2x with the kernel's gradient alone.
    "fft_backward_x": 0.7,
    "fft_backward_w": 0.95,
}
# FFTs cost launches on a GPU. Not calibrated (no GPU was at hand): use planning("measure").
CUDA = {
    **CPU,
    "fft_unit_1d": 2e-12,
    "fft_unit_2d": 2e-12,
    "fft_unit_3d": 2e-12,
    "fft_overhead": 1e-4,
}


def _smooth(n: int) -> int:
    """The smallest 2-3-5-7-smooth integer ``>= n``."""
    best = 1 << max(n - 1, 0).bit_length()
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                m = p3
                while m < n:
                    m *= 2
                best = min(best, m)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


@constant
@_memo.cached()
def fast_length(n: int) -> int:
    """The smallest even 2-3-5-7-smooth integer ``>= n``: a length FFTs transform fast.

    Real FFTs of odd lengths run about twice as slow (MKL and pocketfft alike), so the
    length is also even.

    Example:
        >>> [fast_length(n) for n in (1, 11, 97, 1000, 1025)]
        [2, 12, 98, 1000, 1050]
    """
    return 2 * _smooth(ceil_div(n, 2))


# Only dims longer than this are cut into tiles: on shorter ones (every dim of an image or
# a volume, so far) a whole transform measured as fast or faster than any tiling.
TILE_ABOVE = 4096


def _bins(lengths: Sequence[int]) -> int:
    """Complex numbers in a real transform of ``lengths`` (half of the last dim, plus one)."""
    return math.prod(lengths[:-1]) * (lengths[-1] // 2 + 1)


def _work(
    lengths: Sequence[int], tiles: int, channels: int, mixing: int
) -> tuple[float, float, float]:
    """Per image: FFT butterflies, copied tile points, and mixing multiply-adds.

    A transform along a dim longer than 16384 points falls out of cache: measured, each
    doubling of its length beyond that costs half as much again per butterfly.
    """
    points = tiles * math.prod(lengths)
    bins = tiles * _bins(lengths)
    spill = 1 + 0.5 * max(0.0, math.log2(max(lengths) / 16384))
    fft = spill * channels * points * math.log2(max(math.prod(lengths), 2))
    copy = channels * points if tiles > 1 else 0.0
    return fft, copy, mixing * bins


def _transform_cost(lengths: Sequence[int], tiles: int, channels: int, mixing: int) -> float:
    """Relative cost per image of ``tiles`` transforms of ``lengths``: FFTs, mixing, copies."""
    fft, copy, mix = _work(lengths, tiles, channels, mixing)
    return fft + CPU["fft_copy"] * copy + CPU["fft_mix"] * mix


@constant
@_memo.cached()
def tile_plan(
    padded: tuple[int, ...],
    kernel: tuple[int, ...],
    in_channels: int,
    out_channels: int,
    groups: int,
    whole: tuple[int, ...] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """How to transform: outputs per tile and FFT length per dim, cheapest first.

    One tile (the whole padded input, transformed at a fast length of at least ``whole``,
    by default ``padded``: see :func:`whole_extents`) along a dim is the plain FFT method;
    more tiles is overlap-save, each tile ``block + kernel - 1`` long and transformed at a
    fast length.

    Returns:
        ``(block, lengths)``: valid outputs per tile and transform length, per dim.
    """
    channels = in_channels + out_channels
    mixing = in_channels * out_channels // groups
    choices = []
    for p, k, e in zip(padded, kernel, whole or padded):
        valid = p - k + 1
        options = [(valid, fast_length(e))]  # (block, length)
        for mult in (4, 6, 8, 12, 16, 24, 32):  # shorter tiles lose to their copies
            length = fast_length(mult * k)
            block = length - k + 1
            if valid > TILE_ABOVE and block < valid and length < options[0][1]:
                options.append((block, length))
        choices.append(options)
    best: tuple[float, tuple[int, ...], tuple[int, ...]] = (math.inf, (), ())
    for combo in itertools.product(*choices):
        blocks = tuple(b for b, _ in combo)
        lengths = tuple(n for _, n in combo)
        tiles = math.prod(ceil_div(p - k + 1, b) for p, k, b in zip(padded, kernel, blocks))
        # The kernels' transform, once per call, weighed against one image's work. Without
        # it, 32 x 32 channels of 16384 points went whole: 104 ms instead of 5.6 in tiles.
        # (Where the spectrum is kept between calls, longer tiles would do: 1-D K1024 of
        # the bench runs 10.2-10.8 ms in these tiles, 9.5 in those.)
        cost = _transform_cost(lengths, tiles, channels, mixing)
        cost += CPU["fft_kernel"] * mixing * _bins(lengths) * kernel[0]
        if cost < best[0]:
            best = (cost, blocks, lengths)
    return best[1], best[2]


def fft_work(spec: ConvSpec, batch: int, out_channels: int) -> dict[str, float]:
    """The work of :func:`fft_conv` for this convolution, by kind (see the weights above):
    ``fft`` butterflies, ``copy`` tile points, ``mix`` and ``kernel`` multiply-adds; and
    ``spectrum``, the complex numbers of the transformed kernel."""
    kernel, padded = spec.span, spec.padded_size
    blocks, lengths = tile_plan(
        padded, kernel, spec.in_channels, out_channels, spec.groups, whole_extents(spec)
    )
    tiles = math.prod(ceil_div(p - k + 1, b) for p, k, b in zip(padded, kernel, blocks))
    channels = spec.in_channels + out_channels
    mixing = spec.in_channels * out_channels // spec.groups
    fft, copy, mix = _work(lengths, tiles, channels, mixing)
    bins = _bins(lengths)
    return {
        "fft": batch * fft,
        "copy": batch * copy,
        "mix": batch * mix,
        "kernel": mixing * bins * kernel[0],
        "spectrum": mixing * bins,
    }


@constant
@_memo.cached()
def whole_extents(spec: ConvSpec) -> tuple[int, ...]:
    """Per dim, the least length of a whole (untiled) transform.

    With zero padding, the input is transformed unpadded, and a circular correlation reads
    zeros wherever the padding would be, provided the length is at least ``n + before`` and
    ``n + after`` (and holds the valid outputs and the kernel): the kernel's spectrum is
    shifted by ``before`` instead (see :func:`prepare_fft`). For "same" padding that is
    ``n + span / 2`` instead of ``n + span``: a long depthwise kernel (K = L - 1) transforms
    at 1.5 L, not 2 L. Other padding modes pad explicitly.
    """
    if spec.padding_mode != "zeros":
        return spec.padded_size
    return tuple(
        max(n + b, n + a, p - k + 1, k)
        for n, (b, a), p, k in zip(spec.input_size, spec.pairs, spec.padded_size, spec.span)
    )


# --- the method's cost ------------------------------------------------------------------
def seconds(work: Workload) -> float:
    """Predicted time of the FFT method: transforming the kernel included, unless its
    spectrum is ``work.kept`` from an earlier call; by the compiled 1-D kernel where it
    applies (:func:`.overlap_save.applies`); plus the backward pass of each gradient
    ``work.grads`` wants (of the input, of the kernel)."""
    compiled = overlap_save.applies(work.spec, work.device, work.dtype, work.out_channels)
    forward = _forward_seconds(work, compiled)
    want_x, want_w = work.grads
    if compiled:  # both gradients compiled too, but the kernel's where its sums do not fit
        factor, on_torch = overlap_save.backward_factor(work.spec, work.out_channels, work.grads)
        if not on_torch:
            return forward * factor
        torch_path = _forward_seconds(dataclasses.replace(work, kept=False), False)
        return forward * factor + CPU["fft_backward_w"] * torch_path
    return forward * (1 + CPU["fft_backward_x"] * want_x + CPU["fft_backward_w"] * want_w)


def _forward_seconds(work: Workload, compiled: bool) -> float:
    batch, out_channels, spec, kept = work.batch, work.out_channels, work.spec, work.kept
    c = CUDA if work.device == "cuda" else CPU
    counts = fft_work(spec, batch, out_channels)
    prepare = c["fft_prepare_overhead"] + c["fft_prepare_per_byte"] * 8 * counts["spectrum"]
    if compiled:
        seconds = overlap_save.seconds(batch, out_channels, spec)
        return seconds if kept else seconds + prepare  # the transform, as fitted for torch's path
    units = (
        counts["fft"]
        + c["fft_copy"] * counts["copy"]
        + c["fft_mix"] * counts["mix"]
        + c["fft_kernel"] * counts["kernel"]
    )
    seconds = c[f"fft_unit_{spec.ndim}d"] * units + c["fft_overhead"]
    if kept:
        prepare += c["fft_prepare_per_kernel"] * counts["kernel"]
        seconds = max(seconds - prepare, seconds / 2)  # the fit is rough: never below half
    return seconds


# A spectrum up to this size is also kept with its kernel tensor (the last input size's
# only), so that a fixed kernel convolved again and again is transformed once: the
# transform takes 124 us of a 0.65 ms 256 x 256 convolution with a 7 x 7 kernel.
SMALL_SPECTRUM_BYTES = 4 * 2**20


def spectrum_kept(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None) -> bool:
    """Whether :func:`.run.run` keeps this kernel's spectrum between calls."""
    if cache is not None:
        return True
    if any(wanted_grads(w)) or w.is_inference():
        return False
    return _spectrum_bytes(spec, w.shape[0], x.dtype == torch.float64) <= SMALL_SPECTRUM_BYTES


@constant
@_memo.cached()
def _spectrum_bytes(spec: ConvSpec, out_channels: int, double: bool) -> int:
    return int(fft_work(spec, 1, out_channels)["spectrum"]) * (16 if double else 8)


def memory(work: Workload) -> float:
    """Extra peak bytes of a training step: the kernel's spectrum (``C_out * C_in / groups``
    transforms; twice, as it is made and as its gradient), the tiles' spectra of input,
    output and their gradients, and the real outputs. Measured: 79 MB at N4 C16 O16
    128x128 K9 (direct: 16 MB; the kernel's spectra alone are 20 MB each), 114 MB at
    N8 C64 56x56 K31 depthwise, 50 MB at N4 C64 L4096 K4095 depthwise."""
    batch, out_channels, spec = work.batch, work.out_channels, work.spec
    counts = fft_work(spec, batch, out_channels)
    bins = counts["mix"] * spec.groups / (spec.in_channels * out_channels)  # per channel pair
    batch_bins = bins * (spec.in_channels + out_channels)
    outputs = batch * out_channels * math.prod(spec.output_size)
    return 16.0 * counts["spectrum"] + 24.0 * batch_bins + 8.0 * outputs
