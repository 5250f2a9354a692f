"""Pooling (sec. 9.3): a summary statistic of each neighbourhood, across channels, or over
regions that scale with the input (spatial pyramid pooling, He et al. 2014).

Padding never changes the statistic: padded cells are left out of the max, the mean, the
norm and the weighted mean (``count_include_pad=False`` in torch's terms, for every method).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gridconv._checks import check_choice, check_int, check_tensor, describe
from gridconv._shapes import (
    Padding,
    ceil_div,
    check_kernel_fits,
    ntuple,
    ntuple_float,
    parse_padding,
    resolve_padding,
)
from gridconv.functional import _pool_op
from gridconv.functional._spec import TORCH_CONV
from gridconv.functional._trace import exporting
from gridconv.functional.padding import pad

METHODS = ("max", "avg", "lp", "gaussian")
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_ADAPTIVE: dict[str, dict[int, Callable[..., Any]]] = {
    "max": {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d},
    "avg": {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d},
}


def check_p(p: object) -> float:
    """``p`` as a float, which must be finite and > 0."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not p > 0 or math.isinf(p):
        raise ValueError(f"`p` must be a finite number > 0, got {describe(p)}.")
    return float(p)


def _check_cells(x: Tensor, first: int = 2) -> None:
    """Every dim of ``x`` from ``first`` on (the spatial dims, or the channels too) holds at
    least one cell: torch's pooling kernels raise their own ``RuntimeError`` otherwise."""
    if any(n == 0 for n in x.shape[first:]):
        what = (
            "channel and one cell in every spatial dim"
            if first < 2
            else "cell in every spatial dim"
        )
        raise ValueError(f"`x` must have at least one {what}; got shape {tuple(x.shape)}.")


