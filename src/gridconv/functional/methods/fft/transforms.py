"""The FFT method's transforms, on torch's FFTs (Goodfellow et al. 2016, sec. 9.8).

Cross-correlation is a pointwise product of spectra: ``rfft(x) * conj(rfft(w))``. Transforms
run at fast (2-3-5-7-smooth) lengths; the channels are mixed by one batched complex matmul
per frequency; when the input is much larger than the kernel, it is cut into overlapping
tiles (overlap-save), so each transform stays a few times the kernel's size.

This module prepares a kernel, transforms an input and assembles an output, at the lengths
and tiles :mod:`.plan` picks. The compiled 1-D path has its own (:mod:`.overlap_save`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gridconv import _memo
from gridconv._shapes import ceil_div, depth_to_space, trailing
from gridconv.functional._spec import ConvSpec, dilate_kernel
from gridconv.functional.methods.fft.plan import tile_plan, whole_extents
from gridconv.functional.padding import pad


@dataclass(frozen=True)
class FFTKernel:
    """A kernel transformed for one input size: what eval-mode layers cache."""

    spectrum: Tensor  # conj(rfftn(w)): (Fn, G, Cg, Og), or (G, Og, Fn) when Cg == 1
    blocks: tuple[int, ...]
    lengths: tuple[int, ...]
    kernel: tuple[int, ...]  # dilated kernel size
    out_channels: int
    # per dim: the padding before that the circular transform supplies (its input is not
    # padded along that dim, see whole_extents), or None where the input is padded
    shifts: tuple[int | None, ...] = ()


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """FFTs run in float32 for the half-precision types, which torch.fft does not cover."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _conj_dft(w: Tensor, dim: int, length: int, half: bool, shift: int = 0) -> Tensor:
    """``conj(fft(w, n=length, dim=dim))`` (``rfft`` when ``half``): the correlation spectrum
    of ``w`` zero-padded to ``length`` and rolled back by ``shift`` (its tap ``j`` at
    ``j - shift``, mod ``length``).

    A short kernel is transformed by a matrix product with the (conjugate) DFT matrix, which
    costs ``k`` multiply-adds per frequency and keeps any memory layout; a long one by FFT.
    """
    k = w.shape[dim]
    bins = length // 2 + 1 if half else length
    double = w.dtype in (torch.float64, torch.complex128)
    complex_dtype = torch.complex128 if double else torch.complex64
    if k > 4 * math.log2(max(length, 2)):
        if half:  # a real kernel: the first transform
            spectrum = torch.fft.rfft(w, n=length, dim=dim).conj_physical()
        else:  # sum_k w[k] e^{+2 pi i f k / L}: an unnormalised inverse FFT
            spectrum = torch.fft.ifft(w.to(complex_dtype), n=length, dim=dim, norm="forward")
        if shift:
            phase = _conj_dft_matrix(1, length, bins, complex_dtype, w.device, shift)[:, 0]
            spectrum = spectrum * phase.reshape(-1, *([1] * (spectrum.ndim - dim - 1)))
        return spectrum
    dft = _conj_dft_matrix(k, length, bins, complex_dtype, w.device, shift)
    return torch.tensordot(dft, w.to(complex_dtype), dims=([1], [dim])).movedim(0, dim)


@_memo.cached(maxsize=256)
def _conj_dft_matrix(
    k: int, length: int, bins: int, dtype: torch.dtype, device: torch.device, shift: int = 0
) -> Tensor:
    """``exp(+2 pi i f (j - shift) / length)`` for ``bins`` frequencies f and ``k`` taps j."""
    f = torch.arange(bins, dtype=torch.float64, device=device)
    taps = torch.arange(-shift, k - shift, dtype=torch.float64, device=device)
    phase = (f[:, None] * taps) % length
    return torch.polar(torch.ones_like(phase), 2 * math.pi * phase / length).to(dtype)


