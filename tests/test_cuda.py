"""The CUDA paths: every method on GPU tensors agrees with the CPU (run where CUDA exists)."""

from __future__ import annotations

import pytest
import torch

import gridconv as gc

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("method", ["direct", "fft", "separable", "auto"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_methods_on_cuda_match_the_cpu(method, dtype):
    x = torch.randn(2, 4, 40, 41, dtype=dtype)
    w = torch.randn(6, 2, 9, 7, dtype=dtype)
    kw = {"padding": "same", "groups": 2, "stride": (1, 2), "padding_mode": "reflect"}
    ref = gc.conv(x, w, method="direct", **kw)
    out = gc.conv(x.cuda(), w.cuda(), method=method, **kw)
    assert out.device.type == "cuda" and out.dtype == dtype
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)


def test_fft_gradients_on_cuda():
    x = torch.randn(1, 2, 30, 30, dtype=torch.float64, device="cuda", requires_grad=True)
    w = torch.randn(3, 2, 11, 11, dtype=torch.float64, device="cuda", requires_grad=True)
    out = gc.fft_conv(x, w, padding="same")
    ref = gc.conv(x, w, padding="same", method="direct")
    g = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, (x, w), g), torch.autograd.grad(ref, (x, w), g)):
        torch.testing.assert_close(a, b)


def test_measured_planning_on_cuda():
    x, w = torch.randn(2, 3, 128, 128, device="cuda"), torch.randn(8, 3, 15, 15, device="cuda")
    with gc.planning("measure"):
        out = gc.conv(x, w, padding="same")
    torch.testing.assert_close(
        out, gc.conv(x, w, padding="same", method="direct"), rtol=1e-3, atol=1e-3
    )


def test_eval_layer_cache_on_cuda():
    layer = gc.nn.Conv2d(3, 4, 15, padding="same", method="fft").cuda().eval()
    x = torch.randn(1, 3, 64, 64, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer(x))


@pytest.mark.parametrize("method", ["max", "avg", "lp", "gaussian"])
def test_pooling_on_cuda_matches_the_cpu(method):
    x = torch.randn(2, 3, 17, 16, dtype=torch.float64, requires_grad=True)
    kw = {"stride": 2, "padding": "same", "method": method, "ceil_mode": True}
    ref = gc.pool(x, 3, **kw)
    xc = x.detach().cuda().requires_grad_()
    out = gc.pool(xc, 3, **kw)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), ref)
    g = torch.randn_like(ref)
    (gx,) = torch.autograd.grad(ref, x, g)
    (gxc,) = torch.autograd.grad(out, xc, g.cuda())
    torch.testing.assert_close(gxc.cpu(), gx)
    torch.testing.assert_close(gc.pyramid_pool(xc).cpu(), gc.pyramid_pool(x))


def test_analysis_on_cuda_modules():
    net = torch.nn.Sequential(
        gc.nn.DepthwiseSeparableConv2d(3, 8, 3, padding="same"), gc.nn.Pool2d(2)
    ).cuda()
    assert gc.analysis.count_flops(net, (1, 3, 16, 16)) == gc.analysis.count_flops(
        net.cpu(), (1, 3, 16, 16)
    )
    assert gc.analysis.receptive_field(net.cuda(), (1, 3, 16, 16)).size == (4, 4)


def test_kmeans_kernels_on_cuda():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 40, 40, generator=g).cuda()
    learned = gc.kernels.kmeans_kernels(images, 16, 6, num_patches=3000, generator=g)
    assert learned.kernels.device.type == "cuda" and learned.kernels.shape == (16, 3, 6, 6)
    norms = learned.kernels.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    white = learned.whitening
    features = gc.kernels.single_layer_features(images, learned.kernels, whitening=white)
    assert features.device.type == "cuda" and features.shape == (4, 64)


def test_gabor_layers_on_cuda():
    cells = gc.nn.ComplexCell2d(9, orientations=4, frequencies=(1.0,)).cuda()
    x = torch.randn(2, 1, 20, 20)
    torch.testing.assert_close(cells(x.cuda()).cpu(), cells.cpu()(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
def test_a_converted_layer_follows_cuda_float16_autocast(method):
    conv = torch.nn.Conv2d(4, 6, 9, padding=4).cuda()
    layer = gc.nn.convert(conv)
    layer.method = method
    x = torch.randn(2, 4, 40, 40, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=torch.float16):
        expected, got = conv(x), layer(x)
    assert got.dtype == expected.dtype == torch.float16
    torch.testing.assert_close(got.float(), expected.float(), rtol=1e-2, atol=1e-2)
    got.float().sum().backward()
    assert x.grad is not None and layer.weight.grad.dtype == torch.float32
