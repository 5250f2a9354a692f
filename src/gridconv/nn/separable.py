"""Separable layers: depthwise separable (a depthwise then a pointwise convolution) and
spatially separable (one 1-D convolution per spatial dim, ``k x 1`` then ``1 x k``).

Both trade a little expressiveness for far fewer weights and multiply-adds (sec. 9.8):
16 -> 32 channels with 3x3 kernels takes 32*16*3*3 = 4608 weights as one convolution,
16*3*3 + 16*32 = 656 as a depthwise separable one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gridconv._checks import check_int
from gridconv._shapes import Padding, ntuple
from gridconv.functional._spec import conv_spec_for_size
from gridconv.nn._config import ConvLayerBase, store_config
from gridconv.nn.conv import Conv


def _output_size(layer: Conv, input_size: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The spatial size ``layer`` makes of ``input_size`` (None stays None)."""
    if input_size is None:
        return None
    spec = conv_spec_for_size(
        layer.weight,
        input_size,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups,
        padding_mode=layer.padding_mode,
    )
    return spec.output_size


class DepthwiseSeparableConv(nn.Module):
    """A depthwise convolution (each input channel on its own, ``depth_multiplier`` kernels
    each, no bias) followed by a pointwise (1x1) convolution that mixes the channels.

    Args:
        num_spatial_dims: 1, 2 or 3.
        in_channels, out_channels: channels of the input and output.
        kernel_size, stride, padding, dilation, padding_mode, method: of the depthwise
            convolution, every option of :class:`gridconv.nn.Conv`.
        depth_multiplier: kernels per input channel; the middle has
            ``in_channels * depth_multiplier`` channels.
        bias: of the pointwise convolution: ``True``/``"tied"``, ``"untied"`` (needs
            ``input_size``) or ``False``.
        input_size: the input's spatial size, for an untied bias.
        device, dtype: of the parameters.

    Weights:
        ``depthwise.weight`` ``(C_in * m, 1, *kernel_size)`` and ``pointwise.weight``
        ``(C_out, C_in * m, 1, ..., 1)``: ``C_in * m * (prod(kernel_size) + C_out)`` weights
        against ``C_out * C_in * prod(kernel_size)`` for a full convolution.

    Shape:
        - Input: ``(N, C_in, n_1, ..., n_d)``
        - Output: ``(N, C_out, o_1, ..., o_d)``, as the depthwise convolution alone.

    Example:
        >>> import torch, gridconv as gc
        >>> layer = gc.nn.DepthwiseSeparableConv2d(16, 32, 3, padding="same", bias=False)
        >>> sum(p.numel() for p in layer.parameters())
        656
        >>> layer(torch.randn(1, 16, 10, 10)).shape
        torch.Size([1, 32, 10, 10])
    """

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        depth_multiplier: int = 1,
        stride: int | Sequence[int] = 1,
        padding: Padding = "valid",
        dilation: int | Sequence[int] = 1,
        bias: bool | str = True,
        *,
        input_size: int | Sequence[int] | None = None,
        padding_mode: str = "zeros",
        method: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, minimum=1)
        multiplier = check_int("depth_multiplier", depth_multiplier, minimum=1)
        self.depth_multiplier = multiplier
        self.depthwise = Conv(
            num_spatial_dims,
            in_channels,
            in_channels * multiplier,
            kernel_size,
            stride,
            padding,
            dilation,
            groups=in_channels,
            bias=False,
            input_size=input_size,
            padding_mode=padding_mode,
            method=method,
            device=device,
            dtype=dtype,
        )
        self.pointwise = Conv(
            num_spatial_dims,
            in_channels * multiplier,
            out_channels,
            1,
            bias=bias,
            input_size=_output_size(self.depthwise, self.depthwise.input_size),
            method=method,
            device=device,
            dtype=dtype,
        )
        self.in_channels = in_channels
        self.out_channels = self.pointwise.out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class _FixedDepthwiseSeparableConv(DepthwiseSeparableConv):
    """:class:`DepthwiseSeparableConv` for one number of spatial dims (``fixed_spatial_dims``):
    its whole signature, less ``num_spatial_dims``."""

    fixed_spatial_dims: int

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        depth_multiplier: int = 1,
        stride: int | Sequence[int] = 1,
        padding: Padding = "valid",
        dilation: int | Sequence[int] = 1,
        bias: bool | str = True,
        *,
        input_size: int | Sequence[int] | None = None,
        padding_mode: str = "zeros",
        method: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Build the layer; the arguments are the N-d class's after ``num_spatial_dims``."""
        super().__init__(
            self.fixed_spatial_dims, in_channels, out_channels, kernel_size, depth_multiplier,
            stride, padding, dilation, bias, input_size=input_size, padding_mode=padding_mode,
            method=method, device=device, dtype=dtype,
        )  # fmt: skip


class DepthwiseSeparableConv1d(_FixedDepthwiseSeparableConv):
    """:class:`DepthwiseSeparableConv` with ``num_spatial_dims=1``; same arguments after it.

    Shape:
        - Input: ``(N, C_in, n)``, Output: ``(N, C_out, o)``
    """

    fixed_spatial_dims = 1


class DepthwiseSeparableConv2d(_FixedDepthwiseSeparableConv):
    """:class:`DepthwiseSeparableConv` with ``num_spatial_dims=2``; same arguments after it.

    Shape:
        - Input: ``(N, C_in, H, W)``, Output: ``(N, C_out, H_out, W_out)``
    """

    fixed_spatial_dims = 2


