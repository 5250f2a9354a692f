"""The configuration every convolution-like layer validates and stores the same way."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from gridconv._checks import check_choice, check_int, describe
from gridconv._shapes import Padding, PaddingPairs, ntuple, parse_padding
from gridconv.functional.padding import PADDING_MODES


class ConvLayerBase(nn.Module):
    """Base of the convolution-like layers: the hyper-parameters :func:`store_config` sets.

    It only names their types (for type checkers and editors); it adds no behaviour.
    """

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: str | PaddingPairs
    padding_mode: str


def store_config(
    module: ConvLayerBase,
    num_spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int],
    padding: Padding,
    dilation: int | Sequence[int],
    padding_mode: str,
) -> int:
    """Check the shared arguments, set them on ``module`` as tuples, and return the dims."""
    d = check_int("num_spatial_dims", num_spatial_dims, minimum=1)
    if d > 3:
        raise ValueError(f"`num_spatial_dims` must be 1, 2 or 3, got {d}.")
    module.in_channels = check_int("in_channels", in_channels, minimum=1)
    module.out_channels = check_int("out_channels", out_channels, minimum=1)
    module.kernel_size = ntuple("kernel_size", kernel_size, d)
    module.stride = ntuple("stride", stride, d)
    module.dilation = ntuple("dilation", dilation, d)
    module.padding = parse_padding(padding, d)
    module.padding_mode = check_choice("padding_mode", padding_mode, PADDING_MODES)
    return d


def bias_kind(bias: bool | str | None, default: str) -> str | None:
    """``True`` -> ``default``; ``"tied"``/``"untied"`` stay; ``False``/``None`` -> None."""
    if bias is True:
        return default
    if bias in ("tied", "untied"):
        return bias
    if bias is False or bias is None:
        return None
    raise ValueError(f"`bias` must be True, 'tied', 'untied' or False; got {describe(bias)}.")


def init_uniform(weight: Tensor, bias: Tensor | None, fan_in: int) -> None:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every kernel and bias, as torch's conv."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)
    if bias is not None:
        nn.init.uniform_(bias, -bound, bound)


def conv_weight(conv: Any) -> tuple[Tensor, Tensor | None, dict[str, Any]]:
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


def build_fixed(cls: type, base: type, d: int, args: tuple, kwargs: dict) -> Any:
    """``cls(*args)`` for a thin ``...{d}d`` name, ``base(d, *args)`` for the N-d class."""
    fixed = getattr(cls, "fixed_spatial_dims", None)
    if fixed is None:
        return base(d, *args, **kwargs)
    if fixed != d:
        raise TypeError(f"`conv` must be a {fixed}-d convolution for {cls.__name__}, got {d}-d.")
    return cls(*args, **kwargs)
