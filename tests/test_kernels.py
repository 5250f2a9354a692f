"""Hand-designed, Gabor and random kernels: closed forms against scipy.ndimage and direct
evaluations of the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

import gridconv as gc
from gridconv import kernels as K
from gridconv.kernels.gabor import PARAMETERS


def filtered(x: np.ndarray, w: torch.Tensor) -> np.ndarray:
    """gridconv's correlation of one image with each kernel, zero-padded to the same size."""
    t = torch.from_numpy(x)[None, None]
    return gc.conv(t, w.double(), padding="same", method="direct")[0].numpy()


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_derivative_kernels_match_scipy_ndimage(ndim):
    rng = np.random.default_rng(ndim)
    x = rng.standard_normal((9, 8, 7)[:ndim])
    for ours, reference in ((K.sobel, ndimage.sobel), (K.prewitt, ndimage.prewitt)):
        w = ours(ndim)
        assert w.shape == (ndim, 1, *(3,) * ndim)
        out = filtered(x, w)
        for axis in range(ndim):
            np.testing.assert_allclose(out[axis], reference(x, axis=axis, mode="constant"))
    np.testing.assert_allclose(
        filtered(x, K.laplacian(ndim))[0], ndimage.laplace(x, mode="constant")
    )


def test_diagonal_laplacian_is_the_block_sum_minus_the_centre():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 9))
    block = ndimage.uniform_filter(x, 3, mode="constant") * 9
    np.testing.assert_allclose(filtered(x, K.laplacian(diagonal=True))[0], block - 9 * x)


@pytest.mark.parametrize("sigma", [0.8, 1.5, (1.0, 2.0)])
def test_gaussian_matches_scipy_gaussian_filter(sigma):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 21))
    w = K.gaussian(sigma, dtype=torch.float64)
    sigmas = sigma if isinstance(sigma, tuple) else (sigma, sigma)
    radii = [(k - 1) // 2 for k in w.shape[2:]]
    assert radii == [math.ceil(3 * s) for s in sigmas]
    assert w.sum().item() == pytest.approx(1.0)
    reference = ndimage.gaussian_filter(x, sigmas, mode="constant", truncate=1.0, radius=radii)
    np.testing.assert_allclose(filtered(x, w)[0], reference, atol=1e-12)


def test_gaussian_closed_form_even_sizes_and_other_dims():
    w = K.gaussian(1.3, 4, ndim=1, dtype=torch.float64)[0, 0]
    t = torch.tensor([-1.5, -0.5, 0.5, 1.5], dtype=torch.float64)  # centred between cells
    expected = torch.exp(-(t**2) / (2 * 1.3**2))
    torch.testing.assert_close(w, expected / expected.sum())
    assert K.gaussian(1.0, ndim=3).shape == (1, 1, 7, 7, 7)


def test_difference_of_gaussians_and_box():
    dog = K.difference_of_gaussians(1.0, 1.6, dtype=torch.float64)
    size = dog.shape[2:]
    expected = K.gaussian(1.0, size, dtype=torch.float64) - K.gaussian(
        1.6, size, dtype=torch.float64
    )
    torch.testing.assert_close(dog, expected)
    assert abs(dog.sum().item()) < 1e-3 and dog[0, 0, 5, 5] > 0 > dog[0, 0, 5, 1]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 9))
    np.testing.assert_allclose(
        filtered(x, K.box(3)), [ndimage.uniform_filter(x, 3, mode="constant")], rtol=1e-6
    )


def test_oriented_edges_are_steerable_and_find_the_edge_direction():
    angles = [0.0, math.pi / 2, 0.7, 2.0, 4.0]
    w = K.oriented_edges(9, angles, dtype=torch.float64)
    for k, a in enumerate(angles):
        torch.testing.assert_close(w[k], math.cos(a) * w[0] + math.sin(a) * w[1])
    assert torch.allclose(w.flatten(1).norm(dim=1), torch.ones(5, dtype=torch.float64))
    # a ramp rising along direction 2.0 (x right, y down) answers most to kernel 2.0
    y, x = torch.meshgrid(torch.arange(15.0), torch.arange(15.0), indexing="ij")
    ramp = (x * math.cos(2.0) + y * math.sin(2.0)).double()
    bank = K.oriented_edges(9, 16, dtype=torch.float64)
    response = gc.conv(ramp[None, None], bank)[0, :, 3, 3]
    assert response.argmax().item() == round(2.0 / (2 * math.pi / 16))


