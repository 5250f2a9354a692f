"""Separable kernels: decompose, is_separable, separable_conv, conv(method="separable")."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

import gridconv as gc
from gridconv.functional.separable import max_rank
from tests.strategies import configs


def outer(*vectors: torch.Tensor) -> torch.Tensor:
    result = vectors[0]
    for v in vectors[1:]:
        result = result.unsqueeze(-1) * v
    return result


def test_recovers_an_exact_2d_separable_kernel():
    g = torch.Generator().manual_seed(0)
    rows = [torch.randn(7, generator=g, dtype=torch.float64) for _ in range(6)]
    cols = [torch.randn(5, generator=g, dtype=torch.float64) for _ in range(6)]
    w = torch.stack([torch.outer(r, c) for r, c in zip(rows, cols)]).reshape(3, 2, 7, 5)
    kernel = gc.decompose(w)
    assert kernel.rank == 1 and kernel.error < 1e-12
    assert kernel.factors[0].shape == (3, 2, 1, 7) and kernel.factors[1].shape == (3, 2, 1, 5)
    torch.testing.assert_close(kernel.to_dense(), w)
    assert gc.is_separable(w)


def test_recovers_an_exact_3d_separable_kernel():
    g = torch.Generator().manual_seed(1)
    a, b, c = (torch.randn(n, generator=g, dtype=torch.float64) for n in (3, 4, 5))
    w = outer(a, b, c)[None, None].repeat(2, 1, 1, 1, 1)
    kernel = gc.decompose(w)
    assert kernel.rank == 1 and kernel.error < 1e-12
    torch.testing.assert_close(kernel.to_dense(), w)
    for factor, v in zip(kernel.factors, (a, b, c)):  # each factor is parallel to its vector
        f = factor[0, 0, 0]
        assert abs(abs(f @ v) - f.norm() * v.norm()) < 1e-10


@pytest.mark.parametrize("kernel_size", [(5, 4), (3, 4, 5)])
def test_reported_error_is_the_true_relative_error(kernel_size):
    w = torch.randn(4, 3, *kernel_size, dtype=torch.float64)
    for rank in range(1, max_rank(kernel_size) + 1):
        kernel = gc.decompose(w, rank)
        true = float((kernel.to_dense() - w).norm() / w.norm())
        assert abs(kernel.error - true) < 1e-9
    assert kernel.error < 1e-9  # full rank: exact
    assert gc.decompose(w, 1).error > 0.1
    assert not gc.is_separable(w)


def test_2d_truncation_is_the_svd_optimum():
    w = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    s = torch.linalg.svdvals(w)  # (2, 2, 6)
    for rank in (1, 3):
        best = (s[..., rank:].square().sum() / s.square().sum()).sqrt()
        assert abs(gc.decompose(w, rank).error - float(best)) < 1e-12


def test_rank_none_meets_rtol_for_every_kernel():
    w = torch.randn(3, 1, 9, 9, dtype=torch.float64)

    def worst(kernel):
        per_kernel = (kernel.to_dense() - w).flatten(2).norm(dim=2) / w.flatten(2).norm(dim=2)
        return float(per_kernel.max())

    kernel = gc.decompose(w, rtol=0.2)
    assert worst(kernel) <= 0.2 < worst(gc.decompose(w, kernel.rank - 1))


@settings(max_examples=40, deadline=None)
@given(configs())
def test_separable_conv_agrees_with_direct(c):
    x, w = c.x(), c.w()
    kernel = gc.decompose(w, rtol=1e-13)  # exact, with as many terms as needed
    ref = gc.conv(x, w, method="direct", **c.kwargs)
    torch.testing.assert_close(gc.separable_conv(x, kernel, **c.kwargs), ref)
    torch.testing.assert_close(gc.conv(x, w, method="separable", **c.kwargs), ref)


@settings(max_examples=25, deadline=None)
@given(configs())
def test_method_separable_gradients_are_the_direct_ones(c):
    x, w = c.x().requires_grad_(), c.w().requires_grad_()
    out = gc.conv(x, w, method="direct", **c.kwargs)
    g = torch.randn_like(out)
    ref = torch.autograd.grad(out, (x, w), g)
    ours = torch.autograd.grad(gc.conv(x, w, method="separable", **c.kwargs), (x, w), g)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)


def test_gradients_flow_to_the_factors():
    g = torch.Generator().manual_seed(2)
    factors = tuple(
        torch.randn(4, 2, 2, k, generator=g, dtype=torch.float64, requires_grad=True)
        for k in (3, 5)
    )
    x = torch.randn(2, 2, 11, 12, generator=g, dtype=torch.float64, requires_grad=True)
    kernel = gc.SeparableKernel(factors)
    out = gc.separable_conv(x, kernel, padding="same", stride=2)
    ref = gc.conv(x, kernel.to_dense(), padding="same", stride=2, method="direct")
    grad_out = torch.randn_like(out)
    ours = torch.autograd.grad(out, (x, *factors), grad_out)
    theirs = torch.autograd.grad(ref, (x, *factors), grad_out)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(
        lambda x, a, b: gc.separable_conv(x, gc.SeparableKernel((a, b)), padding=1),
        (x[:1, :, :6, :6].detach().requires_grad_(), *factors),
    )


def test_separable_conv_depthwise_gaussian_matches_direct():
    t = torch.linspace(-2, 2, 21, dtype=torch.float64)
    gauss = torch.exp(-(t**2))
    w = torch.outer(gauss, gauss).expand(3, 1, 21, 21)
    x = torch.randn(2, 3, 50, 60, dtype=torch.float64)
    kernel = gc.decompose(w)
    assert kernel.rank == 1
    ours = gc.separable_conv(x, kernel, padding="same", groups=3, padding_mode="reflect")
    ref = gc.conv(x, w, padding="same", groups=3, padding_mode="reflect", method="direct")
    torch.testing.assert_close(ours, ref)


def test_low_rank_layer_from_a_trained_conv():
    layer = gc.nn.Conv2d(4, 6, (5, 7), padding="same", bias=True).double()
    low = layer.to_separable(rank=2)
    assert isinstance(low, gc.nn.LowRankConv)
    assert low.rank == 2 and 0 < low.approximation_error < 1
    assert sum(p.numel() for p in low.factors) == 6 * 4 * 2 * (5 + 7)
    x = torch.randn(2, 4, 16, 17, dtype=torch.float64)
    dense = gc.conv(x, low.kernel.to_dense(), layer.bias, padding="same")
    torch.testing.assert_close(low(x), dense)
    exact = layer.to_separable(rtol=1e-12)
    assert exact.approximation_error < 1e-10
    torch.testing.assert_close(exact(x), layer(x))


def test_errors():
    w = torch.randn(2, 3, 5, 4)
    with pytest.raises(ValueError, match=r"`rank` \(=5\) must be at most 4"):
        gc.decompose(w, rank=5)
    with pytest.raises(ValueError, match=r"`rank` must be >= 1, got 0"):
        gc.decompose(w, rank=0)
    with pytest.raises(ValueError, match=r"`rtol` must be a non-negative number"):
        gc.decompose(w, rtol=-1)
    kernel = gc.decompose(w)
    x = torch.randn(1, 3, 10, 10)
    with pytest.raises(TypeError, match=r"`kernel` must be a gridconv.SeparableKernel"):
        gc.separable_conv(x, w)
    with pytest.raises(ValueError, match=r"`x` must have shape .* with 2 spatial dims"):
        gc.separable_conv(torch.randn(1, 3, 10, 10, 10), kernel)
    with pytest.raises(ValueError, match=r"`kernel.factors\[1\]` must .* = \(2, 3, 4, k\)"):
        gc.separable_conv(x, gc.SeparableKernel((kernel.factors[0], torch.randn(2, 3, 1, 4))))
    with pytest.raises(TypeError, match=r"`kernel` has dtype torch.float64 but `x`"):
        gc.separable_conv(x, gc.decompose(w.double()))
    with pytest.raises(ValueError, match=r"channel mismatch"):
        gc.separable_conv(torch.randn(1, 2, 10, 10), kernel)