class DepthwiseSeparableConv3d(_FixedDepthwiseSeparableConv):
    """:class:`DepthwiseSeparableConv` with ``num_spatial_dims=3``; same arguments after it.

    Shape:
        - Input: ``(N, C_in, D, H, W)``, Output: ``(N, C_out, D_out, H_out, W_out)``
    """

    fixed_spatial_dims = 3


def _only_dim(value: tuple[Any, ...], dim: int, rest: Any) -> tuple[Any, ...]:
    """``value`` with every entry but ``dim`` replaced by ``rest``."""
    return tuple(v if i == dim else rest for i, v in enumerate(value))


class SpatiallySeparableConv(ConvLayerBase):
    """One 1-D convolution per spatial dim: ``k_1 x 1 x ...``, then ``1 x k_2 x ...``, ...

    The composition is a convolution whose kernels are sums of ``mid_channels`` outer
    products, at ``sum(k_i)`` rather than ``prod(k_i)`` weights per channel pair.

    Args:
        num_spatial_dims: 2 or 3.
        in_channels, out_channels: channels of the input and output.
        kernel_size, stride, dilation: int or one per dim; pass ``i`` uses entry ``i``.
        padding: every form of :class:`gridconv.nn.Conv`; pass ``i`` pads dim ``i`` only,
            so the result equals the full convolution with the same padding.
        bias: of the last pass: ``True``/``"tied"``, ``"untied"`` (needs ``input_size``) or
            ``False``.
        mid_channels: channels between passes; defaults to ``out_channels``.
        input_size, padding_mode, method, device, dtype: as :class:`gridconv.nn.Conv`.

    Shape:
        - Input: ``(N, C_in, n_1, ..., n_d)``
        - Output: ``(N, C_out, o_1, ..., o_d)``, as :class:`gridconv.nn.Conv` with the same
          arguments.

    Example:
        >>> import torch, gridconv as gc
        >>> layer = gc.nn.SpatiallySeparableConv2d(3, 8, 7, stride=2, padding="same")
        >>> [tuple(p.weight.shape) for p in layer.passes]
        [(8, 3, 7, 1), (8, 8, 1, 7)]
        >>> layer(torch.randn(1, 3, 15, 15)).shape
        torch.Size([1, 8, 8, 8])
    """

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: Padding = "valid",
        dilation: int | Sequence[int] = 1,
        bias: bool | str = True,
        *,
        mid_channels: int | None = None,
        input_size: int | Sequence[int] | None = None,
        padding_mode: str = "zeros",
        method: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        d = check_int("num_spatial_dims", num_spatial_dims, minimum=2)
        if d > 3:
            raise ValueError(f"`num_spatial_dims` must be 2 or 3, got {d}.")
        mid = out_channels if mid_channels is None else mid_channels
        mid = check_int("mid_channels", mid, minimum=1)
        store_config(
            self, d, in_channels, out_channels, kernel_size, stride, padding, dilation, padding_mode
        )
        self.mid_channels = mid
        size = None if input_size is None else ntuple("input_size", input_size, d)
        passes = []
        for i in range(d):
            pass_padding = self.padding  # a string pads only dims with a kernel wider than 1
            if not isinstance(pass_padding, str):
                pass_padding = _only_dim(pass_padding, i, (0, 0))
            layer = Conv(
                d,
                in_channels if i == 0 else mid,
                out_channels if i == d - 1 else mid,
                _only_dim(self.kernel_size, i, 1),
                _only_dim(self.stride, i, 1),
                pass_padding,
                _only_dim(self.dilation, i, 1),
                bias=bias if i == d - 1 else False,
                input_size=size,
                padding_mode=padding_mode,
                method=method,
                device=device,
                dtype=dtype,
            )
            size = _output_size(layer, size)
            passes.append(layer)
        self.passes = nn.ModuleList(passes)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.passes:
            x = layer(x)
        return x


class _FixedSpatiallySeparableConv(SpatiallySeparableConv):
    """:class:`SpatiallySeparableConv` for one number of spatial dims (``fixed_spatial_dims``):
    its whole signature, less ``num_spatial_dims``."""

    fixed_spatial_dims: int

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: Padding = "valid",
        dilation: int | Sequence[int] = 1,
        bias: bool | str = True,
        *,
        mid_channels: int | None = None,
        input_size: int | Sequence[int] | None = None,
        padding_mode: str = "zeros",
        method: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Build the layer; the arguments are the N-d class's after ``num_spatial_dims``."""
        super().__init__(
            self.fixed_spatial_dims, in_channels, out_channels, kernel_size, stride, padding,
            dilation, bias, mid_channels=mid_channels, input_size=input_size,
            padding_mode=padding_mode, method=method, device=device, dtype=dtype,
        )  # fmt: skip


class SpatiallySeparableConv2d(_FixedSpatiallySeparableConv):
    """``k x 1`` then ``1 x k``: :class:`SpatiallySeparableConv` with ``num_spatial_dims=2``.

    Shape:
        - Input: ``(N, C_in, H, W)``, Output: ``(N, C_out, H_out, W_out)``
    """

    fixed_spatial_dims = 2


class SpatiallySeparableConv3d(_FixedSpatiallySeparableConv):
    """Three 1-D passes: :class:`SpatiallySeparableConv` with ``num_spatial_dims=3``.

    Shape:
        - Input: ``(N, C_in, D, H, W)``, Output: ``(N, C_out, D_out, H_out, W_out)``
    """

    fixed_spatial_dims = 3
