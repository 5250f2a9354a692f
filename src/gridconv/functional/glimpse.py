"""Foveated glimpses (Goodfellow et al. 2016, sec. 9.10; Mnih et al. 2014, "Recurrent Models
of Visual Attention"): a few small, sharp-to-coarse patches around a point instead of the
whole input, and a log-polar retina.

``glimpse`` builds a pyramid of block means (level k: blocks of ``scale_factor**k`` cells
per dim) and reads each scale of every image with one batched bilinear sampling
(``grid_sample``) of its level: no Python loop over images, differentiable in the input and
in the centres. At N=256, 60x60, 8x8, 3 scales: 1.3 ms, about 13x a per-image loop retina
(``benchmarks/glimpse_loop.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gridconv._checks import check_int, check_same_kind, check_tensor, describe
from gridconv._shapes import ntuple


def _check_input(x: object) -> tuple[Tensor, int]:
    x = check_tensor("x", x)
    if x.ndim not in (3, 4, 5):
        raise ValueError(
            f"`x` must have shape (N, C, *spatial) with 1, 2 or 3 spatial dims, got shape "
            f"{tuple(x.shape)}."
        )
    if any(n < 2 for n in x.shape[2:]):
        raise ValueError(f"`x` must have spatial dims of at least 2 cells, got {tuple(x.shape)}.")
    return x, x.ndim - 2


def _check_centers(centers: object, x: Tensor, d: int) -> Tensor:
    centers = check_tensor("centers", centers)
    check_same_kind(x=x, centers=centers)
    if tuple(centers.shape) != (x.shape[0], d):
        raise ValueError(
            f"`centers` must have shape (N, d) = ({x.shape[0]}, {d}): one normalised point "
            f"per image, in the order of the spatial dims; got shape {tuple(centers.shape)}."
        )
    return centers


def _sample(maps: Tensor, grid: Tensor) -> Tensor:
    """Bilinear samples of ``(B, C, *n)`` maps at ``grid`` ``(B, *size, d)`` (zeros outside);
    1-D maps go through 2-D sampling with a row of one cell."""
    if maps.ndim == 3:
        maps = maps.unsqueeze(2)
        grid = torch.cat([grid, torch.zeros_like(grid)], dim=-1).unsqueeze(1)
        return F.grid_sample(maps, grid, align_corners=True).squeeze(2)
    return F.grid_sample(maps, grid, align_corners=True)


def glimpse(
    x: Tensor,
    centers: Tensor,
    size: int | Sequence[int],
    *,
    scales: int = 1,
    scale_factor: int = 2,
) -> Tensor:
    """Foveated glimpses: ``scales`` patches of ``size`` cells around each centre, each
    covering ``scale_factor`` times the extent of the last and averaged down to ``size``.

    Scale ``k`` reads ``size * scale_factor**k`` cells around the centre, reduced to ``size``
    by averaging: it samples the input average-pooled by ``scale_factor**k`` (blocks aligned
    to the first cell; a partial last block counts cells past the end as zeros), bilinear
    between its cells, and cells outside read as zero. So scale ``k`` at the centre of a
    block equals scale 0 of the pooled input, and a centre on a cell with an odd ``size``
    gives exactly the crop at scale 0. Differentiable in ``x`` and in ``centers``.

    Args:
        x: ``(N, C, *spatial)``, 1-3 spatial dims of at least 2 cells.
        centers: ``(N, d)`` normalised coordinates in the order of the spatial dims (for
            images: row, then column); -1 and 1 are the centres of the first and last cell.
        size: cells per spatial dim of each glimpse: an int or ``d`` ints.
        scales: patches per centre.
        scale_factor: the growth of each scale's extent over the last (an int >= 1).

    Returns:
        The glimpses, scale 0 (the sharpest) first.

    Shape:
        - x: ``(N, C, n_1, ..., n_d)``; centers: ``(N, d)``
        - Output: ``(N, scales, C, s_1, ..., s_d)`` with ``s = size``.

    Raises:
        TypeError: a non-tensor or non-floating input, a non-integer ``scale_factor``.
        ValueError: ``centers`` of the wrong shape or batch size, ``size`` or ``scales``
            below 1, ``scale_factor`` below 1.

    Example:
        >>> import torch, gridconv as gc
        >>> x = torch.arange(25.0).reshape(1, 1, 5, 5)
        >>> g = gc.glimpse(x, torch.tensor([[0.0, 0.5]]), 3)  # centred on cell (2, 3)
        >>> g[0, 0, 0].tolist()
        [[7.0, 8.0, 9.0], [12.0, 13.0, 14.0], [17.0, 18.0, 19.0]]
    """
    x, d = _check_input(x)
    centers = _check_centers(centers, x, d)
    size = ntuple("size", size, d)
    scales = check_int("scales", scales, minimum=1)
    if isinstance(scale_factor, bool) or not isinstance(scale_factor, int):
        raise TypeError(f"`scale_factor` must be an int >= 1, got {describe(scale_factor)}.")
    scale_factor = check_int("scale_factor", scale_factor, minimum=1)
    N, C, *spatial = x.shape
    # Every coordinate in grid_sample's order (the last spatial dim first), so that only
    # small tensors are rearranged: per scale, the sample points are one (N, 1, d) base
    # plus one (P, d) pattern, a single add over the batch.
    factory: dict[str, Any] = {"dtype": x.dtype, "device": x.device}
    flip = list(reversed(range(d)))
    middle = ((centers.to(x.dtype) + 1) / 2)[:, flip]  # (N, d), fractions of the extent
    extent = torch.tensor([spatial[i] - 1 for i in flip], **factory)
    steps = [torch.arange(s, **factory) - (s - 1) / 2 for s in size]
    offsets = torch.stack(torch.meshgrid(*steps, indexing="ij"), dim=-1).view(-1, d)[:, flip]
    out = []
    level = x  # sums over blocks of width**d cells (zeros past the end); scaled after sampling
    for k in range(scales):
        width = scale_factor**k
        if k:
            level = _block_sum(level, scale_factor)
            if min(level.shape[2:]) == 1:  # a zero cell after a lone one (grid_sample
                # would read a dim of one cell at every point, outside it too)
                pads = [p for n in reversed(level.shape[2:]) for p in (0, int(n == 1))]
                level = F.pad(level, pads)
        # level cell i covers input cells i*w .. (i+1)*w - 1, centred at i*w + (w-1)/2; in
        # grid units (-1 and 1: the level's first and last cells) per dim of L cells:
        # 2 * ((m * extent - (w - 1) / 2) / w + offset) / (L - 1) - 1
        cells = torch.tensor([level.shape[2 + i] - 1 for i in flip], **factory)
        base = 2 * (middle * extent - (width - 1) / 2) / width / cells - 1  # (N, d)
        pattern = offsets * (2 / cells)  # (P, d)
        # added as (d, N, P), the points innermost (6x faster than (N, P, d) with d inner)
        grid = (base.T[:, :, None] + pattern.T[:, None, :]).permute(1, 2, 0)  # (N, P, d)
        sampled = _sample_points(level, grid)  # (N, C, P)
        out.append(sampled / width**d if k else sampled)
    return torch.stack(out, dim=1).view(N, scales, C, *size)


def _block_sum(x: Tensor, width: int) -> Tensor:
    """Sums of ``width``-wide blocks per spatial dim; a last, partial block counts the cells
    past the end as zeros. One dim at a time, a sum of ``width`` strided views: on (256, 1,
    60, 60), 0.13 ms for blocks of 2 x 2, against 0.29 ms summing the 4 views of each block
    and 2.8 ms for a reshaped sum (avg_pool was slower too)."""
    spare = [(-m) % width for m in x.shape[2:]]
    x = F.pad(x, [p for s in reversed(spare) for p in (0, s)]) if any(spare) else x
    if width == 1:
        return x
    for dim in range(2, x.ndim):
        every = (slice(None),) * dim + (slice(None, None, width),)  # every width-th cell
        views = [x.narrow(dim, t, x.shape[dim] - t)[every] for t in range(width)]
        total = views[0] + views[1]
        for view in views[2:]:
            total.add_(view)
        x = total
    return x


def _sample_points(x: Tensor, grid: Tensor) -> Tensor:
    """Bilinear samples of ``(B, C, *n)`` at ``(B, P, d)`` normalised points: ``(B, C, P)``."""
    B, P, d = grid.shape
    if d == 1:
        return _sample(x, grid.view(B, P, 1))
    # the points along the last output dim, which grid_sample's CPU kernel vectorises
    return _sample(x, grid.view(B, *[1] * (d - 1), P, d)).reshape(B, x.shape[1], P)


def log_polar(
    x: Tensor,
    centers: Tensor,
    *,
    rings: int,
    wedges: int,
    min_radius: float,
    max_radius: float,
) -> Tensor:
    """A log-polar retina: bilinear samples on ``rings`` circles of geometric radii around
    each centre, ``wedges`` points each, at equal angles from angle 0.

    Radius ``i`` is ``min_radius * (max_radius / min_radius) ** (i / (rings - 1))`` in
    normalised units (1 is half the image; on a non-square image a circle is an ellipse in
    cells). Angle 0 points along the columns (right), angles grow towards the first row
    (counter-clockwise as an image is shown), so rotating the image by 90 degrees about the
    centre rolls the wedge axis by a quarter. Outside the image reads as zero.
    Differentiable in ``x`` and ``centers``.

    Args:
        x: ``(N, C, H, W)``.
        centers: ``(N, 2)`` normalised (row, column), as in :func:`glimpse`.
        rings, wedges: samples along the radius and around the circle.
        min_radius, max_radius: the innermost and outermost radius, ``0 < min < max``.

    Shape:
        - x: ``(N, C, H, W)``; centers: ``(N, 2)``
        - Output: ``(N, C, rings, wedges)``

    Raises:
        TypeError: non-tensor or non-floating inputs.
        ValueError: ``x`` not 2-D, ``centers`` of the wrong shape, ``rings`` or ``wedges``
            below 1, ``min_radius`` at or below 0 or at or above ``max_radius``.

    Example:
        >>> import torch, gridconv as gc
        >>> x = torch.ones(2, 3, 32, 32)
        >>> gc.log_polar(x, torch.zeros(2, 2), rings=4, wedges=8, min_radius=0.1,
        ...              max_radius=0.8).shape
        torch.Size([2, 3, 4, 8])
    """
    x, d = _check_input(x)
    if d != 2:
        raise ValueError(f"`x` must be 2-D images (N, C, H, W), got shape {tuple(x.shape)}.")
    centers = _check_centers(centers, x, d)
    rings = check_int("rings", rings, minimum=1)
    wedges = check_int("wedges", wedges, minimum=1)
    for name, value in (("min_radius", min_radius), ("max_radius", max_radius)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"`{name}` must be a number, got {describe(value)}.")
    if not 0 < min_radius < max_radius:
        raise ValueError(
            f"`min_radius` and `max_radius` must satisfy 0 < min_radius < max_radius, got "
            f"{min_radius} and {max_radius}."
        )
    N = x.shape[0]
    steps = torch.arange(rings, dtype=x.dtype, device=x.device) / max(rings - 1, 1)
    radii = min_radius * (max_radius / min_radius) ** steps  # (rings,)
    angles = torch.arange(wedges, dtype=x.dtype, device=x.device) * (2 * math.pi / wedges)
    rows = -radii[:, None] * torch.sin(angles)  # up is a growing angle
    cols = radii[:, None] * torch.cos(angles)
    points = torch.stack([rows, cols], dim=-1)  # (rings, wedges, 2), normalised
    grid = (centers.to(x.dtype).view(N, 1, 1, 2) + points).flip(-1)
    return F.grid_sample(x, grid, align_corners=True)
