"""Tiled convolution layers (sec. 9.6, after Le et al. 2010): ``prod(tile_size)`` kernels
take turns over the output, between a convolution (one kernel) and a locally connected
layer (one per location). One N-d implementation, with ``1d``/``2d``/``3d`` as thin names,
and a ``from_conv`` constructor that starts every kernel of the tile from a convolution's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gridconv._shapes import Padding, ntuple
from gridconv.functional._spec import conv_spec
from gridconv.functional.tiled import tiled_conv
from gridconv.nn._config import (
    ConvLayerBase,
    bias_kind,
    build_fixed,
    conv_weight,
    init_uniform,
    store_config,
)


class TiledConv(ConvLayerBase):
    """Tiled convolution: ``prod(tile_size)`` kernels take turns over the output.

    Output location ``i`` uses kernel ``i mod tile_size`` per dim (Le et al. 2010): nearby
    units have different filters, as in a locally connected layer, but the parameters grow
    only by ``prod(tile_size)``. ``tile_size`` 1 is a convolution.

    Args:
        num_spatial_dims: 1, 2 or 3.
        in_channels, out_channels, kernel_size, stride, padding, dilation, padding_mode:
            as in :class:`gridconv.nn.Conv`.
        tile_size: int or one per dim, each at least 1.
        bias: ``True``/``"tied"`` (one per channel), ``"untied"`` (one per output location;
            needs ``input_size``) or ``False``.
        input_size: the spatial size of the inputs; needed only for an untied bias.
        device, dtype: of the parameters.

    Weights:
        ``weight`` ``(*tile_size, C_out, C_in, *kernel_size)``: ``prod(tile_size) * C_out *
        C_in * prod(kernel_size)`` weights, plus ``C_out`` (tied) or ``C_out *
        prod(out_size)`` (untied) biases.

    Shape:
        - Input: ``(N, C_in, *spatial)``
        - Output: ``(N, C_out, *out_size)``, ``out_size`` as for :class:`gridconv.nn.Conv`.

    Example:
        >>> import torch, gridconv as gc
        >>> layer = gc.nn.TiledConv2d(3, 8, 5, tile_size=2, padding="same")
        >>> layer.weight.shape
        torch.Size([2, 2, 8, 3, 5, 5])
        >>> layer(torch.randn(1, 3, 15, 15)).shape
        torch.Size([1, 8, 15, 15])
    """

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        tile_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: Padding = "valid",
        dilation: int | Sequence[int] = 1,
        bias: bool | str = True,
        *,
        input_size: int | Sequence[int] | None = None,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        d = store_config(
            self,
            num_spatial_dims,
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            padding_mode,
        )
        self.tile_size = ntuple("tile_size", tile_size, d)
        self.bias_kind = bias_kind(bias, "tied")
        self.input_size = None if input_size is None else ntuple("input_size", input_size, d)
        if self.bias_kind == "untied" and self.input_size is None:
            raise ValueError("`bias='untied'` needs `input_size`: one bias per output location.")
        bias_shape: tuple[int, ...] = (out_channels,)
        if self.input_size is not None:
            spec = conv_spec(
                (out_channels, in_channels, *self.kernel_size),
                in_channels,
                self.input_size,
                stride=self.stride,
                padding=self.padding,
                dilation=self.dilation,
                groups=1,
                padding_mode=padding_mode,
                x_name="input_size",
            )
            if self.bias_kind == "untied":
                bias_shape = (out_channels, *spec.output_size)
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(*self.tile_size, out_channels, in_channels, *self.kernel_size, **factory)
        )
        if self.bias_kind is None:
            self.register_parameter("bias", None)
        else:
            self.bias = nn.Parameter(torch.empty(bias_shape, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every kernel from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as torch's conv."""
        init_uniform(self.weight, self.bias, self.in_channels * math.prod(self.kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        return tiled_conv(
            x,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            padding_mode=self.padding_mode,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"tile_size={self.tile_size}, stride={self.stride}, padding={self.padding!r}, "
            f"bias={self.bias_kind or False!r}"
        )

    @classmethod
    def from_conv(cls, conv: nn.Module, tile_size: int | Sequence[int]) -> TiledConv:
        """A tiled layer whose every kernel starts as ``conv``'s (with its tied bias)."""
        weight, conv_bias, hyper = conv_weight(conv)
        d = weight.ndim - 2
        args = (weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), tile_size)
        kwargs = {
            **hyper,
            "bias": conv_bias is not None,
            "device": weight.device,
            "dtype": weight.dtype,
        }
        layer = build_fixed(cls, TiledConv, d, args, kwargs)
        with torch.no_grad():
            layer.weight.copy_(weight.expand_as(layer.weight))
            if conv_bias is not None:
                layer.bias.copy_(conv_bias)
        return layer


class _FixedTiledConv(TiledConv):
    """:class:`TiledConv` for one number of spatial dims (``fixed_spatial_dims``): its whole
    signature, less ``num_spatial_dims``."""

    fixed_spatial_dims: int

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        tile_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: Padding = "valid",
        dilation: int | Sequence[int] = 1,
        bias: bool | str = True,
        *,
        input_size: int | Sequence[int] | None = None,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Build the layer; the arguments are the N-d class's after ``num_spatial_dims``."""
        super().__init__(
            self.fixed_spatial_dims, in_channels, out_channels, kernel_size, tile_size, stride,
            padding, dilation, bias, input_size=input_size, padding_mode=padding_mode,
            device=device, dtype=dtype,
        )  # fmt: skip


class TiledConv1d(_FixedTiledConv):
    """:class:`TiledConv` with ``num_spatial_dims=1``; same arguments after it."""

    fixed_spatial_dims = 1


class TiledConv2d(_FixedTiledConv):
    """:class:`TiledConv` with ``num_spatial_dims=2``; same arguments after it."""

    fixed_spatial_dims = 2


class TiledConv3d(_FixedTiledConv):
    """:class:`TiledConv` with ``num_spatial_dims=3``; same arguments after it."""

    fixed_spatial_dims = 3
