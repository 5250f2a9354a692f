"""Locally connected and tiled layers (sec. 9.6; tiled convolution after Le et al. 2010).

``LocallyConnected`` has one kernel (and, by default, one bias) per output location, so it
needs the input size up front. ``TiledConv`` cycles ``prod(tile_size)`` kernels over the
output. Both keep one N-d implementation, with ``1d``/``2d``/``3d`` as thin names, and a
``from_conv`` constructor that starts every location (or tile) from a convolution's kernel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gridconv._shapes import Padding, ntuple
from gridconv.functional._spec import conv_spec
from gridconv.functional.local import local_conv
from gridconv.functional.tiled import tiled_conv
from gridconv.nn._config import ConvLayerBase, bias_kind, store_config


def _init(weight: Tensor, bias: Tensor | None, fan_in: int) -> None:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every kernel and bias, as torch's conv."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)
    if bias is not None:
        nn.init.uniform_(bias, -bound, bound)


def _conv_weight(conv: Any) -> tuple[Tensor, Tensor | None, dict[str, Any]]:
    """Weight, bias and hyper-parameters of a gridconv or torch convolution layer."""
    torch_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    weight = getattr(conv, "weight", None)
    if not isinstance(conv, nn.Module) or not isinstance(weight, Tensor) or weight.ndim < 3:
        raise TypeError(f"`conv` must be a convolution layer, got {type(conv).__name__}.")
    if isinstance(conv, nn.modules.conv._ConvTransposeNd) or getattr(conv, "groups", 1) != 1:
        raise ValueError("`conv` must be a plain convolution (groups=1, not transposed).")
    padding: Any = conv.padding
    if isinstance(conv, torch_types) and not isinstance(padding, str):
        padding = tuple(padding)
    bias = conv.bias
    if bias is not None and bias.ndim != 1:
        raise ValueError("`conv` must have a tied bias (one per channel) or none.")
    hyper = {
        "stride": conv.stride,
        "padding": padding,
        "dilation": conv.dilation,
        "padding_mode": conv.padding_mode,
    }
    return weight, bias, hyper


class LocallyConnected(ConvLayerBase):
    """Unshared convolution: every output location has its own kernel (sec. 9.6).

    Args:
        num_spatial_dims: 1, 2 or 3.
        in_channels, out_channels, kernel_size, stride, padding, dilation, padding_mode:
            as in :class:`gridconv.nn.Conv` (every padding form).
        input_size: the spatial size of the inputs (the layer has a kernel per output
            location, so it must know how many there are).
        bias: ``True``/``"untied"`` (the default: one per output channel and location),
            ``"tied"`` (one per channel) or ``False``.
        device, dtype: of the parameters.

    Weights:
        ``weight`` ``(*out_size, C_out, C_in, *kernel_size)``: ``prod(out_size) * C_out *
        C_in * prod(kernel_size)`` weights, ``prod(out_size)`` times a convolution's; an
        untied ``bias`` adds ``C_out * prod(out_size)``, a tied one ``C_out``.

    Shape:
        - Input: ``(N, C_in, *input_size)``
        - Output: ``(N, C_out, *out_size)``, ``out_size`` as for :class:`gridconv.nn.Conv`.

    Example:
        >>> import torch, gridconv as gc
        >>> layer = gc.nn.LocallyConnected2d(1, 8, 5, input_size=28)
        >>> layer.weight.shape, layer.bias.shape
        (torch.Size([24, 24, 8, 1, 5, 5]), torch.Size([8, 24, 24]))
        >>> layer(torch.randn(2, 1, 28, 28)).shape
        torch.Size([2, 8, 24, 24])
    """

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        input_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: Padding = "valid",
        dilation: int | Sequence[int] = 1,
        bias: bool | str = True,
        *,
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
        self.input_size = ntuple("input_size", input_size, d)
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
        self.output_size = spec.output_size
        self.bias_kind = bias_kind(bias, "untied")
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(*self.output_size, out_channels, in_channels, *self.kernel_size, **factory)
        )
        if self.bias_kind is None:
            self.register_parameter("bias", None)
        else:
            shape = (
                (out_channels, *self.output_size) if self.bias_kind == "untied" else (out_channels,)
            )
            self.bias = nn.Parameter(torch.empty(shape, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every location's kernel from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as torch's conv."""
        _init(self.weight, self.bias, self.in_channels * math.prod(self.kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(x, Tensor) and tuple(x.shape[-len(self.input_size) :]) != self.input_size:
            raise ValueError(
                f"this layer was built for `input_size` {self.input_size} but got an input of "
                f"spatial size {tuple(x.shape[-len(self.input_size) :])} (shape {tuple(x.shape)})."
            )
        return local_conv(
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
            f"input_size={self.input_size}, stride={self.stride}, padding={self.padding!r}, "
            f"bias={self.bias_kind or False!r}"
        )

    @classmethod
    def from_conv(
        cls, conv: nn.Module, input_size: int | Sequence[int], *, bias: bool | str = True
    ) -> LocallyConnected:
        """A locally connected layer whose every location starts with ``conv``'s kernel.

        It computes exactly what ``conv`` computes until training unties the locations.
        ``conv`` is a ``gridconv.nn.Conv*d`` or ``torch.nn.Conv*d`` with ``groups=1``; its
        tied bias is copied to every location (or kept tied with ``bias="tied"``).
        """
        weight, conv_bias, hyper = _conv_weight(conv)
        d = weight.ndim - 2
        kind = bias_kind(bias, "untied") if conv_bias is not None else None
        args = (weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), input_size)
        kwargs = {**hyper, "bias": kind or False, "device": weight.device, "dtype": weight.dtype}
        layer = _build(cls, LocallyConnected, d, args, kwargs)
        with torch.no_grad():
            layer.weight.copy_(weight.expand_as(layer.weight))
            if kind is not None and conv_bias is not None:
                b = conv_bias.view(-1, *([1] * d)) if kind == "untied" else conv_bias
                layer.bias.copy_(b.expand_as(layer.bias))
        return layer


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
        _init(self.weight, self.bias, self.in_channels * math.prod(self.kernel_size))

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
        weight, conv_bias, hyper = _conv_weight(conv)
        d = weight.ndim - 2
        args = (weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), tile_size)
        kwargs = {
            **hyper,
            "bias": conv_bias is not None,
            "device": weight.device,
            "dtype": weight.dtype,
        }
        layer = _build(cls, TiledConv, d, args, kwargs)
        with torch.no_grad():
            layer.weight.copy_(weight.expand_as(layer.weight))
            if conv_bias is not None:
                layer.bias.copy_(conv_bias)
        return layer


