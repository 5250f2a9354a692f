"""Pooling: gridconv.pool against torch's pools and a naive loop, channel and pyramid pooling
against explicit references, the layers, and the error messages."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gridconv as gc
from gridconv._shapes import parse_padding, resolve_padding

TORCH_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
TORCH_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
TORCH_LP = {1: F.lp_pool1d, 2: F.lp_pool2d, 3: F.lp_pool3d}


def naive_pool(x, kernel, stride, padding, method, p=2.0, sigma=None, ceil_mode=False):
    """A loop over output cells; each window is clipped to the input (torch ops, so autograd
    gives reference gradients)."""
    d = len(kernel)
    size = x.shape[2:]
    pairs = resolve_padding(parse_padding(padding, d), size, kernel, stride, (1,) * d)
    counts = []
    for n, k, s, (b, a) in zip(size, kernel, stride, pairs):
        span = n + b + a - k
        o = (math.ceil(span / s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + b:
            o -= 1
        counts.append(o)
    sigma = sigma or [k / 4 for k in kernel]
    out = x.new_zeros(*x.shape[:2], *counts)
    for index in itertools.product(*(range(o) for o in counts)):
        lo = [i * s - b for i, s, (b, _) in zip(index, stride, pairs)]
        cells = [range(max(start, 0), min(start + k, n)) for start, k, n in zip(lo, kernel, size)]
        window = x[(..., *(slice(c.start, c.stop) for c in cells))]
        flat = window.flatten(2)
        if method == "max":
            value = flat.amax(-1)
        elif method == "avg":
            value = flat.mean(-1)
        elif method == "lp":
            value = flat.abs().pow(p).sum(-1).pow(1 / p)
        else:
            weight = torch.ones((), dtype=x.dtype)
            for c, start, k, sg in zip(cells, lo, kernel, sigma):
                t = torch.tensor([j - start - (k - 1) / 2 for j in c], dtype=x.dtype)
                weight = weight.unsqueeze(-1) * torch.exp(-(t**2) / (2 * sg**2))
            value = (window * weight).flatten(2).sum(-1) / weight.sum()
        out[(..., *index)] = value
    return out


TORCH_CASES = [
    # d, kernel, stride, padding, ceil_mode
    (1, 3, 2, 1, False),
    (1, 4, 3, 2, True),
    (2, 2, 2, 0, False),
    (2, 3, 2, 1, True),
    (2, (3, 2), (1, 2), (1, 0), False),
    (3, 2, 2, 1, False),
    (3, (3, 2, 2), (2, 1, 2), (1, 1, 0), True),
]


@pytest.mark.parametrize(("d", "kernel", "stride", "padding", "ceil_mode"), TORCH_CASES)
def test_max_and_avg_match_torch(d, kernel, stride, padding, ceil_mode):
    torch.manual_seed(d)
    x = torch.randn(2, 3, *[7, 9, 6][:d], dtype=torch.float64, requires_grad=True)
    g_ours = gc.pool(x, kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    g_ref = TORCH_MAX[d](x, kernel, stride, padding, ceil_mode=ceil_mode)
    torch.testing.assert_close(g_ours, g_ref)
    grad = torch.randn_like(g_ref)
    torch.testing.assert_close(
        torch.autograd.grad(g_ours, x, grad)[0], torch.autograd.grad(g_ref, x, grad)[0]
    )
    a_ours = gc.pool(x, kernel, stride=stride, padding=padding, method="avg", ceil_mode=ceil_mode)
    a_ref = TORCH_AVG[d](x, kernel, stride, padding, ceil_mode, count_include_pad=False)
    torch.testing.assert_close(a_ours, a_ref)
    torch.testing.assert_close(
        torch.autograd.grad(a_ours, x, grad)[0], torch.autograd.grad(a_ref, x, grad)[0]
    )


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.5])
def test_lp_matches_torch_lp_pool(d, p):
    # torch's lp_pool takes no padding and computes x^p (not |x|^p): compare on x > 0.
    torch.manual_seed(0)
    x = torch.rand(2, 3, *[8, 7, 6][:d], dtype=torch.float64).add(0.1).requires_grad_()
    kernel, stride = (3, 2, 2)[:d], (2, 1, 2)[:d]
    ours = gc.pool(x, kernel, stride=stride, method="lp", p=p)
    if d == 3:
        ref = F.lp_pool3d(x, p, kernel, stride)
    else:
        ref = TORCH_LP[d](x, p, kernel if d > 1 else kernel[0], stride if d > 1 else stride[0])
    torch.testing.assert_close(ours, ref)
    grad = torch.randn_like(ref)
    torch.testing.assert_close(
        torch.autograd.grad(ours, x, grad)[0], torch.autograd.grad(ref, x, grad)[0]
    )


NAIVE_CASES = [
    # d, kernel, stride, padding, ceil_mode
    (1, 3, 2, [(2, 0)], False),
    (1, 4, 1, "same", False),
    (1, 3, 2, "full", True),
    (2, 3, 2, "same", False),
    (2, (3, 2), (2, 3), [(0, 2), (1, 1)], True),
    (2, 4, 3, "full", False),
    (3, 2, (1, 2, 2), [(1, 0), (0, 1), (1, 1)], False),
    (3, 3, 2, "same", True),
]


@pytest.mark.parametrize("method", ["max", "avg", "lp", "gaussian"])
@pytest.mark.parametrize(("d", "kernel", "stride", "padding", "ceil_mode"), NAIVE_CASES)
def test_every_method_and_padding_matches_a_naive_loop(
    d, kernel, stride, padding, ceil_mode, method
):
    torch.manual_seed(1)
    x = torch.randn(2, 2, *[9, 8, 5][:d], dtype=torch.float64, requires_grad=True)
    kernel_t = (kernel,) * d if isinstance(kernel, int) else kernel
    stride_t = (stride,) * d if isinstance(stride, int) else stride
    args = {"stride": stride, "padding": padding, "method": method, "ceil_mode": ceil_mode}
    ours = gc.pool(x, kernel, p=3.0, **args)
    ref = naive_pool(x, kernel_t, stride_t, padding, method, p=3.0, ceil_mode=ceil_mode)
    torch.testing.assert_close(ours, ref)
    grad = torch.randn_like(ref)
    torch.testing.assert_close(
        torch.autograd.grad(ours, x, grad)[0], torch.autograd.grad(ref, x, grad)[0]
    )


def test_gaussian_sigma_can_be_set_and_a_wide_one_is_the_mean():
    torch.manual_seed(2)
    x = torch.randn(1, 3, 10, 10, dtype=torch.float64)
    narrow = gc.pool(x, 5, stride=1, padding="same", method="gaussian", sigma=(0.7, 1.3))
    ref = naive_pool(x, (5, 5), (1, 1), "same", "gaussian", sigma=(0.7, 1.3))
    torch.testing.assert_close(narrow, ref)
    wide = gc.pool(x, 5, stride=1, padding="same", method="gaussian", sigma=1e6)
    torch.testing.assert_close(wide, gc.pool(x, 5, stride=1, padding="same", method="avg"))
    # a tiny sigma keeps only the centre cell (odd kernel)
    sharp = gc.pool(x, 3, stride=1, padding="same", method="gaussian", sigma=1e-2)
    torch.testing.assert_close(sharp, x)


def test_padding_never_changes_the_statistic():
    # Constant input: every window, border ones included, summarises to the constant.
    x = torch.full((1, 1, 7, 7), -2.0, dtype=torch.float64)
    for method in ("max", "avg", "gaussian"):
        out = gc.pool(x, 3, stride=2, padding="full", method=method)
        torch.testing.assert_close(out, torch.full_like(out, -2.0))
    # The L2 norm of a border window counts only its input cells.
    ones = torch.ones(1, 1, 5, dtype=torch.float64)
    out = gc.pool(ones, 3, stride=1, padding="same", method="lp")
    torch.testing.assert_close(out[0, 0], torch.tensor([2.0, 3.0, 3.0, 3.0, 2.0]).sqrt().double())


def test_max_pool_gradient_routes_to_the_argmax():
    torch.manual_seed(3)
    x = torch.randperm(9 * 11, dtype=torch.float64).reshape(1, 1, 9, 11).requires_grad_()
    out = gc.pool(x, 3, stride=2, padding="same")
    grad = torch.randn_like(out)
    (dx,) = torch.autograd.grad(out, x, grad)
    expected = torch.zeros_like(x)
    pairs = resolve_padding("same", (9, 11), (3, 3), (2, 2), (1, 1))
    for i, j in itertools.product(*(range(n) for n in out.shape[2:])):
        r0, c0 = max(2 * i - pairs[0][0], 0), max(2 * j - pairs[1][0], 0)
        window = x[0, 0, r0 : 2 * i - pairs[0][0] + 3, c0 : 2 * j - pairs[1][0] + 3]
        r, c = np.unravel_index(int(window.argmax()), tuple(window.shape))
        expected[0, 0, r0 + r, c0 + c] += grad[0, 0, i, j]
    torch.testing.assert_close(dx, expected)


def test_unbatched_input_and_lp_p2_is_the_l2_norm():
    torch.manual_seed(4)
    x = torch.randn(3, 8, 8, dtype=torch.float64)
    out = gc.pool(x, (2, 2), method="lp")
    ref = x.reshape(3, 4, 2, 4, 2).pow(2).sum((2, 4)).sqrt()
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize(("channels", "size"), [(15, 3), (15, 5), (9, 9), (7, 1)])
@pytest.mark.parametrize("method", ["max", "avg", "lp"])
def test_channel_pool_matches_a_loop_over_groups(channels, size, method):
    torch.manual_seed(5)
    x = torch.randn(3, channels, 5, 7, dtype=torch.float64)
    out = gc.channel_pool(x, size, method=method, p=3.0)
    for g in range(channels // size):
        group = x[:, g * size : (g + 1) * size]
        ref = {
            "max": group.max(1).values,
            "avg": group.sum(1) / size,
            "lp": group.abs().pow(3).sum(1).pow(1 / 3),
        }[method]
        torch.testing.assert_close(out[:, g], ref)


def numpy_pyramid(x: np.ndarray, levels, method) -> np.ndarray:
    """He et al.'s bins, ``[floor(i n / L), ceil((i + 1) n / L))`` per dim, in NumPy."""
    n_batch, channels, *size = x.shape
    reduce = np.max if method == "max" else np.mean
    parts = []
    for level in levels:
        out = np.zeros((n_batch, channels, *(level,) * len(size)))
        for index in itertools.product(range(level), repeat=len(size)):
            window = tuple(
                slice(i * n // level, -(-(i + 1) * n // level)) for i, n in zip(index, size)
            )
            cells = x[(slice(None), slice(None), *window)].reshape(n_batch, channels, -1)
            out[(slice(None), slice(None), *index)] = reduce(cells, axis=-1)
        parts.append(out.reshape(n_batch, -1))
    return np.concatenate(parts, axis=1)


@pytest.mark.parametrize("size", [(13,), (7, 11), (5, 6, 9), (3, 3)])
@pytest.mark.parametrize("method", ["max", "avg"])
def test_pyramid_pool_matches_the_bins_of_he_et_al(size, method):
    torch.manual_seed(6)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    out = gc.pyramid_pool(x, (1, 2, 3), method=method)
    np.testing.assert_allclose(out.numpy(), numpy_pyramid(x.numpy(), (1, 2, 3), method))
    assert out.shape == (2, 3 * sum(level ** len(size) for level in (1, 2, 3)))


def test_a_pyramid_network_classifies_digits_of_two_sizes_in_one_code_path():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16
    labels = torch.tensor(digits.target)
    big = F.interpolate(images, size=(13, 13), mode="bilinear", align_corners=False)
    torch.manual_seed(7)
    net = torch.nn.Sequential(
        gc.nn.Conv2d(1, 16, 3, padding="same"),
        torch.nn.ReLU(),
        gc.nn.PyramidPool((1, 2, 4), method="max"),
        torch.nn.Linear(gc.nn.PyramidPool((1, 2, 4)).out_features(16), 10),
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    train, test = slice(0, 1400), slice(1400, None)
    for _ in range(8):
        for start in range(0, 1400, 100):
            for batch in (images, big):  # the same network, both sizes
                chunk = slice(start, start + 100)
                loss = F.cross_entropy(net(batch[train][chunk]), labels[train][chunk])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    with torch.no_grad():
        for batch in (images, big):
            accuracy = (net(batch[test]).argmax(1) == labels[test]).float().mean()
            assert accuracy > 0.85, accuracy


def test_global_pool_and_the_layers_are_the_functions():
    torch.manual_seed(8)
    x = torch.randn(2, 6, 5, 7)
    torch.testing.assert_close(gc.global_pool(x, method="max"), x.amax((2, 3)))
    torch.testing.assert_close(gc.nn.GlobalPool()(x), x.mean((2, 3)))
    torch.testing.assert_close(gc.nn.GlobalPool("lp")(x), x.norm(dim=(2, 3)))
    layer = gc.nn.Pool2d(3, 2, "same", "gaussian", sigma=0.8, ceil_mode=True)
    expected = gc.pool(x, 3, stride=2, padding="same", method="gaussian", sigma=0.8, ceil_mode=True)
    torch.testing.assert_close(layer(x), expected)
    assert "gaussian" in repr(layer)
    torch.testing.assert_close(
        gc.nn.Pool1d(2, method="avg")(x[:, :, 0]), F.avg_pool1d(x[:, :, 0], 2)
    )
    torch.testing.assert_close(gc.nn.Pool3d(2)(x[None]), F.max_pool3d(x[None], 2))
    torch.testing.assert_close(gc.nn.ChannelPool(3, "avg")(x), x.reshape(2, 2, 3, 5, 7).mean(2))
    spp = gc.nn.PyramidPool((1, 2))
    torch.testing.assert_close(spp(x), gc.pyramid_pool(x, (1, 2)))


def test_maxout_is_the_layer_then_channel_max_pooling():
    torch.manual_seed(9)
    layer = gc.nn.Conv2d(2, 12, 3, padding="same")
    unit = gc.nn.Maxout(layer, pool_size=4)
    x = torch.randn(3, 2, 6, 6)
    torch.testing.assert_close(unit(x), layer(x).reshape(3, 3, 4, 6, 6).amax(2))
    dense = gc.nn.Maxout(torch.nn.Linear(5, 6), pool_size=3)
    v = torch.randn(4, 5)
    torch.testing.assert_close(dense(v), dense.layer(v).reshape(4, 2, 3).amax(2))


X = torch.randn(2, 6, 8, 8)
ERRORS = {
    "kernel larger than input": (lambda: gc.pool(X, 9), ValueError, r"kernel is larger"),
    "unknown method": (lambda: gc.pool(X, 2, method="median"), ValueError, r"`method` must be"),
    "p zero": (lambda: gc.pool(X, 2, method="lp", p=0), ValueError, r"`p` must be .* > 0"),
    "p negative": (lambda: gc.channel_pool(X, 2, method="lp", p=-1.0), ValueError, r"`p`"),
    "sigma": (lambda: gc.pool(X, 3, method="gaussian", sigma=0.0), ValueError, r"`sigma`"),
    "padding >= kernel": (lambda: gc.pool(X, 2, padding=2), ValueError, r"`padding` .* less"),
    "stride zero": (lambda: gc.pool(X, 2, stride=0), ValueError, r"`stride`"),
    "x not tensor": (lambda: gc.pool(X.numpy(), 2), TypeError, r"`x` must be a torch.Tensor"),
    "x wrong dims": (lambda: gc.pool(X[0, 0], 2), ValueError, r"`x` must have shape"),
    "pool_size not dividing": (
        lambda: gc.channel_pool(X, 4),
        ValueError,
        r"`pool_size` \(=4\) must divide the channels of `x` \(=6\)",
    ),
    "channel method": (lambda: gc.channel_pool(X, 2, method="gaussian"), ValueError, r"`method`"),
    "empty levels": (lambda: gc.pyramid_pool(X, ()), ValueError, r"`levels` must be a non-empty"),
    "level zero": (lambda: gc.pyramid_pool(X, (1, 0)), ValueError, r"`levels` must be >= 1"),
    "pyramid method": (lambda: gc.pyramid_pool(X, method="lp"), ValueError, r"`method`"),
    "layer p": (lambda: gc.nn.Pool2d(2, method="lp", p=-2), ValueError, r"`p`"),
    "maxout pool_size": (
        lambda: gc.nn.Maxout(gc.nn.Conv2d(1, 10, 3), 4),
        ValueError,
        r"`pool_size` \(=4\) must divide the layer's out_channels \(=10\)",
    ),
    "maxout layer": (lambda: gc.nn.Maxout(lambda x: x, 2), TypeError, r"`layer` must be"),
    "pyramid layer levels": (lambda: gc.nn.PyramidPool([]), ValueError, r"`levels`"),
    "global too few dims": (lambda: gc.global_pool(X[:, :, 0, 0]), ValueError, r"`x` must have"),
    # empty dims: torch's adaptive and windowed kernels raise RuntimeErrors of their own
    "pyramid empty spatial dim": (
        lambda: gc.pyramid_pool(X[:, :, :0]),
        ValueError,
        r"`x` must have at least one channel and one cell in every spatial dim; got shape "
        r"\(2, 6, 0, 8\)",
    ),
    "pyramid no channels": (
        lambda: gc.pyramid_pool(X[:, :0]),
        ValueError,
        r"`x` must have at least one channel",
    ),
    "global empty spatial dim": (
        lambda: gc.global_pool(X[..., :0], method="max"),
        ValueError,
        r"`x` must have at least one cell in every spatial dim",
    ),
    "pool no channels": (lambda: gc.pool(X[:, :0], 2), ValueError, r"`x` must have at least"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_name_their_argument(case):
    call, kind, pattern = ERRORS[case]
    with pytest.raises(kind, match=pattern):
        call()
