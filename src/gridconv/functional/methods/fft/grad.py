"""The FFT method's backward pass (the chapter's eq. 9.11 and 9.13, in the frequency domain).

For ``y = crop(corr(x_padded, w))`` computed tile by tile as ``irfft(X * K)`` with the kernel
spectrum ``K = conj(rfft(w))``, the output gradient ``g`` is laid into the same tiles and
transformed once; then

- the input gradient is the adjoint, a convolution with the kernel: ``irfft(G * conj(K))``,
  each tile's result added back where the tile came from (overlap-add), padding undone;
- the kernel gradient is the correlation of the input with the output gradient:
  ``irfft(sum over tiles and images of X * conj(G))``, its first ``span`` taps.

Each is one pointwise product (or one batched matmul per frequency, mixing the channels)
of spectra the forward pass has or keeps: nothing steps back through tiles or DFT matrices.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from gridconv import _memo
from gridconv._shapes import ceil_div, interleaved, trailing
from gridconv.functional._spec import ConvSpec
from gridconv.functional.methods.fft import transforms
from gridconv.functional.methods.fft.transforms import FFTKernel
from gridconv.functional.padding import pad_adjoint


def gradient_spectra(
    g: Tensor,
    spec: ConvSpec,
    blocks: tuple[int, ...],
    lengths: tuple[int, ...],
    tiles: list[int],
    depthwise: bool,
    groups: int,
) -> Tensor:
    """The output gradient laid into the forward's tiles and transformed, in the mixing's
    layout: ``(N, O, *o)`` -> ``(Fn, G, B, Og)``, or ``(B, G, Og, Fn)`` when ``depthwise``;
    ``B = N * prod(tiles)``, tiles in the forward's order."""
    d = spec.ndim
    N, O = g.shape[:2]
    extents = [t * b for t, b in zip(tiles, blocks)]
    if all(s == 1 for s in spec.stride):  # zeros after the end, so that the last tile is whole
        spare = [e - n for e, n in zip(extents, g.shape[2:])]
        full = F.pad(g, [p for e in reversed(spare) for p in (0, e)]) if any(spare) else g
    else:  # the output gradient where the forward kept outputs, zeros between
        full = g.new_zeros(N, O, *extents)
        valid = [p - k + 1 for p, k in zip(spec.padded_size, spec.span)]
        full[trailing(slice(0, v, s) for v, s in zip(valid, spec.stride))] = g
    # (N, O, t_1 * b_1, ...) -> (N * prod(tiles), O, *b)
    full = full.reshape(N, O, *(n for t, b in zip(tiles, blocks) for n in (t, b)))
    full = full.permute(0, *(2 + 2 * i for i in range(d)), 1, *(3 + 2 * i for i in range(d)))
    full = full.reshape(-1, O, *blocks)
    g_hat = torch.fft.rfftn(full, s=lengths, dim=tuple(range(-d, 0)))  # (B, O, *F)
    B = g_hat.shape[0]
    g_hat = g_hat.reshape(B, groups, O // groups, -1)
    if depthwise:
        return g_hat
    return g_hat.permute(3, 1, 0, 2).contiguous()  # (Fn, G, B, Og)


def input_gradient(
    g_hat: Tensor,
    spectrum: Tensor,
    spec: ConvSpec,
    blocks: tuple[int, ...],
    lengths: tuple[int, ...],
    tiles: list[int],
    N: int,
    shifts: tuple[int | None, ...],
) -> Tensor:
    """``G * conj(K)`` summed over output channels, transformed back, tiles overlap-added
    and the padding undone: ``(N, C_in, *n)``. Along a dim whose ``shifts`` entry is not
    None the transform held the unpadded input: its first ``n`` points are the gradient."""
    d = spec.ndim
    if spectrum.ndim == 3 and spectrum.shape[1] == 1:  # one output per group: no sum
        gx_hat = g_hat[:, :, 0] * spectrum[:, 0].conj()
    elif spectrum.ndim == 3:  # (B, G, Og, Fn) * (G, Og, Fn), summed over Og
        gx_hat = (g_hat * spectrum.conj()).sum(2)
    else:  # (Fn, G, B, Og) @ (Fn, G, Og, Cg) -> (B, G, Cg, Fn)
        # G conj(K)^T as conj(conj(G) K^T): the conjugate copy is of the gradient's spectra,
        # not of the kernel's (C_out * C_in / groups of them)
        gx_hat = torch.matmul(g_hat.conj_physical(), spectrum.transpose(-1, -2))
        gx_hat = gx_hat.conj_physical_().permute(2, 1, 3, 0)
    C = spec.in_channels
    freq = [*lengths[:-1], lengths[-1] // 2 + 1]
    gx = torch.fft.irfftn(gx_hat.reshape(-1, C, *freq), s=lengths, dim=tuple(range(-d, 0)))
    implicit = [s is not None for s in shifts]
    extents = [  # what each tile read
        n if free else b + k - 1
        for n, b, k, free in zip(spec.input_size, blocks, spec.span, implicit)
    ]
    gx = gx[trailing(slice(0, e) for e in extents)]
    # (N * prod(tiles), C, *e) -> (N, C, t_1, e_1, t_2, e_2, ...), then overlap-add per dim
    gx = interleaved(gx.reshape(N, *tiles, C, *extents), d + 1, 1, d + 2, d)
    for i in range(d):
        gx = _overlap_add(gx, 2 + i, blocks[i])
    gx = gx[trailing(slice(0, p) for p in spec.padded_size)]
    pairs = tuple((0, 0) if free else pair for pair, free in zip(spec.pairs, implicit))
    return pad_adjoint(gx, pairs, spec.padding_mode)


def _overlap_add(t: Tensor, axis: int, block: int) -> Tensor:
    """Tiles of extent ``e`` that start ``block`` apart, summed where they overlap: the axes
    ``(T, e)`` at ``axis, axis + 1`` become one of ``(T - 1) * block + e``."""
    T, e = t.shape[axis], t.shape[axis + 1]
    t = t.movedim((axis, axis + 1), (-2, -1))
    if T == 1:
        return t[..., 0, :].movedim(-1, axis)
    lead = t.shape[:-2]
    parts = ceil_div(e, block)  # each tile, cut into block-long parts
    t = F.pad(t, (0, parts * block - e)).reshape(*lead, T, parts, block)

    def part(j: int) -> Tensor:
        return F.pad(t[..., j, :].reshape(*lead, T * block), (j * block, (parts - 1 - j) * block))

    out = part(0)
    for j in range(1, parts):
        out = out + part(j)
    return out[..., : (T - 1) * block + e].movedim(-1, axis)


def kernel_gradient(
    g_hat: Tensor,
    xs: Tensor,
    spec: ConvSpec,
    lengths: tuple[int, ...],
    out_channels: int,
    depthwise: bool,
    shifts: tuple[int | None, ...],
) -> Tensor:
    """``X * conj(G)`` summed over images and tiles, transformed back, its first ``span``
    taps, undilated: ``(C_out, C_in / groups, *kernel_size)``."""
    if depthwise:  # (B, G, 1, Fn) and (B, G, Og, Fn) -> (G, Og, Fn): sum of conj(G) X
        gw_hat = torch.linalg.vecdot(g_hat, xs, dim=0)
        group_in = 1
    else:  # (Fn, G, Og, B) @ (Fn, G, B, Cg) -> (Fn, G, Og, Cg)
        gw_hat = torch.matmul(g_hat.conj().transpose(-1, -2), xs).permute(1, 2, 3, 0)
        group_in = gw_hat.shape[2]
    freq = [*lengths[:-1], lengths[-1] // 2 + 1]
    offsets = tuple(s or 0 for s in shifts)
    gw = _first_taps(gw_hat.reshape(out_channels, group_in, *freq), lengths, spec.span, offsets)
    return gw[trailing(slice(0, None, dl) for dl in spec.dilation)]


def _first_taps(
    spectra: Tensor, lengths: tuple[int, ...], span: tuple[int, ...], shifts: tuple[int, ...]
) -> Tensor:
    """``irfftn(spectra, s=lengths)`` rolled forward by ``shifts``, its first ``span`` taps
    per dim, computing only those taps:
    along a dim where the kernel is short against the transform, a matrix product with the
    inverse DFT's first rows (measured, 16 x 16 kernels of 9 x 9 at 140 x 140: 2.4 ms
    instead of 13 for the whole inverse); elsewhere an inverse FFT, cut."""
    d = len(lengths)
    for i in range(d - 1):  # complex inverse along the leading dims
        dim = spectra.ndim - d + i
        if _by_matrix(span[i], lengths[i]):
            rows = _inverse_rows(
                span[i], lengths[i], False, spectra.dtype, spectra.device, shifts[i]
            )
            spectra = torch.tensordot(rows, spectra, dims=([1], [dim])).movedim(0, dim)
        else:
            spectra = torch.fft.ifft(spectra, dim=dim).roll(shifts[i], dim).narrow(dim, 0, span[i])
    if _by_matrix(span[-1], lengths[-1]):  # the real inverse along the last
        rows = _inverse_rows(span[-1], lengths[-1], True, spectra.dtype, spectra.device, shifts[-1])
        return torch.matmul(spectra, rows).real
    taps = torch.fft.irfft(spectra, n=lengths[-1], dim=-1)
    return (taps.roll(shifts[-1], -1) if shifts[-1] else taps)[..., : span[-1]]


def _by_matrix(taps: int, length: int) -> bool:
    return taps <= 4 * math.log2(max(length, 2))


@_memo.cached(maxsize=256)
def _inverse_rows(
    taps: int, length: int, real: bool, dtype: torch.dtype, device: torch.device, shift: int = 0
) -> Tensor:
    """Outputs ``-shift .. taps - shift - 1`` (mod ``length``) of an inverse DFT of ``length``
    as a matrix: ``(taps, length)`` for a complex one; ``(length // 2 + 1, taps)`` for a real
    one (Hermitian weights folded in: twice each bin that stands for its mirror too)."""
    bins = length // 2 + 1 if real else length
    f = torch.arange(bins, dtype=torch.float64, device=device)
    j = torch.arange(-shift, taps - shift, dtype=torch.float64, device=device)
    phase = 2 * math.pi * ((f[:, None] * j) % length) / length  # (bins, taps)
    scale = torch.full((bins, 1), 1.0 / length, dtype=torch.float64, device=device)
    if real:
        scale[1:] *= 2
        if length % 2 == 0:
            scale[-1] /= 2  # the Nyquist bin has no mirror
    rows = torch.polar(scale.expand_as(phase).contiguous(), phase).to(dtype)
    return rows if real else rows.T.contiguous()


# --- the backward pass, composed -------------------------------------------------------------
def gradients(
    g: Tensor,
    kernel: FFTKernel,
    xs: Tensor | None,
    spec: ConvSpec,
    tiles: list[int],
    N: int,
    want_x: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """The input gradient (if ``want_x``) and the kernel gradient (if ``xs``, the input's
    spectra in the mixing's layout, is given), in the compute dtype."""
    depthwise = kernel.spectrum.ndim == 3
    g = g.to(transforms.compute_dtype(g.dtype))
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


def double_backward(
    x: Tensor, w: Tensor, g: Tensor, spec: ConvSpec, want_x: bool, want_w: bool
) -> tuple[Tensor | None, Tensor | None]:
    """The gradients from ``x`` and ``w`` by differentiable ops, for autograd to go through."""
    kernel = transforms.prepare_fft(w, spec)
    xs = transforms.input_spectra(x, kernel, spec)[0] if want_w else None
    gx, gw = gradients(
        g, kernel, xs, spec, transforms.tiles_per_dim(kernel, spec), x.shape[0], want_x
    )
    return cast(gx, x), cast(gw, w)


def cast(t: Tensor | None, like: Tensor) -> Tensor | None:
    """``t`` in the dtype of ``like`` (None stays None)."""
    return None if t is None else t.to(like.dtype)
