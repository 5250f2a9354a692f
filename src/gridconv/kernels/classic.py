"""Hand-designed kernels (sec. 9.9): derivative filters, smoothing and oriented edges.

Every function returns conv-ready weights ``(C_out, 1, *kernel)`` for
:func:`gridconv.conv`, which is a cross-correlation: ``sobel()[0]`` applied to an image
that brightens to the right gives a positive response.

Centres: a kernel of size ``k`` is centred at ``(k - 1) / 2``; an even size puts the centre
between the two middle cells, so its taps sit at half-integer offsets (the Gaussian, the
difference of Gaussians and the oriented edges stay symmetric).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from gridconv._checks import check_int
from gridconv._shapes import ntuple, ntuple_float


def _check_ndim(ndim: object) -> int:
    d = check_int("ndim", ndim, minimum=1)
    if d > 3:
        raise ValueError(f"`ndim` must be 1, 2 or 3, got {d}.")
    return d


def offsets(size: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Each cell's offset from the centre ``(size - 1) / 2``: ``-2, -1, 0, 1, 2`` for 5.

    Shape:
        Output: ``(size,)``
    """
    return torch.arange(size, dtype=dtype) - (size - 1) / 2


def _outer(vectors: Sequence[Tensor]) -> Tensor:
    out = vectors[0]
    for v in vectors[1:]:
        out = out.unsqueeze(-1) * v
    return out


def _derivative_bank(smooth: list[float], ndim: int, dtype: torch.dtype | None) -> Tensor:
    """One kernel per spatial dim: the central difference along it, ``smooth`` across it."""
    diff = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    across = torch.tensor(smooth, dtype=torch.float64)
    bank = [_outer([diff if j == i else across for j in range(ndim)]) for i in range(ndim)]
    return torch.stack(bank)[:, None].to(dtype or torch.get_default_dtype())


def sobel(ndim: int = 2, *, dtype: torch.dtype | None = None) -> Tensor:
    """Sobel derivative kernels: ``[-1, 0, 1]`` along one dim, ``[1, 2, 1]`` along the others.

    Kernel ``i`` differentiates along spatial dim ``i`` (for 2-D: 0 is vertical, rows; 1 is
    horizontal, columns), as ``scipy.ndimage.sobel(axis=i)``.

    Shape:
        Output: ``(ndim, 1, 3, ..., 3)``

    Example:
        >>> import gridconv as gc
        >>> gc.kernels.sobel()[1, 0].tolist()
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]
    """
    return _derivative_bank([1.0, 2.0, 1.0], _check_ndim(ndim), dtype)


def prewitt(ndim: int = 2, *, dtype: torch.dtype | None = None) -> Tensor:
    """Prewitt derivative kernels: ``[-1, 0, 1]`` along one dim, ``[1, 1, 1]`` along the others.

    Shape:
        Output: ``(ndim, 1, 3, ..., 3)``
    """
    return _derivative_bank([1.0, 1.0, 1.0], _check_ndim(ndim), dtype)


def laplacian(ndim: int = 2, *, diagonal: bool = False, dtype: torch.dtype | None = None) -> Tensor:
    """The discrete Laplacian: the sum of second differences ``[1, -2, 1]`` along each dim
    (``scipy.ndimage.laplace``), or with ``diagonal=True`` every neighbour of the 3^d block
    at weight 1 and the centre at ``1 - 3^d``.

    Shape:
        Output: ``(1, 1, 3, ..., 3)``

    Example:
        >>> import gridconv as gc
        >>> gc.kernels.laplacian()[0, 0].tolist()
        [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]
    """
    d = _check_ndim(ndim)
    if diagonal:
        w = torch.ones((3,) * d, dtype=torch.float64)
    else:
        w = torch.zeros((3,) * d, dtype=torch.float64)
        for i in range(d):
            index = [1] * d
            for j in (0, 2):
                index[i] = j
                w[tuple(index)] = 1.0
    w[(1,) * d] -= w.sum()
    return w[None, None].to(dtype or torch.get_default_dtype())


def _default_size(sigma: Sequence[float]) -> tuple[int, ...]:
    """``2 * ceil(3 sigma) + 1``: the central 99.7 % of a Gaussian, odd."""
    return tuple(2 * math.ceil(3 * s) + 1 for s in sigma)


def _gaussian(size: Sequence[int], sigma: Sequence[float]) -> Tensor:
    vectors = [torch.exp(-(offsets(k) ** 2) / (2 * s**2)) for k, s in zip(size, sigma)]
    w = _outer(vectors)
    return w / w.sum()


