"""conv_transpose: the exact adjoint of conv, and so the input gradient of conv."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import gridconv as gc

CASES = [
    # input size, kernel, stride, padding, dilation, groups
    ((11,), (3,), 2, "same", 1, 1),
    ((10,), (4,), 3, [(2, 0)], 2, 2),
    ((9, 8), (3, 2), (2, 3), "full", (1, 2), 1),
    ((7, 9), (2, 3), 1, "same", 2, 2),
    ((8, 7), (3, 3), (3, 2), [(0, 2), (1, 0)], 1, 1),
    ((5, 6, 7), (2, 3, 2), (2, 1, 2), "same", (1, 1, 2), 2),
    ((4, 5, 5), (3, 2, 3), 1, 1, 1, 1),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_adjoint_identity_in_float64(case, mode):
    size, kernel, stride, padding, dilation, groups = case
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    x = torch.randn(3, 4, *size, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, *kernel, dtype=torch.float64)
    y = gc.conv(x, w, **kw)
    g = torch.randn_like(y)
    lhs = (y * g).sum()
    rhs = (x * gc.conv_transpose(g, w, input_size=size, **kw)).sum()
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
def test_is_the_input_gradient_of_conv(case, mode):
    size, kernel, stride, padding, dilation, groups = case
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    x = torch.randn(2, 4, *size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4 // groups, *kernel, dtype=torch.float64)
    y = gc.conv(x, w, **kw)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    torch.testing.assert_close(gc.conv_transpose(g, w, input_size=x.shape, **kw), grad)


def test_matches_torch_conv_transpose_with_output_padding():
    y = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    w = torch.randn(6, 3, 3, 3, dtype=torch.float64)
    ref = F.conv_transpose2d(y, w, stride=2, padding=1, output_padding=1)  # size 10
    ours = gc.conv_transpose(y, w, input_size=(10, 10), stride=2, padding=1)
    torch.testing.assert_close(ours, ref)


def test_input_size_selects_among_sizes_a_stride_maps_together():
    w = torch.randn(2, 1, 3, dtype=torch.float64)
    y = torch.randn(1, 2, 4, dtype=torch.float64)
    for n in (9, 10):  # both give 4 outputs with stride 2, valid
        out = gc.conv_transpose(y, w, input_size=n, stride=2)
        assert out.shape == (1, 1, n)


def test_unbatched():
    y = torch.randn(4, 6, 6, dtype=torch.float64)
    w = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    out = gc.conv_transpose(y, w, input_size=(2, 11, 11), stride=2, padding="same")
    assert out.shape == (2, 11, 11)
    torch.testing.assert_close(
        out, gc.conv_transpose(y[None], w, input_size=(11, 11), stride=2, padding="same")[0]
    )