def direct_gabor(rows, cols, alpha, beta_x, beta_y, f, phi, x0, y0, tau):
    """The chapter's formula, cell by cell."""
    out = np.zeros((rows, cols))
    for r in range(rows):
        for c in range(cols):
            x, y = c - (cols - 1) / 2, r - (rows - 1) / 2
            xr = (x - x0) * math.cos(tau) + (y - y0) * math.sin(tau)
            yr = -(x - x0) * math.sin(tau) + (y - y0) * math.cos(tau)
            out[r, c] = alpha * math.exp(-beta_x * xr**2 - beta_y * yr**2) * math.cos(f * xr + phi)
    return out


def test_gabor_follows_the_chapters_formula():
    rng = np.random.default_rng(3)
    for _ in range(5):
        p = dict(
            alpha=rng.uniform(0.5, 2),
            beta_x=rng.uniform(0.02, 0.5),
            beta_y=rng.uniform(0.02, 0.5),
            frequency=rng.uniform(0.2, 2.5),
            phase=rng.uniform(0, 6),
            x0=rng.uniform(-2, 2),
            y0=rng.uniform(-2, 2),
            tau=rng.uniform(0, 3),
        )
        w = K.gabor((7, 10), dtype=torch.float64, **p)
        expected = direct_gabor(7, 10, *(p[k] for k in PARAMETERS))
        np.testing.assert_allclose(w.numpy(), expected, atol=1e-12)


def test_gabor_parameters_broadcast_and_are_differentiable():
    tau = torch.linspace(0, 3, 4, dtype=torch.float64, requires_grad=True)
    f = torch.tensor([[0.5], [1.5]], dtype=torch.float64)
    w = K.gabor(9, beta_x=0.1, beta_y=0.2, frequency=f, tau=tau)
    assert w.shape == (2, 4, 9, 9)
    torch.testing.assert_close(
        w[1, 2],
        K.gabor(9, beta_x=0.1, beta_y=0.2, frequency=1.5, tau=tau[2].item(), dtype=torch.float64),
    )
    beta = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t, b: K.gabor(5, beta_x=b, beta_y=0.3, frequency=1.0, tau=t), (tau, beta)
    )


def test_gabor_bank_order_and_quadrature_pairs():
    bank = K.gabor_bank(9, orientations=3, frequencies=(0.8, 1.6), dtype=torch.float64)
    assert bank.shape == (12, 1, 9, 9)
    params = K.bank_parameters(3, (0.8, 1.6))
    assert params["tau"].tolist()[:4] == [0.0] * 4 and params["phase"].tolist()[:2] == [
        0.0,
        math.pi / 2,
    ]
    torch.testing.assert_close(bank[:, 0], K.gabor(9, **params))
    pair = K.quadrature_pair(9, beta_x=0.1, beta_y=0.1, frequency=1.2, tau=0.4)
    # the pair is cos and -sin of the same carrier under one envelope: their squares sum to
    # the squared envelope
    envelope = K.gabor(9, beta_x=0.1, beta_y=0.1, frequency=0.0, tau=0.4)
    torch.testing.assert_close(pair[0, 0] ** 2 + pair[1, 0] ** 2, envelope**2)


def test_fit_gabor_tells_gabors_from_noise():
    g = torch.Generator().manual_seed(4)
    n = 24

    def uniform(lo, hi):
        return torch.rand(n, generator=g, dtype=torch.float64) * (hi - lo) + lo

    gabors = K.gabor(
        8,
        alpha=uniform(0.5, 2),
        beta_x=uniform(0.05, 0.3),
        beta_y=uniform(0.05, 0.3),
        frequency=uniform(0.6, 2.2),
        phase=uniform(0, 6.2),
        x0=uniform(-1, 1),
        y0=uniform(-1, 1),
        tau=uniform(0, 3.1),
    )
    fit = K.fit_gabor(gabors)
    assert fit.r2.median() > 0.97 and (fit.r2 >= 0.6).all()
    torch.testing.assert_close(K.gabor(8, **fit.params), fit.fitted)
    noise = K.fit_gabor(torch.randn(40, 1, 8, 8, generator=g))
    assert (noise.r2 >= 0.6).float().mean() < 0.1


