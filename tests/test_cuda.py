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
