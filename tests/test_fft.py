"""fft_conv: every argument conv takes, the same results, gradients, fast lengths, tiling."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

import gridconv as gc
from gridconv.functional.fft import fast_length, tile_plan
from tests.strategies import configs

PROPERTY = settings(max_examples=40, deadline=None)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|: the issue's accuracy measure (absolute where b is all zero)."""
    scale = float(b.detach().abs().max())
    return float((a - b).detach().abs().max()) / (scale if scale > 0 else 1.0)


def smooth(n: int) -> bool:
    for p in (2, 3, 5, 7):
        while n % p == 0:
            n //= p
    return n == 1


def test_fast_length_is_the_next_even_7_smooth_number():
    for n in range(1, 3000):
        expected = next(m for m in range(n, 2 * n + 4) if smooth(m) and m % 2 == 0)
        assert fast_length(n) == expected, n


@PROPERTY
@given(configs())
def test_agrees_with_direct_in_float64(c):
    x, w = c.x(), c.w()
    ref = gc.conv(x, w, method="direct", **c.kwargs)
    ours = gc.fft_conv(x, w, **c.kwargs)
    assert ours.shape == ref.shape
    assert relative_error(ours, ref) <= 1e-10
    torch.testing.assert_close(gc.conv(x, w, method="fft", **c.kwargs), ours)


@settings(max_examples=25, deadline=None)
@given(configs())
def test_gradients_agree_with_direct(c):
    x, w = c.x().requires_grad_(), c.w().requires_grad_()
    out = gc.conv(x, w, method="direct", **c.kwargs)
    bias = torch.randn(out.shape[1:], dtype=torch.float64, requires_grad=True)  # untied
    g = torch.randn_like(out)
    ref = torch.autograd.grad(gc.conv(x, w, bias, method="direct", **c.kwargs), (x, w, bias), g)
    ours = torch.autograd.grad(gc.fft_conv(x, w, bias, **c.kwargs), (x, w, bias), g)
    for a, b in zip(ours, ref):
        assert relative_error(a, b) <= 1e-10


@pytest.mark.parametrize(
    "x_shape, w_shape, kw",
    [
        ((2, 3, 40, 45), (4, 3, 9, 9), {"padding": "same"}),
        ((1, 2, 300), (2, 2, 31), {"padding": "full", "padding_mode": "reflect"}),
        ((1, 4, 12, 13, 14), (4, 1, 5, 3, 3), {"groups": 4, "stride": 2, "padding": "same"}),
        ((2, 4, 64, 64), (6, 2, 7, 5), {"groups": 2, "dilation": (2, 3), "padding": 3}),
    ],
)
def test_float32_accuracy(x_shape, w_shape, kw):
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(x_shape, generator=g), torch.randn(w_shape, generator=g)
    ref = gc.conv(x.double(), w.double(), method="direct", **kw)
    assert relative_error(gc.fft_conv(x, w, **kw).double(), ref) <= 1e-5


def test_overlap_save_tiles_a_long_input():
    n = 1 << 18
    blocks, lengths = tile_plan((n + 15,), (16,), 1, 1, 1)
    assert blocks[0] < n // 16  # tiled: each transform far shorter than the input
    assert all(smooth(m) for m in lengths)
    x = torch.randn(1, 1, n, dtype=torch.float64)
    w = torch.randn(1, 1, 16, dtype=torch.float64)
    ref = gc.conv(x, w, padding="same", method="direct")
    assert relative_error(gc.fft_conv(x, w, padding="same"), ref) <= 1e-10


@pytest.mark.parametrize(
    "x_shape, w_shape, blocks, kw",
    [
        ((1, 2, 100, 90), (3, 2, 7, 5), (20, 16), {"padding": "same", "stride": 3}),
        (
            (1, 2, 50, 45),
            (3, 2, 7, 5),
            (9, 16),
            {"padding": [(4, 1), 3], "padding_mode": "reflect"},
        ),
        ((1, 2, 50, 45), (3, 2, 7, 5), (9, 16), {"padding": [(0, 5), (2, 1)]}),
        ((2, 4, 30, 31, 32), (4, 2, 3, 4, 5), (7, 8, 9), {"groups": 2, "dilation": 2}),
    ],
)
def test_tiled_transforms_in_2d_and_3d(monkeypatch, x_shape, w_shape, blocks, kw):
    """Tiles are only planned for long 1-D signals; force them here to check the general path."""
    from gridconv.functional.methods.fft import transforms as fft_module

    def tiles(padded, kernel, *args):
        return blocks, tuple(fast_length(b + k - 1) for b, k in zip(blocks, kernel))

    monkeypatch.setattr(fft_module, "tile_plan", tiles)
    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(x_shape, generator=g).double(), torch.randn(w_shape, generator=g).double()
    ref = gc.conv(x, w, method="direct", **kw)
    assert relative_error(gc.fft_conv(x, w, **kw), ref) <= 1e-10


