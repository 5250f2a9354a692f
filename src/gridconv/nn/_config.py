"""The configuration every convolution-like layer validates and stores the same way."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

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
