"""Depthwise separable and spatially separable layers against explicit compositions of
torch convolutions, and the chapter's parameter arithmetic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import gridconv as gc
from gridconv._shapes import parse_padding, resolve_padding

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate"}


def torch_conv(x, w, bias, stride, padding, dilation, groups, mode="zeros"):
    """torch's convolution after an explicit ``F.pad`` (any padding form, any stride)."""
    d = w.ndim - 2
    k = w.shape[2:]
    s = (stride,) * d if isinstance(stride, int) else stride
    dl = (dilation,) * d if isinstance(dilation, int) else dilation
    pairs = resolve_padding(parse_padding(padding, d), x.shape[2:], k, s, dl)
    flat = [v for pair in reversed(pairs) for v in pair]
    x = F.pad(x, flat, mode=TORCH_PAD_MODE[mode])
    return TORCH_CONV[d](x, w, bias, s, 0, dl, groups)


CASES = [
    # d, kernel, stride, padding, dilation, multiplier, padding_mode
    (1, 5, 1, "valid", 1, 1, "zeros"),
    (1, 4, 2, "same", 1, 2, "reflect"),
    (2, 3, 1, "same", 1, 1, "zeros"),
    (2, 3, 2, "same", 2, 3, "replicate"),
    (2, (3, 5), (2, 1), [(1, 0), (2, 2)], 1, 1, "zeros"),
    (2, 3, 1, "full", 1, 2, "zeros"),
    (3, 3, 2, 1, 1, 2, "zeros"),
]


@pytest.mark.parametrize(("d", "kernel", "stride", "padding", "dilation", "m", "mode"), CASES)
def test_depthwise_separable_is_depthwise_then_pointwise(
    d, kernel, stride, padding, dilation, m, mode
):
    torch.manual_seed(0)
    layer_type = {
        1: gc.nn.DepthwiseSeparableConv1d,
        2: gc.nn.DepthwiseSeparableConv2d,
        3: gc.nn.DepthwiseSeparableConv3d,
    }[d]
    layer = layer_type(
        4, 6, kernel, m, stride, padding, dilation, padding_mode=mode, dtype=torch.float64
    )
    x = torch.randn(2, 4, *[11, 10, 7][:d], dtype=torch.float64)
    dw, pw = layer.depthwise.weight, layer.pointwise.weight
    assert dw.shape[:2] == (4 * m, 1) and pw.shape == (6, 4 * m, *(1,) * d)
    hidden = torch_conv(x, dw, None, stride, padding, dilation, groups=4, mode=mode)
    expected = TORCH_CONV[d](hidden, pw, layer.pointwise.bias)
    torch.testing.assert_close(layer(x), expected)


def test_the_chapters_parameter_arithmetic():
    full = gc.nn.Conv2d(16, 32, 3, bias=False)
    separable = gc.nn.DepthwiseSeparableConv2d(16, 32, 3, bias=False)
    assert gc.analysis.count_parameters(full) == 32 * 16 * 3 * 3 == 4608
    assert gc.analysis.count_parameters(separable) == 16 * 3 * 3 + 16 * 32 == 656
    with_bias = gc.nn.DepthwiseSeparableConv2d(16, 32, 3)
    assert gc.analysis.count_parameters(with_bias) == 656 + 32
    doubled = gc.nn.DepthwiseSeparableConv2d(16, 32, 3, depth_multiplier=2, bias=False)
    assert gc.analysis.count_parameters(doubled) == 32 * 3 * 3 + 32 * 32


def test_depthwise_separable_untied_bias():
    layer = gc.nn.DepthwiseSeparableConv2d(
        3, 5, 3, stride=2, padding="same", bias="untied", input_size=(9, 12)
    )
    assert layer.pointwise.bias.shape == (5, 5, 6)
    x = torch.randn(2, 3, 9, 12)
    hidden = layer.depthwise(x)
    expected = F.conv2d(hidden, layer.pointwise.weight) + layer.pointwise.bias
    torch.testing.assert_close(layer(x), expected)


SPATIAL_CASES = [
    # kernel, stride, padding, dilation, padding_mode
    (3, 1, "valid", 1, "zeros"),
    (5, 2, "same", 1, "zeros"),
    ((5, 3), (1, 2), "full", (2, 1), "zeros"),
    (4, 1, [(1, 2), (0, 3)], 1, "zeros"),
    (3, 2, 1, 1, "reflect"),
    (5, 1, "same", 1, "circular"),
]


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation", "mode"), SPATIAL_CASES)
def test_spatially_separable_is_the_convolution_with_its_rank_mid_kernel(
    kernel, stride, padding, dilation, mode
):
    torch.manual_seed(1)
    layer = gc.nn.SpatiallySeparableConv2d(
        3, 4, kernel, stride, padding, dilation, mid_channels=2, padding_mode=mode
    )
    first, second = layer.passes
    assert first.weight.shape[3] == 1 and second.weight.shape[2] == 1
    # W[o, c, i, j] = sum_m second[o, m, 0, j] * first[m, c, i, 0]
    dense = torch.einsum("mci,omj->ocij", first.weight[..., 0], second.weight[:, :, 0])
    x = torch.randn(2, 3, 12, 11)
    expected = gc.conv(
        x,
        dense,
        second.bias,
        stride=stride,
        padding=padding,
        dilation=dilation,
        padding_mode=mode,
        method="direct",
    )
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_spatially_separable_3d_and_untied_bias():
    torch.manual_seed(2)
    layer = gc.nn.SpatiallySeparableConv3d(
        2, 3, (3, 2, 4), 1, "same", bias="untied", input_size=(5, 6, 7)
    )
    a, b, c = (p.weight for p in layer.passes)
    dense = torch.einsum("mci,nmj,onk->ocijk", a[..., 0, 0], b[:, :, 0, :, 0], c[:, :, 0, 0])
    x = torch.randn(2, 2, 5, 6, 7)
    expected = gc.conv(x, dense, padding="same", method="direct") + layer.passes[2].bias
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    assert layer.passes[2].bias.shape == (3, 5, 6, 7)


ERRORS = {
    "depth_multiplier": (
        lambda: gc.nn.DepthwiseSeparableConv2d(4, 8, 3, depth_multiplier=0),
        ValueError,
        r"`depth_multiplier` must be >= 1",
    ),
    "in_channels": (
        lambda: gc.nn.DepthwiseSeparableConv2d(0, 8, 3),
        ValueError,
        r"`in_channels` must be >= 1",
    ),
    "padding": (
        lambda: gc.nn.DepthwiseSeparableConv2d(4, 8, 3, padding="half"),
        ValueError,
        r"`padding`",
    ),
    "untied without size": (
        lambda: gc.nn.DepthwiseSeparableConv1d(4, 8, 3, bias="untied"),
        ValueError,
        r"needs `input_size`",
    ),
    "mid_channels": (
        lambda: gc.nn.SpatiallySeparableConv2d(4, 8, 3, mid_channels=0),
        ValueError,
        r"`mid_channels` must be >= 1",
    ),
    "spatial dims": (
        lambda: gc.nn.SpatiallySeparableConv(1, 4, 8, 3),
        ValueError,
        r"`num_spatial_dims` must be >= 2",
    ),
    "kernel_size": (
        lambda: gc.nn.SpatiallySeparableConv2d(4, 8, (3, 3, 3)),
        ValueError,
        r"`kernel_size`",
    ),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_name_their_argument(case):
    call, kind, pattern = ERRORS[case]
    with pytest.raises(kind, match=pattern):
        call()
