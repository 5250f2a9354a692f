"""Locally connected layers (sec. 9.6): unshared convolution.

``LocallyConnected`` has one kernel (and, by default, one bias) per output location, so it
needs the input size up front. One N-d implementation, with ``1d``/``2d``/``3d`` as thin
names, and a ``from_conv`` constructor that starts every location from a convolution's
kernel. Tiled convolution, between this and full sharing, is :mod:`gridconv.nn.tiled`.
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
from gridconv.nn._config import (
    ConvLayerBase,
    bias_kind,
    build_fixed,
    conv_weight,
    init_uniform,
    store_config,
)


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
        init_uniform(self.weight, self.bias, self.in_channels * math.prod(self.kernel_size))

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
        weight, conv_bias, hyper = conv_weight(conv)
        d = weight.ndim - 2
        kind = bias_kind(bias, "untied") if conv_bias is not None else None
        args = (weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), input_size)
        kwargs = {**hyper, "bias": kind or False, "device": weight.device, "dtype": weight.dtype}
        layer = build_fixed(cls, LocallyConnected, d, args, kwargs)
        with torch.no_grad():
            layer.weight.copy_(weight.expand_as(layer.weight))
            if kind is not None and conv_bias is not None:
                b = conv_bias.view(-1, *([1] * d)) if kind == "untied" else conv_bias
                layer.bias.copy_(b.expand_as(layer.bias))
        return layer


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


class LocallyConnected1d(_FixedLocallyConnected):
    """:class:`LocallyConnected` with ``num_spatial_dims=1``; same arguments after it."""

    fixed_spatial_dims = 1


class LocallyConnected2d(_FixedLocallyConnected):
    """:class:`LocallyConnected` with ``num_spatial_dims=2``; same arguments after it."""

    fixed_spatial_dims = 2


class LocallyConnected3d(_FixedLocallyConnected):
    """:class:`LocallyConnected` with ``num_spatial_dims=3``; same arguments after it."""

    fixed_spatial_dims = 3
