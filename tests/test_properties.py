"""Property tests: output sizes, linearity, shift equivariance, the adjoint, the matrix form."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gridconv as gc
from tests.strategies import Config, configs

PROPERTY = settings(max_examples=60, deadline=None)


def expected_output_size(c: Config) -> tuple[int, ...]:
    """The output-size formula, written out once more per padding form."""
    sizes = []
    for i, (n, k, s, dl) in enumerate(zip(c.input_size, c.kernel_size, c.stride, c.dilation)):
        span = dl * (k - 1)
        if c.padding == "same":
            sizes.append(-(-n // s))
            continue
        if c.padding == "valid":
            total = 0
        elif c.padding == "full":
            total = 2 * span
        elif isinstance(c.padding, int):
            total = 2 * c.padding
        else:
            total = sum(c.padding[i])
        sizes.append((n + total - span - 1) // s + 1)
    return tuple(sizes)


@PROPERTY
@given(configs())
def test_output_size_formula(c):
    out = gc.conv(c.x(), c.w(), **c.kwargs)
    assert out.shape == (c.batch, c.out_channels, *expected_output_size(c))


@PROPERTY
@given(configs(), st.floats(-3, 3), st.floats(-3, 3))
def test_linear_in_x_and_in_w(c, a, b):
    x1, x2, w1, w2 = c.x(0), c.x(1), c.w(2), c.w(3)
    lhs = gc.conv(a * x1 + b * x2, w1, **c.kwargs)
    rhs = a * gc.conv(x1, w1, **c.kwargs) + b * gc.conv(x2, w1, **c.kwargs)
    torch.testing.assert_close(lhs, rhs)
    lhs = gc.conv(x1, a * w1 + b * w2, **c.kwargs)
    rhs = a * gc.conv(x1, w1, **c.kwargs) + b * gc.conv(x1, w2, **c.kwargs)
    torch.testing.assert_close(lhs, rhs)


@PROPERTY
@given(configs(stride_one=True), st.data())
def test_circular_same_convolution_commutes_with_shifts(c, data):
    c.padding, c.padding_mode = "same", "circular"
    x, w = c.x(), c.w()
    dims = tuple(range(2, 2 + len(c.input_size)))
    shifts = tuple(data.draw(st.integers(-n, n)) for n in c.input_size)
    shifted_then_conv = gc.conv(torch.roll(x, shifts, dims), w, **c.kwargs)
    conv_then_shifted = torch.roll(gc.conv(x, w, **c.kwargs), shifts, dims)
    torch.testing.assert_close(shifted_then_conv, conv_then_shifted)


@PROPERTY
@given(configs())
def test_conv_transpose_is_the_adjoint(c):
    x, w = c.x(), c.w()
    y = gc.conv(x, w, **c.kwargs)
    g = torch.randn_like(y)
    xt = gc.conv_transpose(g, w, input_size=c.input_size, **c.kwargs)
    lhs, rhs = (y * g).sum(), (x * xt).sum()
    scale = y.norm() * g.norm()  # Cauchy-Schwarz bound on both sides
    assert abs(lhs - rhs) <= 1e-10 * scale


@PROPERTY
@given(configs())
def test_conv_matrix_agrees_with_conv_and_conv_transpose(c):
    x, w = c.x(), c.w()
    m = gc.conv_matrix(w, c.input_size, **c.kwargs)
    y = gc.conv(x, w, **c.kwargs)
    torch.testing.assert_close((m @ x.reshape(c.batch, -1).T).T, y.reshape(c.batch, -1))
    g = torch.randn_like(y)
    xt = gc.conv_transpose(g, w, input_size=c.input_size, **c.kwargs)
    torch.testing.assert_close((m.T @ g.reshape(c.batch, -1).T).T, xt.reshape(c.batch, -1))
