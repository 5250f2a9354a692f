"""Convolution layers: one N-d ``Conv``, with ``Conv1d``/``Conv2d``/``Conv3d`` as thin names.

The module holds configuration and parameters; ``forward`` is one call to
:func:`gridconv.conv`. Unlike ``torch.nn.ConvNd`` it takes ``padding="same"`` with any
stride, ``"full"``, asymmetric ``(before, after)`` pairs, and an untied bias.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gridconv._checks import check_choice, check_int, describe
from gridconv._shapes import Padding, ntuple
from gridconv.functional._spec import conv_spec_for_size
from gridconv.functional.conv import KernelCache, conv, method_names
from gridconv.functional.separable import decompose
from gridconv.nn._config import ConvLayerBase, bias_kind, store_config
from gridconv.nn.lowrank import LowRankConv

_TORCH_CONV: dict[int, Any] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class Conv(ConvLayerBase):
    """Convolution over ``num_spatial_dims`` (1, 2 or 3) spatial dims.

    Args:
        num_spatial_dims: 1, 2 or 3.
        in_channels, out_channels: channels of the input and output.
        kernel_size, stride, dilation: int or one int per spatial dim.
        padding: every form :func:`gridconv.conv` takes: ``"valid"``, ``"same"`` (any
            stride), ``"full"``, an int, one int per dim, or ``(before, after)`` pairs.
        groups: split the channels into this many independent convolutions.
        bias: ``True``/``"tied"`` (one per output channel), ``"untied"`` (one per output
            channel and location; needs ``input_size``) or ``False``.
        input_size: the spatial size of the inputs; needed only for an untied bias.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        method: how :func:`gridconv.conv` computes the result (``"auto"`` chooses).
        device, dtype: of the parameters.

    Shape:
        - Input: ``(N, C_in, n_1, ..., n_d)`` or ``(C_in, n_1, ..., n_d)``
        - Output: ``(N, C_out, o_1, ..., o_d)`` with
          ``o_i = floor((n_i + before_i + after_i - dilation_i * (k_i - 1) - 1) / stride_i) + 1``

    Weights:
        ``weight`` ``(C_out, C_in / groups, *kernel_size)`` and ``bias`` ``(C_out,)`` or,
        untied, ``(C_out, *out_size)``; both start as U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as in
        torch, with ``fan_in = C_in / groups * prod(kernel_size)``.

    Example:
        >>> import torch, gridconv as gc
        >>> layer = gc.nn.Conv2d(3, 8, 3, stride=2, padding="same", bias="untied",
        ...                      input_size=(32, 32))
        >>> layer.bias.shape
        torch.Size([8, 16, 16])
        >>> layer(torch.randn(4, 3, 32, 32)).shape
        torch.Size([4, 8, 16, 16])
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
        groups: int = 1,
        bias: bool | str = True,
        *,
        input_size: int | Sequence[int] | None = None,
        padding_mode: str = "zeros",
        method: str = "auto",
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
        self.groups = check_int("groups", groups, minimum=1)
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % groups:
                raise ValueError(
                    f"`{name}` (={channels}) must be divisible by `groups` (={groups})."
                )
        self.method = check_choice("method", method, method_names())
        self.bias_kind = bias_kind(bias, "tied")
        self.input_size = None if input_size is None else ntuple("input_size", input_size, d)
        if self.bias_kind == "untied" and self.input_size is None:
            raise ValueError(
                "`bias='untied'` needs `input_size`: an untied bias has one value per output "
                "location, so the layer must know the input's spatial size."
            )

        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size, **factory)
        )
        bias_shape: tuple[int, ...] = (out_channels,)
        if self.input_size is not None:
            spec = conv_spec_for_size(
                self.weight,
                self.input_size,
                stride=self.stride,
                padding=self.padding,
                dilation=self.dilation,
                groups=groups,
                padding_mode=padding_mode,
            )
            if self.bias_kind == "untied":
                bias_shape = (out_channels, *spec.output_size)
        if self.bias_kind is None:
            self.register_parameter("bias", None)
        else:
            self.bias = nn.Parameter(torch.empty(bias_shape, **factory))
        self._kernel_cache = KernelCache()
        self.reset_parameters()

    @property
    def num_spatial_dims(self) -> int:
        return len(self.kernel_size)

    def reset_parameters(self) -> None:
        """Re-draw weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as torch does."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        # In eval mode the transformed kernel (FFT spectrum, separable factors) and the
        # planner's choice are kept until the weight changes.
        return conv(
            x,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
            method=self.method,
            cache=None if self.training else self._kernel_cache,
        )

    def to_separable(self, rank: int | None = None, *, rtol: float = 1e-6) -> LowRankConv:
        """A low-rank copy of this layer: each kernel as ``rank`` separable terms.

        Opt-in speed for trained layers, after Jaderberg et al. 2014 and Denton et al.
        2014: fewer multiply-adds when ``rank * sum(kernel_size)`` is well below
        ``prod(kernel_size)``. The returned layer's ``approximation_error`` is the relative
        Frobenius error of its kernels; ``rank=None`` takes the smallest rank within
        ``rtol``.

        Example:
            >>> import torch, gridconv as gc
            >>> layer = gc.nn.Conv2d(8, 16, 7, padding="same")
            >>> low = layer.to_separable(rank=2)
            >>> low.rank, 0 < low.approximation_error < 1
            (2, True)
        """
        kernel = decompose(self.weight, rank, rtol=rtol)
        return LowRankConv(
            [f.detach().clone() for f in kernel.factors],
            None if self.bias is None else self.bias.detach().clone(),
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
            approximation_error=kernel.error,
        )

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding!r}"
        )
        if any(d != 1 for d in self.dilation):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        text += f", bias={self.bias_kind or False!r}"
        if self.input_size is not None:
            text += f", input_size={self.input_size}"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        if self.method != "auto":
            text += f", method={self.method!r}"
        return text

    @classmethod
    def from_torch(cls, module: nn.Module) -> Conv:
        """A layer with the configuration and (copied) weights of a ``torch.nn.ConvNd``.

        Example:
            >>> import torch, gridconv as gc
            >>> ref = torch.nn.Conv2d(3, 8, 5, padding="same", padding_mode="reflect")
            >>> layer = gc.nn.Conv2d.from_torch(ref)
            >>> x = torch.randn(1, 3, 16, 16)
            >>> torch.allclose(layer(x), ref(x), atol=1e-6)
            True
        """
        torch_types = tuple(_TORCH_CONV.values())
        if not isinstance(module, torch_types) or isinstance(
            module, nn.modules.conv._ConvTransposeNd
        ):
            raise TypeError(
                "`module` must be a torch.nn.Conv1d, Conv2d or Conv3d, "
                f"got {type(module).__name__}."
            )
        d = len(module.kernel_size)
        fixed = getattr(cls, "fixed_spatial_dims", None)  # a thin name takes only its dims
        if fixed is not None and fixed != d:
            raise TypeError(
                f"`module` must be a torch.nn.Conv{fixed}d for {cls.__name__}.from_torch, "
                f"got {type(module).__name__}."
            )
        args = (
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            module.groups,
            module.bias is not None,
        )
        kwargs = {
            "padding_mode": module.padding_mode,
            "device": module.weight.device,
            "dtype": module.weight.dtype,
        }
        layer = cls._with_dims(d, *args, **kwargs)
        with torch.no_grad():
            layer.weight.copy_(module.weight)
            if module.bias is not None:
                layer.bias.copy_(module.bias)
        return layer

    @classmethod
    def _with_dims(cls, d: int, *args: Any, **kwargs: Any) -> Conv:
        """``cls(*args)`` for a thin ``ConvNd`` name (which must have ``d`` dims), else
        ``Conv(d, *args)``."""
        fixed = getattr(cls, "fixed_spatial_dims", None)
        return Conv(d, *args, **kwargs) if fixed is None else cls(*args, **kwargs)

    @classmethod
    def from_kernels(
        cls,
        weight: Tensor,
        *,
        trainable: bool = True,
        bias: bool | str = False,
        stride: int | Sequence[int] = 1,
        padding: Padding = "valid",
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        **kwargs: Any,
    ) -> Conv:
        """A layer that starts from a kernel bank: designed, random, Gabor or k-means.

        Args:
            weight: ``(C_out, C_in / groups, *kernel_size)``, e.g. from
                :mod:`gridconv.kernels`; copied.
            trainable: train the kernels; ``False`` freezes them (``requires_grad=False``),
                as for a fixed first layer of designed or unsupervised features.
            bias: ``False`` (default), ``True``/``"tied"`` or ``"untied"`` (zeros; trainable).
            stride, padding, dilation, groups: as the constructor; other keyword arguments
                (``padding_mode``, ``method``, ``input_size``) too.

        Example:
            >>> import gridconv as gc
            >>> edges = gc.nn.Conv2d.from_kernels(gc.kernels.sobel(), trainable=False,
            ...                                   padding="same")
            >>> edges.weight.requires_grad, edges.out_channels
            (False, 2)
        """
        if not isinstance(weight, Tensor) or not weight.is_floating_point():
            raise TypeError(f"`weight` must be a floating-point tensor, got {describe(weight)}.")
        d = weight.ndim - 2
        fixed = getattr(cls, "fixed_spatial_dims", None)
        if d not in (1, 2, 3) or (fixed is not None and d != fixed):
            dims = f"{fixed}" if fixed is not None else "1, 2 or 3"
            raise ValueError(
                f"`weight` must have shape (C_out, C_in / groups, *kernel_size) with {dims} "
                f"spatial dims for {cls.__name__}, got shape {tuple(weight.shape)}."
            )
        groups = check_int("groups", groups, minimum=1)
        kwargs.setdefault("device", weight.device)
        kwargs.setdefault("dtype", weight.dtype)
        layer = cls._with_dims(
            d,
            weight.shape[1] * groups,
            weight.shape[0],
            tuple(weight.shape[2:]),
            stride,
            padding,
            dilation,
            groups,
            bias,
            **kwargs,
        )
        with torch.no_grad():
            layer.weight.copy_(weight)
            if layer.bias is not None:
                layer.bias.zero_()
        layer.weight.requires_grad_(bool(trainable))
        return layer

    def _torch_padding(self) -> str | tuple[int, ...]:
        if self.padding == "valid":
            return "valid"
        if self.padding == "same":
            if any(s != 1 for s in self.stride):
                raise ValueError(
                    f"torch.nn.Conv cannot express padding='same' with stride {self.stride}; "
                    "only stride 1."
                )
            return "same"
        if isinstance(self.padding, str):  # "full"
            return tuple(d * (k - 1) for k, d in zip(self.kernel_size, self.dilation))
        if any(before != after for before, after in self.padding):
            raise ValueError(
                f"torch.nn.Conv cannot express asymmetric padding {self.padding}; "
                "only the same amount before and after."
            )
        return tuple(before for before, _ in self.padding)

    def to_torch(self) -> nn.Module:
        """An equivalent ``torch.nn.ConvNd`` with copied weights.

        Raises:
            ValueError: when torch cannot express the layer: an untied bias, asymmetric
                padding, or ``padding="same"`` with a stride above 1.
        """
        if self.bias_kind == "untied":
            raise ValueError("torch.nn.Conv cannot express an untied bias; use bias='tied'.")
        module = _TORCH_CONV[self.num_spatial_dims](
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self._torch_padding(),
            self.dilation,
            self.groups,
            self.bias is not None,
            self.padding_mode,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        with torch.no_grad():
            module.weight.copy_(self.weight)
            if self.bias is not None:
                module.bias.copy_(self.bias)
        return module


class _FixedConv(Conv):
    """:class:`Conv` for one number of spatial dims (``fixed_spatial_dims``): its whole
    signature, less ``num_spatial_dims``, for ``help()``, ``inspect.signature`` and editors."""

    fixed_spatial_dims: int

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: Padding = "valid",
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
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
            self.fixed_spatial_dims, in_channels, out_channels, kernel_size, stride, padding,
            dilation, groups, bias, input_size=input_size, padding_mode=padding_mode,
            method=method, device=device, dtype=dtype,
        )  # fmt: skip


class Conv1d(_FixedConv):
    """1-d convolution: :class:`Conv` with ``num_spatial_dims=1``; same arguments after it.

    Shape:
        - Input: ``(N, C_in, n)``, Output: ``(N, C_out, o)``
    """

    fixed_spatial_dims = 1


class Conv2d(_FixedConv):
    """2-d convolution: :class:`Conv` with ``num_spatial_dims=2``; same arguments after it.

    Shape:
        - Input: ``(N, C_in, H, W)``, Output: ``(N, C_out, H_out, W_out)``
    """

    fixed_spatial_dims = 2


class Conv3d(_FixedConv):
    """3-d convolution: :class:`Conv` with ``num_spatial_dims=3``; same arguments after it.

    Shape:
        - Input: ``(N, C_in, D, H, W)``, Output: ``(N, C_out, D_out, H_out, W_out)``
    """

    fixed_spatial_dims = 3