@pytest.mark.parametrize("method", ["normal", "uniform"])
def test_random_kernels_have_the_stated_distribution(method):
    g = torch.Generator().manual_seed(5)
    w = K.random_kernels((4000, 3, 5, 5), method=method, gain=2.0, generator=g, dtype=torch.float64)
    fan_in = 75
    assert w.std().item() == pytest.approx(2 / math.sqrt(fan_in), rel=0.01)
    assert abs(w.mean().item()) < 0.002
    if method == "uniform":
        assert w.abs().max() <= 2 * math.sqrt(3 / fan_in)
    again = K.random_kernels(
        (4000, 3, 5, 5),
        method=method,
        gain=2.0,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(5),
    )
    torch.testing.assert_close(w, again)


def test_orthogonal_random_kernels():
    g = torch.Generator().manual_seed(6)
    few = K.random_kernels((6, 2, 3, 3), method="orthogonal", generator=g, dtype=torch.float64)
    flat = few.flatten(1)
    torch.testing.assert_close(flat @ flat.T, torch.eye(6, dtype=torch.float64))
    many = K.random_kernels((30, 1, 3, 3), method="orthogonal", generator=g, dtype=torch.float64)
    flat = many.flatten(1)
    torch.testing.assert_close(flat.T @ flat, torch.eye(9, dtype=torch.float64))


ERRORS = {
    "ndim": (lambda: K.sobel(4), ValueError, r"`ndim` must be 1, 2 or 3"),
    "sigma": (lambda: K.gaussian(0.0), ValueError, r"`sigma` must be a positive number"),
    "size": (lambda: K.gaussian(1.0, 0), ValueError, r"`size` must be >= 1"),
    "surround": (lambda: K.difference_of_gaussians(1.0, -1), ValueError, r"`surround`"),
    "box size": (lambda: K.box((3, 3, 3)), ValueError, r"`size`"),
    "edges angles": (lambda: K.oriented_edges(5, []), ValueError, r"`angles`"),
    "edges size": (lambda: K.oriented_edges(1, 4), ValueError, r"`size` must be >= 2"),
    "gabor beta": (
        lambda: K.gabor(5, beta_x=0.0, beta_y=0.1, frequency=1.0),
        ValueError,
        r"`beta_x` must be > 0",
    ),
    "gabor size": (
        lambda: K.gabor(0, beta_x=0.1, beta_y=0.1, frequency=1.0),
        ValueError,
        r"`size` must be >= 1",
    ),
    "gabor number": (
        lambda: K.gabor(5, beta_x="wide", beta_y=0.1, frequency=1.0),
        ValueError,
        r"`beta_x` must be a finite number or a tensor",
    ),
    "bank frequencies": (
        lambda: K.gabor_bank(7, orientations=2, frequencies=(-1.0,)),
        ValueError,
        r"`frequencies` must be positive",
    ),
    "bank orientations": (
        lambda: K.gabor_bank(7, orientations=0, frequencies=(1.0,)),
        ValueError,
        r"`orientations` must be >= 1",
    ),
    "fit shape": (lambda: K.fit_gabor(torch.randn(3, 2, 5, 5)), ValueError, r"`kernels` must"),
    "random shape": (lambda: K.random_kernels((4, 3)), ValueError, r"`shape` must be"),
    "random method": (
        lambda: K.random_kernels((4, 3, 3), method="sparse"),
        ValueError,
        r"`method` must be one of",
    ),
    "random gain": (lambda: K.random_kernels((4, 3, 3), gain=0), ValueError, r"`gain`"),
    "random generator": (
        lambda: K.random_kernels((4, 3, 3), generator=0),
        TypeError,
        r"`generator` must be a torch.Generator",
    ),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_name_their_argument(case):
    call, kind, pattern = ERRORS[case]
    with pytest.raises(kind, match=pattern):
        call()
