"""conv_matrix: convolution as a sparse matrix."""

from __future__ import annotations

import math

import torch

import gridconv as gc


def test_rows_hold_the_kernel_shifted_by_the_stride():
    w = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    m = gc.conv_matrix(w, (5, 6), stride=(1, 2)).to_dense()
    assert m.shape == (3 * 2, 5 * 6)
    for row, (i, j) in enumerate((i, j) for i in range(3) for j in range(2)):
        image = m[row].reshape(5, 6)
        expected = torch.zeros(5, 6)
        expected[i : i + 3, 2 * j : 2 * j + 3] = w[0, 0]
        torch.testing.assert_close(image, expected)


def test_non_zero_count_is_kernel_size_per_row_without_padding():
    w = torch.randn(4, 3, 2, 3)
    m = gc.conv_matrix(w, (7, 8))
    rows = 4 * 6 * 6
    assert m.shape == (rows, 3 * 7 * 8)
    assert m._nnz() == rows * 3 * 2 * 3
    assert m.is_sparse and m.dtype == w.dtype


def test_is_much_smaller_than_the_dense_matrix():
    w = torch.randn(1, 1, 3, 3)
    m = gc.conv_matrix(w, (28, 28), padding="same")
    assert m._nnz() < 9 * 28 * 28
    assert m._nnz() / math.prod(m.shape) < 0.02


def test_values_are_differentiable_in_w():
    w = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 9, dtype=torch.float64)
    m = gc.conv_matrix(w, 9, padding="same", padding_mode="reflect")
    (grad_m,) = torch.autograd.grad((m @ x.flatten()).square().sum(), w)
    (grad_c,) = torch.autograd.grad(
        gc.conv(x, w, padding="same", padding_mode="reflect").square().sum(), w
    )
    torch.testing.assert_close(grad_m, grad_c)


def test_accepts_a_whole_input_shape():
    w = torch.randn(6, 1, 3, 3)
    a = gc.conv_matrix(w, (2, 3, 10, 10), groups=3)
    b = gc.conv_matrix(w, (10, 10), groups=3)
    torch.testing.assert_close(a.to_dense(), b.to_dense())