def _windows(
    size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pairs: Sequence[tuple[int, int]],
    ceil_mode: bool,
) -> tuple[tuple[int, int], ...]:
    """The padding that makes every window fit: ``pairs``, with cells added at the end.

    With ``ceil_mode`` a last, partial window is kept when it starts inside the input or the
    padding before it, as torch does.
    """
    full = []
    for n, k, s, (b, a) in zip(size, kernel, stride, pairs):
        span = n + b + a - k
        o = (ceil_div(span, s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + b:
            o -= 1
        full.append((b, (o - 1) * s + k - n - b))
    return tuple(full)


def gaussian_window(kernel_size: Sequence[int], sigma: Sequence[float]) -> Tensor:
    """``exp(-d^2 / (2 sigma^2))`` of each cell's distance from the window's centre.

    Shape:
        Output: ``kernel_size``, float64, peak 1.
    """
    w = torch.ones((), dtype=torch.float64)
    for k, s in zip(kernel_size, sigma):
        t = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
        w = w.unsqueeze(-1) * torch.exp(-(t**2) / (2 * s**2))
    return w


def pool(
    x: Tensor,
    kernel_size: int | Sequence[int],
    *,
    stride: int | Sequence[int] | None = None,
    padding: Padding = "valid",
    method: str = "max",
    p: float = 2.0,
    sigma: float | Sequence[float] | None = None,
    ceil_mode: bool = False,
) -> Tensor:
    """Summarise every ``kernel_size`` window of ``x``: max, mean, Lp norm or Gaussian mean.

    The number of spatial dims (1, 2 or 3) is ``len(kernel_size)`` when it is a sequence, else
    ``x.ndim - 2``. Padded cells never enter the statistic: a window at the border summarises
    only the input cells it covers.

    Args:
        x: ``(N, C, *spatial)``, or unbatched ``(C, *spatial)`` with a sequence ``kernel_size``.
        kernel_size: int or one per spatial dim.
        stride: defaults to ``kernel_size`` (non-overlapping windows).
        padding: every form of :func:`gridconv.conv` (``"valid"``, ``"same"``, ``"full"``,
            ints, ``(before, after)`` pairs). Every window must cover at least one input cell.
        method: ``"max"``; ``"avg"``; ``"lp"``, ``(sum |x|^p)^(1/p)`` (``p=2``: L2-norm pooling);
            ``"gaussian"``, the mean weighted by ``exp(-d^2 / (2 sigma^2))`` of each cell's
            distance ``d`` from the window centre.
        p: the exponent of ``"lp"``, > 0.
        sigma: the width of ``"gaussian"``, per dim; defaults to ``kernel_size / 4``.
        ceil_mode: keep a last partial window, as torch's ``ceil_mode``.

    Shape:
        - x: ``(N, C, n_1, ..., n_d)``
        - Output: ``(N, C, o_1, ..., o_d)``, ``o_i = floor((n_i + before_i + after_i - k_i)
          / stride_i) + 1`` (``ceil`` with ``ceil_mode``, less a window that would start in
          the padding after the input).

    Raises:
        ValueError: an unknown method, ``p <= 0``, ``sigma <= 0``, a kernel larger than the
            padded input, a window made of padding only, a non-positive stride.

    Example:
        >>> import torch, gridconv as gc
        >>> x = torch.tensor([[[1.0, -3.0, 2.0, 4.0, 0.0]]])
        >>> # windows [pad, 1], [-3, 2], [4, 0]
        >>> gc.pool(x, 2, method="max", padding=[(1, 0)]).tolist()
        [[[1.0, 2.0, 4.0]]]
        >>> gc.pool(x, 2, method="avg", padding=[(1, 0)]).tolist()  # the pad is not counted
        [[[1.0, -0.5, 2.0]]]
    """
    x = check_tensor("x", x)
    d = len(kernel_size) if isinstance(kernel_size, Sequence) else x.ndim - 2
    batched = x.ndim == d + 2
    if d not in (1, 2, 3) or x.ndim not in (d + 1, d + 2):
        raise ValueError(
            f"`x` must have shape (N, C, *spatial) or (C, *spatial) with 1, 2 or 3 spatial dims "
            f"(as many as `kernel_size` gives); got shape {tuple(x.shape)}."
        )
    if not batched:
        return pool(
            x[None],
            kernel_size,
            stride=stride,
            padding=padding,
            method=method,
            p=p,
            sigma=sigma,
            ceil_mode=ceil_mode,
        )[0]
    _check_cells(x, first=1)
    method = check_choice("method", method, METHODS)
    kernel = ntuple("kernel_size", kernel_size, d)
    stride = kernel if stride is None else ntuple("stride", stride, d)
    size = tuple(x.shape[2:])
    pairs = resolve_padding(parse_padding(padding, d), size, kernel, stride, (1,) * d)
    check_kernel_fits(size, kernel, pairs, (1,) * d)
    for dim, ((b, a), k) in enumerate(zip(pairs, kernel)):
        if b >= k or a >= k:
            raise ValueError(
                f"`padding` {pairs[dim]} in spatial dim {dim} must be less than `kernel_size` "
                f"(={k}): a window of padding only has no statistic."
            )
    full = _windows(size, kernel, stride, pairs, bool(ceil_mode))
    if method == "max":  # padded with -inf, which no window's max can be
        xp = F.pad(x, [v for pair in reversed(full) for v in pair], value=-math.inf)
        if torch.compiler.is_compiling() and not exporting() and x.device.type == "cpu":
            return _pool_op.max_pool(xp, kernel, stride)  # ATen's kernel, opaque to inductor
        return _MAX_POOL[d](xp, kernel, stride)
    mask = pad(x.new_ones(1, 1, *size), full, "zeros")  # 1 on input cells, 0 on padding
    if method == "gaussian":
        sig = [k / 4 for k in kernel] if sigma is None else sigma
        sig = ntuple_float("sigma", sig, d)
        w = gaussian_window(kernel, sig).to(x.dtype).to(x.device)
        C = x.shape[1]
        num = TORCH_CONV[d](pad(x, full, "zeros"), w.expand(C, 1, *kernel), None, stride, 0, 1, C)
        den = TORCH_CONV[d](mask, w.expand(1, 1, *kernel), None, stride)
        return num / den
    if method == "lp":
        p = check_p(p)
        s = _AVG_POOL[d](pad(x.abs().pow(p), full, "zeros"), kernel, stride)
        s = s * math.prod(kernel)
        return torch.where(s > 0, s.clamp_min(torch.finfo(s.dtype).tiny).pow(1 / p), 0.0)
    total = _AVG_POOL[d](pad(x, full, "zeros"), kernel, stride)
    return total / _AVG_POOL[d](mask, kernel, stride)


def channel_pool(x: Tensor, pool_size: int, *, method: str = "max", p: float = 2.0) -> Tensor:
    """Pool groups of ``pool_size`` adjacent channels (sec. 9.3; maxout, Goodfellow et al. 2013).

    Pooling over the outputs of separately parametrised filters lets a layer learn which
    transformations to become invariant to, rotations for example.

    Args:
        x: ``(N, C, *spatial)`` (any number of spatial dims, also none).
        pool_size: channels per group; must divide ``C``.
        method: ``"max"``, ``"avg"`` or ``"lp"``.
        p: the exponent of ``"lp"``.

    Shape:
        ``(N, C, *spatial) -> (N, C / pool_size, *spatial)``

    Example:
        >>> import torch, gridconv as gc
        >>> x = torch.tensor([[1.0, 5.0, -2.0, 3.0]])
        >>> gc.channel_pool(x, 2).tolist()
        [[5.0, 3.0]]
    """
    x = check_tensor("x", x)
    if x.ndim < 2:
        raise ValueError(f"`x` must have shape (N, C, *spatial), got shape {tuple(x.shape)}.")
    k = check_int("pool_size", pool_size, minimum=1)
    method = check_choice("method", method, ("max", "avg", "lp"))
    C = x.shape[1]
    if C % k:
        raise ValueError(f"`pool_size` (={k}) must divide the channels of `x` (={C}).")
    groups = x.reshape(x.shape[0], C // k, k, *x.shape[2:])
    if method == "max":
        return groups.amax(2)
    if method == "avg":
        return groups.mean(2)
    p = check_p(p)
    s = groups.abs().pow(p).sum(2)
    return torch.where(s > 0, s.clamp_min(torch.finfo(s.dtype).tiny).pow(1 / p), 0.0)


def pyramid_pool(x: Tensor, levels: Sequence[int] = (1, 2, 4), *, method: str = "max") -> Tensor:
    """Spatial pyramid pooling (He et al. 2014): a fixed-length vector from any input size.

    At level ``L`` the input is cut into ``L`` bins per dim (bin ``i`` spans
    ``[floor(i n / L), ceil((i + 1) n / L))``) and each bin is pooled; the bins of all levels
    are concatenated, so a network ending with it takes inputs of any size.

    Args:
        x: ``(N, C, *spatial)`` with 1, 2 or 3 spatial dims.
        levels: bins per dim at each level, e.g. ``(1, 2, 4)``; ``(1,)`` is global pooling.
        method: ``"max"`` or ``"avg"``.

    Shape:
        ``(N, C, *spatial) -> (N, C * sum(L^d for L in levels))``, channel-major per level.

    Example:
        >>> import torch, gridconv as gc
        >>> [gc.pyramid_pool(torch.randn(2, 8, n, n)).shape for n in (13, 32)]
        [torch.Size([2, 168]), torch.Size([2, 168])]
    """
    x = check_tensor("x", x)
    d = x.ndim - 2
    if d not in (1, 2, 3):
        raise ValueError(
            f"`x` must have shape (N, C, *spatial) with 1, 2 or 3 spatial dims; "
            f"got shape {tuple(x.shape)}."
        )
    _check_cells(x, first=1)
    method = check_choice("method", method, ("max", "avg"))
    if isinstance(levels, int) or not isinstance(levels, Sequence) or not levels:
        raise ValueError(
            f"`levels` must be a non-empty sequence of ints >= 1, got {describe(levels)}."
        )
    levels = [check_int("levels", level, minimum=1) for level in levels]
    pooled = [_ADAPTIVE[method][d](x, (level,) * d) for level in levels]
    if method == "max":
        pooled = [q[0] if isinstance(q, tuple) else q for q in pooled]
    return torch.cat([q.flatten(1) for q in pooled], dim=1)


def global_pool(x: Tensor, *, method: str = "avg", p: float = 2.0) -> Tensor:
    """Pool every channel over all its spatial positions: one number per channel.

    Args:
        x: ``(N, C, *spatial)``, any number of spatial dims (at least one).
        method: ``"max"``, ``"avg"`` or ``"lp"``.
        p: the exponent of ``"lp"``.

    Shape:
        ``(N, C, *spatial) -> (N, C)``

    Example:
        >>> import torch, gridconv as gc
        >>> gc.global_pool(torch.ones(2, 3, 4, 5), method="lp", p=2).tolist()[0]
        [4.4721360206604, 4.4721360206604, 4.4721360206604]
    """
    x = check_tensor("x", x)
    if x.ndim < 3:
        raise ValueError(
            f"`x` must have shape (N, C, *spatial) with at least one spatial dim; "
            f"got shape {tuple(x.shape)}."
        )
    _check_cells(x)
    # All positions of a channel as one group of "channels": (N, positions, C) -> (N, 1, C).
    positions = math.prod(x.shape[2:])
    return channel_pool(x.flatten(2).transpose(1, 2), positions, method=method, p=p)[:, 0]