@pytest.mark.parametrize("block_bytes", [8 * 8 * 9 * 16, 2**40])
def test_spectra_are_mixed_in_blocks_of_rows(monkeypatch, block_bytes):
    """The tiles' spectra go frequency-major in blocks of rows (the last one partial); the
    result is the same as in one copy, and as direct's."""
    from gridconv.functional.methods.fft import transforms as fft_module

    monkeypatch.setattr(fft_module, "tile_plan", lambda *args: ((9,), (16,)))
    monkeypatch.setattr(fft_module, "BLOCK_BYTES", block_bytes)  # 8 rows of (8, 9) spectra
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 8, 200, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4, 8, generator=g, dtype=torch.float64, requires_grad=True)
    ref = gc.conv(x, w, groups=2, padding="same", method="direct")
    out = gc.fft_conv(x, w, groups=2, padding="same")  # 3 x 23 tiles: 69 rows
    assert relative_error(out, ref) <= 1e-10
    grad = torch.randn_like(out)
    for ours, theirs in zip(
        torch.autograd.grad(out, (x, w), grad), torch.autograd.grad(ref, (x, w), grad)
    ):
        assert relative_error(ours, theirs) <= 1e-10


@pytest.mark.parametrize(
    "w_shape, kw",
    [
        ((6, 2, 8), {"groups": 2, "padding": "same"}),
        ((5, 4, 8), {"padding": "full", "stride": 3}),
        ((5, 4, 4), {"padding": [(6, 1)], "dilation": 2}),
        ((5, 4, 8), {"padding": 5, "padding_mode": "reflect"}),
        ((5, 4, 8), {"padding": [(3, 9)], "padding_mode": "circular"}),
        ((8, 1, 8), {"groups": 4, "padding": "same"}),  # depthwise: a broadcast product
        ((5, 4, 8), {"padding": "valid"}),
    ],
)
@pytest.mark.parametrize("spare_max", [0.1, 0.0])  # the strided view, and the copied tiles
def test_long_signals_are_tiled_in_place(monkeypatch, w_shape, kw, spare_max):
    """1-D tiles are windows of one padded copy, read in place (the rows run into each
    other; the spare windows are dropped): the same results and gradients as direct's, and
    as the tiles cut out as copies."""
    from gridconv.functional.methods.fft import transforms as fft_module

    monkeypatch.setattr(fft_module, "tile_plan", lambda *args: ((9,), (16,)))
    monkeypatch.setattr(fft_module, "SPARE_TILES_MAX", spare_max)
    calls = []
    original = fft_module._tile_rows
    monkeypatch.setattr(fft_module, "_tile_rows", lambda *args: calls.append(1) or original(*args))
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 4, 200, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(w_shape, generator=g, dtype=torch.float64, requires_grad=True)
    out = gc.fft_conv(x, w, **kw)
    assert bool(calls) == (spare_max > 0)
    ref = gc.conv(x, w, method="direct", **kw)
    assert relative_error(out, ref) <= 1e-10
    grad = torch.randn_like(out)
    for ours, theirs in zip(
        torch.autograd.grad(out, (x, w), grad), torch.autograd.grad(ref, (x, w), grad)
    ):
        assert relative_error(ours, theirs) <= 1e-10


def test_few_long_tiles_are_copied(monkeypatch):
    """Where a row's spare windows would be many per used one, the tiles are copied."""
    from gridconv.functional.methods.fft import transforms as fft_module

    monkeypatch.setattr(fft_module, "tile_plan", lambda *args: ((100,), (128,)))  # 3 tiles
    calls = []
    original = fft_module._tile_rows
    monkeypatch.setattr(fft_module, "_tile_rows", lambda *args: calls.append(1) or original(*args))
    x, w = torch.randn(2, 3, 300, dtype=torch.float64), torch.randn(4, 3, 29).double()
    out = gc.fft_conv(x, w)
    assert not calls
    assert relative_error(out, gc.conv(x, w, method="direct")) <= 1e-10


def test_many_channels_tile_a_long_signal():
    """The kernels' transform counts: 32 x 32 channels of 16384 points once went whole, a
    spectrum of 1024 x 8233 numbers to transform per call (104 ms; 5.6 ms in tiles)."""
    blocks, lengths = tile_plan((16384 + 63,), (64,), 32, 32, 1)
    assert blocks[0] < 16384 // 8 and lengths[0] < 16384 // 8


def test_images_and_volumes_are_transformed_whole():
    assert tile_plan((1030, 1030), (7, 7), 1, 1, 1)[0] == (1024, 1024)
    assert tile_plan((132, 132, 132), (5, 5, 5), 4, 4, 1)[0] == (128, 128, 128)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_transformed_in_float32(dtype):
    x, w = torch.randn(1, 2, 32, 32), torch.randn(3, 2, 9, 9)
    out = gc.fft_conv(x.to(dtype), w.to(dtype), padding="same")
    assert out.dtype == dtype
    ref = gc.conv(x.to(dtype).float(), w.to(dtype).float(), padding="same", method="direct")
    assert relative_error(out.float(), ref) < 1e-2


def test_gradcheck():
    x = torch.randn(1, 2, 9, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    kw = {"padding": [(1, 2), (0, 1)], "stride": (2, 1), "padding_mode": "circular"}
    assert torch.autograd.gradcheck(lambda x, w, b: gc.fft_conv(x, w, b, **kw), (x, w, b))


def test_unbatched_and_bias():
    x, w, b = torch.randn(3, 20, 20), torch.randn(2, 3, 5, 5), torch.randn(2)
    torch.testing.assert_close(
        gc.fft_conv(x, w, b, padding="same"), gc.conv(x, w, b, padding="same"), atol=1e-4, rtol=1e-4
    )