def gaussian(
    sigma: float | Sequence[float],
    size: int | Sequence[int] | None = None,
    *,
    ndim: int = 2,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """A normalised Gaussian, ``exp(-sum_i x_i^2 / (2 sigma_i^2))``, summing to 1.

    Args:
        sigma: the width, one number or one per dim.
        size: cells per dim; defaults to ``2 * ceil(3 sigma) + 1``. Even sizes are centred
            between the middle cells.
        ndim: 1, 2 or 3 spatial dims.

    Shape:
        Output: ``(1, 1, *size)``

    Example:
        >>> import gridconv as gc
        >>> gc.kernels.gaussian(1.0).shape, gc.kernels.gaussian(2.0, 5, ndim=1).shape
        (torch.Size([1, 1, 7, 7]), torch.Size([1, 1, 5]))
    """
    d = _check_ndim(ndim)
    sigma = ntuple_float("sigma", sigma, d)
    size = _default_size(sigma) if size is None else ntuple("size", size, d)
    return _gaussian(size, sigma)[None, None].to(dtype or torch.get_default_dtype())


def difference_of_gaussians(
    sigma: float | Sequence[float],
    surround: float | Sequence[float],
    size: int | Sequence[int] | None = None,
    *,
    ndim: int = 2,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """A centre-surround kernel: ``gaussian(sigma) - gaussian(surround)`` at one size.

    Both Gaussians sum to 1, so the kernel sums to 0 (up to truncation): it ignores flat
    regions and answers blobs of about ``sigma``'s width, like retinal ganglion cells.

    Args:
        sigma: the centre's width; ``surround`` the surround's (usually ``1.6 * sigma``).
        size: defaults to the surround's Gaussian's.

    Shape:
        Output: ``(1, 1, *size)``
    """
    d = _check_ndim(ndim)
    centre = ntuple_float("sigma", sigma, d)
    outer = ntuple_float("surround", surround, d)
    size = _default_size(outer) if size is None else ntuple("size", size, d)
    w = _gaussian(size, centre) - _gaussian(size, outer)
    return w[None, None].to(dtype or torch.get_default_dtype())


def box(size: int | Sequence[int], *, ndim: int = 2, dtype: torch.dtype | None = None) -> Tensor:
    """The mean over a box: every cell ``1 / prod(size)``.

    Shape:
        Output: ``(1, 1, *size)``
    """
    d = _check_ndim(ndim)
    size = ntuple("size", size, d)
    return torch.full((1, 1, *size), 1 / math.prod(size), dtype=dtype or torch.get_default_dtype())


def oriented_edges(
    size: int,
    angles: int | Sequence[float],
    *,
    sigma: float | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Edge detectors at any angle: the derivative of a Gaussian along each direction.

    Kernel ``k`` is ``(x cos a + y sin a) * exp(-(x^2 + y^2) / (2 sigma^2))``, normalised,
    with ``x`` to the right (columns) and ``y`` downwards (rows). Correlating with it
    (:func:`gridconv.conv`) takes the smoothed derivative along direction ``a``: the
    response is largest at an edge across ``a`` that brightens along it. The kernels are
    steerable: the one at ``a`` is ``cos a`` times the one at 0 plus ``sin a`` times the one
    at ``pi / 2``.

    Args:
        size: cells per side.
        angles: a count ``n`` (evenly spaced in ``[0, 2 pi)``) or the angles in radians.
        sigma: the Gaussian's width; defaults to ``size / 6``.

    Shape:
        Output: ``(len(angles), 1, size, size)``, each kernel with unit L2 norm.

    Example:
        >>> import gridconv as gc
        >>> gc.kernels.oriented_edges(7, 8).shape
        torch.Size([8, 1, 7, 7])
    """
    size = check_int("size", size, minimum=2)
    if isinstance(angles, bool):
        raise TypeError(f"`angles` must be an int or a sequence of angles, got {angles!r}.")
    if isinstance(angles, int):
        count = check_int("angles", angles, minimum=1)
        angles = [2 * math.pi * i / count for i in range(count)]
    if not isinstance(angles, Sequence) or not angles:
        raise ValueError(f"`angles` must be a count or a non-empty sequence, got {angles!r}.")
    s = size / 6 if sigma is None else ntuple_float("sigma", sigma, 1)[0]
    t = offsets(size)
    y, x = t[:, None], t[None, :]
    envelope = torch.exp(-(x**2 + y**2) / (2 * s**2))
    a = torch.tensor([float(v) for v in angles], dtype=torch.float64)[:, None, None]
    w = (x * torch.cos(a) + y * torch.sin(a)) * envelope
    w = w / w.flatten(1).norm(dim=1)[:, None, None]
    return w[:, None].to(dtype or torch.get_default_dtype())
