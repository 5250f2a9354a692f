"""Pooling layers: spatial windows, groups of channels (maxout), pyramids and global pooling.

Each ``forward`` is one call into :mod:`gridconv.functional.pooling`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from gridconv._checks import check_choice, check_int, describe
from gridconv._shapes import Padding, ntuple, ntuple_float, parse_padding
from gridconv.functional.pooling import (
    METHODS,
    channel_pool,
    check_p,
    global_pool,
    pool,
    pyramid_pool,
)


class Pool(nn.Module):
    """Pooling over ``num_spatial_dims`` (1, 2 or 3) spatial dims: :func:`gridconv.pool`.

    Args:
        num_spatial_dims: 1, 2 or 3.
        kernel_size, stride: int or one per spatial dim; ``stride`` defaults to the kernel.
        padding: every form of :func:`gridconv.conv`; padded cells never enter the statistic.
        method: ``"max"``, ``"avg"``, ``"lp"`` (``p=2``: L2-norm pooling) or ``"gaussian"``.
        p: the exponent of ``"lp"``.
        sigma: the width of ``"gaussian"``; defaults to ``kernel_size / 4``.
        ceil_mode: keep a last partial window.

    Shape:
        - Input: ``(N, C, n_1, ..., n_d)`` or ``(C, n_1, ..., n_d)``
        - Output: ``(N, C, o_1, ..., o_d)``, as :func:`gridconv.pool`.

    Example:
        >>> import torch, gridconv as gc
        >>> gc.nn.Pool2d(3, stride=2, padding="same", method="lp")(torch.randn(1, 4, 9, 9)).shape
        torch.Size([1, 4, 5, 5])
    """

    def __init__(
        self,
        num_spatial_dims: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: Padding = "valid",
        method: str = "max",
        p: float = 2.0,
        *,
        sigma: float | Sequence[float] | None = None,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        d = check_int("num_spatial_dims", num_spatial_dims, minimum=1)
        if d > 3:
            raise ValueError(f"`num_spatial_dims` must be 1, 2 or 3, got {d}.")
        self.kernel_size = ntuple("kernel_size", kernel_size, d)
        self.stride = self.kernel_size if stride is None else ntuple("stride", stride, d)
        self.padding = parse_padding(padding, d)
        self.method = check_choice("method", method, METHODS)
        self.p = check_p(p)
        self.sigma = None if sigma is None else ntuple_float("sigma", sigma, d)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        return pool(
            x,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            method=self.method,
            p=self.p,
            sigma=self.sigma,
            ceil_mode=self.ceil_mode,
        )

    def extra_repr(self) -> str:
        text = (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}, "
            f"method={self.method!r}"
        )
        if self.method == "lp":
            text += f", p={self.p}"
        if self.sigma is not None:
            text += f", sigma={self.sigma}"
        if self.ceil_mode:
            text += ", ceil_mode=True"
        return text


class _FixedPool(Pool):
    """:class:`Pool` for one number of spatial dims (``fixed_spatial_dims``): its whole
    signature, less ``num_spatial_dims``."""

    fixed_spatial_dims: int

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: Padding = "valid",
        method: str = "max",
        p: float = 2.0,
        *,
        sigma: float | Sequence[float] | None = None,
        ceil_mode: bool = False,
    ) -> None:
        """Build the layer; the arguments are the N-d class's after ``num_spatial_dims``."""
        super().__init__(
            self.fixed_spatial_dims, kernel_size, stride, padding, method, p, sigma=sigma,
            ceil_mode=ceil_mode,
        )  # fmt: skip


class Pool1d(_FixedPool):
    """1-d pooling: :class:`Pool` with ``num_spatial_dims=1``; same arguments after it.

    Shape:
        - Input: ``(N, C, n)``, Output: ``(N, C, o)``
    """

    fixed_spatial_dims = 1


class Pool2d(_FixedPool):
    """2-d pooling: :class:`Pool` with ``num_spatial_dims=2``; same arguments after it.

    Shape:
        - Input: ``(N, C, H, W)``, Output: ``(N, C, H_out, W_out)``
    """

    fixed_spatial_dims = 2


class Pool3d(_FixedPool):
    """3-d pooling: :class:`Pool` with ``num_spatial_dims=3``; same arguments after it.

    Shape:
        - Input: ``(N, C, D, H, W)``, Output: ``(N, C, D_out, H_out, W_out)``
    """

    fixed_spatial_dims = 3