def _build(cls: type, base: type, d: int, args: tuple, kwargs: dict) -> Any:
    """``cls(*args)`` for a thin ``...{d}d`` name, ``base(d, *args)`` for the N-d class."""
    fixed = getattr(cls, "fixed_spatial_dims", None)
    if fixed is None:
        return base(d, *args, **kwargs)
    if fixed != d:
        raise TypeError(f"`conv` must be a {fixed}-d convolution for {cls.__name__}, got {d}-d.")
    return cls(*args, **kwargs)


class _FixedLocallyConnected(LocallyConnected):
    """:class:`LocallyConnected` for one number of spatial dims (``fixed_spatial_dims``):
    its whole signature, less ``num_spatial_dims``."""

    fixed_spatial_dims: int

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        input_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: Padding = "valid",
        dilation: int | Sequence[int] = 1,
        bias: bool | str = True,
        *,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Build the layer; the arguments are the N-d class's after ``num_spatial_dims``."""
        super().__init__(
            self.fixed_spatial_dims, in_channels, out_channels, kernel_size, input_size, stride,
            padding, dilation, bias, padding_mode=padding_mode, device=device, dtype=dtype,
        )  # fmt: skip


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


class LocallyConnected1d(_FixedLocallyConnected):
    """:class:`LocallyConnected` with ``num_spatial_dims=1``; same arguments after it."""

    fixed_spatial_dims = 1


class LocallyConnected2d(_FixedLocallyConnected):
    """:class:`LocallyConnected` with ``num_spatial_dims=2``; same arguments after it."""

    fixed_spatial_dims = 2


class LocallyConnected3d(_FixedLocallyConnected):
    """:class:`LocallyConnected` with ``num_spatial_dims=3``; same arguments after it."""

    fixed_spatial_dims = 3


class TiledConv1d(_FixedTiledConv):
    """:class:`TiledConv` with ``num_spatial_dims=1``; same arguments after it."""

    fixed_spatial_dims = 1


class TiledConv2d(_FixedTiledConv):
    """:class:`TiledConv` with ``num_spatial_dims=2``; same arguments after it."""

    fixed_spatial_dims = 2


class TiledConv3d(_FixedTiledConv):
    """:class:`TiledConv` with ``num_spatial_dims=3``; same arguments after it."""

    fixed_spatial_dims = 3
