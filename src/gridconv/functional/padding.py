"""Padding modes as index maps, and their adjoints.

Every mode is described by one map per dim: padded position -> source index in the input
(``-1`` for a zero). ``pad`` gathers with it, ``pad_adjoint`` scatters-adds back with it,
and ``conv_matrix`` builds its sparsity pattern from it, so the three agree by construction.
Unlike ``torch.nn.functional.pad``, any amount of padding works in every mode; past one
period, ``reflect`` and ``circular`` keep reflecting or wrapping, as ``numpy.pad`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gridconv._shapes import PaddingPairs

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def padding_index(
    size: int, before: int, after: int, mode: str, device: torch.device | None = None
) -> Tensor:
    """For each of the ``before + size + after`` padded positions, the input index it copies.

    ``mode="zeros"`` marks the padded cells with ``-1``. ``"reflect"`` mirrors without
    repeating the edge (``numpy.pad(mode="reflect")``), ``"replicate"`` repeats the edge,
    ``"circular"`` wraps around.

    Shape:
        Output: ``(before + size + after,)``, int64.

    Example:
        >>> padding_index(3, 2, 2, "reflect").tolist()
        [2, 1, 0, 1, 2, 1, 0]
        >>> padding_index(3, 1, 1, "zeros").tolist()
        [-1, 0, 1, 2, -1]
    """
    i = torch.arange(-before, size + after, device=device)
    if mode == "zeros":
        return torch.where((i >= 0) & (i < size), i, -1)
    if mode == "circular":
        return i.remainder(size)
    if mode == "replicate":
        return i.clamp(0, size - 1)
    if size == 1:  # reflecting a single element repeats it, as numpy does
        return torch.zeros_like(i)
    period = 2 * (size - 1)
    m = i.remainder(period)
    return torch.where(m < size, m, period - m)


def pad(x: Tensor, pairs: PaddingPairs, mode: str = "zeros") -> Tensor:
    """Pad the last ``len(pairs)`` dims of ``x`` by ``(before, after)`` cells each.

    Shape:
        - Input: ``(*, n_1, ..., n_d)``
        - Output: ``(*, n_1 + b_1 + a_1, ..., n_d + b_d + a_d)``
    """
    d = len(pairs)
    flat = [v for before, after in reversed(pairs) for v in (before, after)]
    if not any(flat):
        return x
    if mode == "zeros":
        return F.pad(x, flat)
    sizes = x.shape[-d:]
    if x.ndim in (d + 1, d + 2) and all(max(p) < n for p, n in zip(pairs, sizes)):
        return F.pad(x, flat, mode=mode)  # torch's kernel pads every dim in one pass
    for dim, (before, after) in enumerate(pairs):
        if before or after:
            axis = x.ndim - d + dim
            index = padding_index(x.shape[axis], before, after, mode, x.device)
            x = x.index_select(axis, index)
    return x


def pad_adjoint(g: Tensor, pairs: PaddingPairs, mode: str = "zeros") -> Tensor:
    """The adjoint (transpose) of :func:`pad`: each padded cell's value is added back onto
    the input cell it was copied from; zero padding is simply cropped away.

    ``<pad(x), g> == <x, pad_adjoint(g)>`` for every ``x`` and ``g``.

    Shape:
        - Input: ``(*, n_1 + b_1 + a_1, ..., n_d + b_d + a_d)``
        - Output: ``(*, n_1, ..., n_d)``
    """
    d = len(pairs)
    for dim, (before, after) in enumerate(pairs):
        if not (before or after):
            continue
        axis = g.ndim - d + dim
        size = g.shape[axis] - before - after
        if mode == "zeros":
            g = g.narrow(axis, before, size)
        else:
            shape = list(g.shape)
            shape[axis] = size
            index = padding_index(size, before, after, mode, g.device)
            g = g.new_zeros(shape).index_add(axis, index, g)
    return g