class ChannelPool(nn.Module):
    """Pools groups of ``pool_size`` adjacent channels: :func:`gridconv.channel_pool`.

    Shape:
        - Input: ``(N, C, *spatial)``
        - Output: ``(N, C / pool_size, *spatial)``
    """

    def __init__(self, pool_size: int, method: str = "max", p: float = 2.0) -> None:
        super().__init__()
        self.pool_size = check_int("pool_size", pool_size, minimum=1)
        self.method = check_choice("method", method, ("max", "avg", "lp"))
        self.p = check_p(p)

    def forward(self, x: Tensor) -> Tensor:
        return channel_pool(x, self.pool_size, method=self.method, p=self.p)

    def extra_repr(self) -> str:
        return f"pool_size={self.pool_size}, method={self.method!r}"


class Maxout(nn.Module):
    """A layer followed by the max over groups of ``pool_size`` of its output channels.

    Goodfellow et al. 2013: a maxout unit is the max of ``pool_size`` linear pieces, so the
    layer learns a piecewise-linear activation and, pooling filters that see transformed
    versions of one pattern, invariance to that transformation (sec. 9.3, fig. 9.9).

    Args:
        layer: any module whose output is ``(N, C, ...)`` with ``pool_size`` dividing ``C``;
            for example ``gc.nn.Conv2d(1, 4 * 16, 5)`` with ``pool_size=4`` gives 16 units.
        pool_size: the pieces per unit.

    Shape:
        - Input: what ``layer`` takes
        - Output: ``(N, C / pool_size, ...)``

    Example:
        >>> import torch, gridconv as gc
        >>> unit = gc.nn.Maxout(gc.nn.Conv2d(1, 12, 3, padding="same"), pool_size=3)
        >>> unit(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 4, 8, 8])
    """

    def __init__(self, layer: nn.Module, pool_size: int) -> None:
        super().__init__()
        if not isinstance(layer, nn.Module):
            raise TypeError(f"`layer` must be a torch.nn.Module, got {describe(layer)}.")
        self.layer = layer
        self.pool_size = check_int("pool_size", pool_size, minimum=1)
        channels = getattr(layer, "out_channels", None)
        if isinstance(channels, int) and channels % self.pool_size:
            raise ValueError(
                f"`pool_size` (={self.pool_size}) must divide the layer's out_channels "
                f"(={channels})."
            )

    def forward(self, x: Tensor) -> Tensor:
        return channel_pool(self.layer(x), self.pool_size, method="max")

    def extra_repr(self) -> str:
        return f"pool_size={self.pool_size}"


class PyramidPool(nn.Module):
    """Spatial pyramid pooling (He et al. 2014): :func:`gridconv.pyramid_pool`.

    A network that ends with it maps inputs of any spatial size to ``out_features``.

    Example:
        >>> import torch, gridconv as gc
        >>> spp = gc.nn.PyramidPool((1, 2, 4))
        >>> spp.out_features(8, num_spatial_dims=2)
        168
        >>> [spp(torch.randn(1, 8, n, n)).shape[1] for n in (7, 20)]
        [168, 168]

    Shape:
        - Input: ``(N, C, *spatial)``
        - Output: ``(N, C * sum(L^d for L in levels))``
    """

    def __init__(self, levels: Sequence[int] = (1, 2, 4), method: str = "max") -> None:
        super().__init__()
        if isinstance(levels, int) or not isinstance(levels, Sequence) or not levels:
            raise ValueError(
                f"`levels` must be a non-empty sequence of ints >= 1, got {describe(levels)}."
            )
        self.levels = tuple(check_int("levels", level, minimum=1) for level in levels)
        self.method = check_choice("method", method, ("max", "avg"))

    def out_features(self, channels: int, num_spatial_dims: int = 2) -> int:
        """The length of the output vector for ``channels`` input channels."""
        return channels * sum(level**num_spatial_dims for level in self.levels)

    def forward(self, x: Tensor) -> Tensor:
        return pyramid_pool(x, self.levels, method=self.method)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, method={self.method!r}"


class GlobalPool(nn.Module):
    """One number per channel, pooled over all spatial positions: :func:`gridconv.global_pool`.

    Shape:
        - Input: ``(N, C, *spatial)``
        - Output: ``(N, C)``
    """

    def __init__(self, method: str = "avg", p: float = 2.0) -> None:
        super().__init__()
        self.method = check_choice("method", method, ("max", "avg", "lp"))
        self.p = check_p(p)

    def forward(self, x: Tensor) -> Tensor:
        return global_pool(x, method=self.method, p=self.p)

    def extra_repr(self) -> str:
        return f"method={self.method!r}"