def prepare_fft(w: Tensor, spec: ConvSpec) -> FFTKernel:
    """Transform the (dilated) kernel at the lengths :func:`.plan.tile_plan` picks for
    ``spec``."""
    d = spec.ndim
    w = w.to(compute_dtype(w.dtype))
    out_channels, group_in = w.shape[:2]
    w = dilate_kernel(w, spec.dilation)
    planned = planned_kernel(w.new_empty(0), spec, out_channels)
    kernel, lengths, shifts = planned.kernel, planned.lengths, planned.shifts
    groups = spec.groups
    # (C_out, Cg, *k) -> (*k, G, Cg, Og): transformed in place, the spectrum comes out in
    # the (frequency, group, in, out) layout of the mixing matmul.
    w = w.reshape(groups, out_channels // groups, group_in, *kernel)
    spectrum = w.permute(*range(3, 3 + d), 0, 2, 1)
    for i in reversed(range(d)):
        spectrum = _conj_dft(spectrum, i, lengths[i], half=i == d - 1, shift=shifts[i] or 0)
    spectrum = spectrum.reshape(-1, groups, group_in, out_channels // groups)  # (Fn, G, Cg, Og)
    if group_in == 1:
        spectrum = spectrum[:, :, 0].permute(1, 2, 0)  # (G, Og, Fn)
    return dataclasses.replace(planned, spectrum=spectrum.contiguous())


def planned_kernel(spectrum: Tensor, spec: ConvSpec, out_channels: int) -> FFTKernel:
    """The :class:`FFTKernel` of a kernel with ``out_channels`` for ``spec``, holding the
    given ``spectrum`` (one :func:`prepare_fft` made for the same ``spec``): the plan
    alone, without transforming anything."""
    kernel = tuple(spec.span)  # the dilated kernel's size
    blocks, lengths = tile_plan(
        spec.padded_size, kernel, spec.in_channels, out_channels, spec.groups, whole_extents(spec)
    )
    zeros = spec.padding_mode == "zeros"
    shifts = tuple(  # whole dims of zero padding: the transform supplies it
        before if zeros and b == p - k + 1 else None
        for (before, _), b, p, k in zip(spec.pairs, blocks, spec.padded_size, kernel)
    )
    return FFTKernel(spectrum, blocks, lengths, kernel, out_channels, shifts)


# The spectra go frequency-major for the mixing matmul a block of rows (images or tiles) at
# a time, so that a block's spectra stay in cache while they are scattered
# (benchmarks/results/cost-model.md#fft-blocks).
BLOCK_BYTES = 4 * 2**20
BLOCK_ROWS_MIN = 8


def _frequency_major(x_hat: Tensor, groups: int, keep: int) -> Tensor:
    """``(N, C, T, *F)`` spectra, the first ``keep`` of each row's T tiles ->
    ``(Fn, G, N * keep, Cg)``, a contiguous copy made a block of rows at a time."""
    N, C, T = x_hat.shape[:3]
    source = x_hat.reshape(N, groups, C // groups, T, -1)[:, :, :, :keep].permute(4, 1, 0, 3, 2)
    out = torch.empty(source.shape, dtype=x_hat.dtype, device=x_hat.device)
    rows = BLOCK_BYTES // (C * source.shape[0] * x_hat.element_size())  # (tile) rows per block
    if x_hat.device.type != "cpu" or not BLOCK_ROWS_MIN <= rows < N * keep:
        out.copy_(source)
    elif keep == 1:  # whole images or volumes: blocks of them
        for start in range(0, N, rows):
            out[:, :, start : start + rows] = source[:, :, start : start + rows]
    else:  # the tiles of one image at a time, in blocks of equal size
        rows = ceil_div(keep, ceil_div(keep, rows))
        for n, start in itertools.product(range(N), range(0, keep, rows)):
            out[:, :, n, start : start + rows] = source[:, :, n, start : start + rows]
    return out.reshape(source.shape[0], groups, N * keep, C // groups)


def _mixing_layout(x_hat: Tensor, kernel: FFTKernel, groups: int, keep: int) -> Tensor:
    """The input spectra as the mixing reads them, the first ``keep`` of each row's T tiles:
    ``(N, C_in, T, *F)`` -> ``(Fn, G, N * keep, Cg)``, or ``(N * keep, G, 1, Fn)`` when
    ``Cg == 1`` (a broadcast product)."""
    N, _, T = x_hat.shape[:3]
    if kernel.spectrum.ndim == 3:
        if T > 1:
            x_hat = x_hat[:, :, :keep].transpose(1, 2)
        return x_hat.reshape(N * keep, groups, 1, -1)
    return _frequency_major(x_hat, groups, keep)


def mix(xs: Tensor, kernel: FFTKernel) -> Tensor:
    """Sum over input channels of spectrum products: ``_mixing_layout`` -> ``(B, C_out, Fn)``."""
    if kernel.spectrum.ndim == 3:  # one input channel per group: a broadcast product
        y = xs * kernel.spectrum
    else:  # (Fn, G, B, Cg) @ (Fn, G, Cg, Og) -> (B, G, Og, Fn)
        y = torch.matmul(xs, kernel.spectrum).permute(2, 1, 3, 0)
    return y.reshape(y.shape[0], kernel.out_channels, -1)


def _tile_rows(x: Tensor, spec: ConvSpec, kernel: FFTKernel, T: int) -> Tensor:
    """Overlap-save tiles of a 1-D signal as one strided view of a padded copy, which the
    FFT reads in place: ``(N, C, n) -> (N * C * T, length)``, T tiles per row, of which the
    first are used and the last few, which run into the next row, are not.

    The rows are laid end to end, each ``T * block`` long, so that every tile of every row
    starts a whole number of blocks from the first: the tiles of all rows are then one
    window of length ``length`` every ``block`` points, a view the FFT reads as it is. Cut
    out as a contiguous copy, they cost 0.5 ms more in a 7.7 ms convolution (1-D, K 64).
    """
    (b,), (length,) = kernel.blocks, kernel.lengths
    N, C, n = x.shape
    row = T * b
    buffer = x.new_empty(N * C * row + length - b)  # the last row's last window runs over
    rows = buffer[: N * C * row].view(N, C, row)
    ((before, after),) = spec.pairs
    if spec.padding_mode == "zeros":
        rows[..., :before].zero_()
        rows[..., before : before + n] = x
        rows[..., before + n :].zero_()
    else:
        rows[..., : before + n + after] = pad(x, spec.pairs, spec.padding_mode)
        rows[..., before + n + after :].zero_()
    buffer[N * C * row :].zero_()
    return buffer.unfold(0, length, b)


# Tiles copied end to end cost less than the spare windows of the strided view past this
# many spare per used one (a long kernel's tiles are few and long: a spare is costly).
SPARE_TILES_MAX = 0.1


def apply_fft(x: Tensor, kernel: FFTKernel, spec: ConvSpec) -> Tensor:
    """Correlate a batched ``x`` with a prepared kernel; ``(N, C_in, *n) -> (N, C_out, *o)``."""
    xs, tiles = input_spectra(x, kernel, spec)
    return assemble(mix(xs, kernel), kernel, spec, x.shape[0], tiles).to(x.dtype)


def tiles_per_dim(kernel: FFTKernel, spec: ConvSpec) -> list[int]:
    """Overlap-save tiles per dim for this kernel's plan."""
    return [
        ceil_div(p - k + 1, b) for p, k, b in zip(spec.padded_size, kernel.kernel, kernel.blocks)
    ]


def input_spectra(x: Tensor, kernel: FFTKernel, spec: ConvSpec) -> tuple[Tensor, list[int]]:
    """The spectra of ``x``'s overlap-save tiles (or whole padded images) in the mixing's
    layout (see :func:`_mixing_layout`), and the tiles per dim."""
    x = x.to(compute_dtype(x.dtype))
    N, C = x.shape[:2]
    padded = list(spec.padded_size)
    tiles = tiles_per_dim(kernel, spec)
    # per row of the strided view: the last used tile reads up to (tiles - 1) * b + length
    spare = ceil_div(kernel.lengths[0], kernel.blocks[0]) - 1
    if spec.ndim == 1 and tiles[0] > 1 and spare <= SPARE_TILES_MAX * tiles[0]:
        T = tiles[0] + spare
        windows = _tile_rows(x, spec, kernel, T)
        x_hat, keep = torch.fft.rfft(windows, n=kernel.lengths[0]).view(N, C, T, -1), tiles[0]
    else:  # the tiles of every image as images of their own: (N * prod(tiles), C, 1, *F)
        x_hat, keep = _tile_spectra(x, kernel, spec, padded, tiles).unsqueeze(2), 1
    return _mixing_layout(x_hat, kernel, spec.groups, keep), tiles


def assemble(y_hat: Tensor, kernel: FFTKernel, spec: ConvSpec, N: int, tiles: list[int]) -> Tensor:
    """The output from the tiles' output spectra: ``(N * prod(tiles), O, Fn)`` -> inverse
    transforms, the valid part of each tile, tiles side by side, strided: ``(N, O, *o)``."""
    d = spec.ndim
    O = kernel.out_channels
    F = [*kernel.lengths[:-1], kernel.lengths[-1] // 2 + 1]
    y_hat = y_hat.reshape(-1, O, *F)
    y = torch.fft.irfftn(y_hat, s=kernel.lengths, dim=tuple(range(-d, 0)))
    y = y[trailing(slice(0, b) for b in kernel.blocks)]  # the valid part of each tile
    # (N * prod(tiles), O, *block) -> (N, O, t_1 * b_1, ..., t_d * b_d)
    y = depth_to_space(y.reshape(N, *tiles, O, *kernel.blocks), d + 1, 1, d + 2, d)
    valid = [p - k + 1 for p, k in zip(spec.padded_size, kernel.kernel)]
    return y[trailing(slice(0, v, s) for v, s in zip(valid, spec.stride))]


def _tile_spectra(
    x: Tensor, kernel: FFTKernel, spec: ConvSpec, padded: list[int], tiles: list[int]
) -> Tensor:
    """The spectra of overlap-save tiles cut out as copies (or of whole padded images):
    ``(N, C, *n) -> (N * prod(tiles), C, *F)``."""
    d = spec.ndim
    C = x.shape[1]
    # zeros after the end, so that the last tile is whole
    extra = [t * b + k - 1 - p for t, b, k, p in zip(tiles, kernel.blocks, kernel.kernel, padded)]
    implicit = _implicit(kernel, d)
    if spec.padding_mode == "zeros":  # one pass (none along dims the transform pads)
        pairs = tuple(
            (0, 0) if free else (b, a + e) for (b, a), e, free in zip(spec.pairs, extra, implicit)
        )
        x = pad(x, pairs) if any(b or a for b, a in pairs) else x
    else:
        x = pad(pad(x, spec.pairs, spec.padding_mode), tuple((0, e) for e in extra))
    for i, (b, k) in enumerate(zip(kernel.blocks, kernel.kernel)):
        size = x.shape[2 + i] if implicit[i] else b + k - 1
        x = x.unfold(2 + i, size, b)  # (N, C, t_1.., t_i, ..., tile_1.., tile_i)
    # (N, C, *tiles, *tile) -> (N * prod(tiles), C, *tile)
    x = x.permute(0, *range(2, 2 + d), 1, *range(2 + d, 2 + 2 * d))
    x = x.reshape(-1, C, *x.shape[-d:])
    return torch.fft.rfftn(x, s=kernel.lengths, dim=tuple(range(-d, 0)))


def _implicit(kernel: FFTKernel, d: int) -> tuple[bool, ...]:
    """Per dim, whether the transform supplies the zero padding (the input is unpadded)."""
    return tuple(s is not None for s in kernel.shifts) if kernel.shifts else (False,) * d
