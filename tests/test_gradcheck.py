"""torch.autograd.gradcheck in float64: gradients of conv w.r.t. x, w and the bias."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import gridconv as gc

CASES = [
    ((7,), (3,), 2, "same", 1, 2),
    ((6, 5), (2, 3), (1, 2), [(1, 0), (2, 1)], (2, 1), 1),
    ((4, 4, 5), (2, 2, 3), (2, 1, 1), "full", 1, 1),
]


def inputs(size, kernel, groups, untied_out=None):
    x = torch.randn(2, 2, *size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2 // groups, *kernel, dtype=torch.float64, requires_grad=True)
    shape = (4,) if untied_out is None else (4, *untied_out)
    b = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    return x, w, b


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("untied", [False, True])
def test_conv_gradients(case, mode, untied):
    size, kernel, stride, padding, dilation, groups = case
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    x, w, _ = inputs(size, kernel, groups)
    out_size = gc.conv(x, w, **kw).shape[2:] if untied else None
    x, w, b = inputs(size, kernel, groups, out_size)
    assert gradcheck(lambda x, w, b: gc.conv(x, w, b, **kw), (x, w, b))


@pytest.mark.parametrize("case", CASES)
def test_conv_transpose_gradients(case):
    size, kernel, stride, padding, dilation, groups = case
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    x, w, _ = inputs(size, kernel, groups)
    y = gc.conv(x, w, **kw).detach().requires_grad_()
    assert gradcheck(lambda y, w: gc.conv_transpose(y, w, input_size=size, **kw), (y, w))


def test_conv_matrix_gradient():
    w = torch.randn(2, 1, 3, 2, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda w: gc.conv_matrix(w, (4, 5), padding="same").to_dense(), (w,))
