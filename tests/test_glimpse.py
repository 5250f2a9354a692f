"""Foveated glimpses and the log-polar retina (sec. 9.10): crops, pooled crops, 1-3 dims,
gradients in the input and the centres, the rotation property, and bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import gridconv as gc


def normalised(index: float, n: int) -> float:
    """The normalised coordinate of cell ``index`` of ``n`` (-1 first, 1 last)."""
    return 2 * index / (n - 1) - 1


@pytest.mark.parametrize("spatial, size", [((11,), 5), ((9, 12), (3, 5)), ((7, 8, 9), 3)])
def test_a_centre_on_a_cell_gives_exactly_the_crop(spatial, size):
    d = len(spatial)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, *spatial, generator=g, dtype=torch.float64)
    size = (size,) * d if isinstance(size, int) else size
    cells = [[4, 3, 2, 3][i % 4] + (i % 2) for i in range(3 * d)]  # per image and dim
    centers = torch.tensor(
        [[normalised(cells[n * d + i], spatial[i]) for i in range(d)] for n in range(3)],
        dtype=torch.float64,
    )
    out = gc.glimpse(x, centers, size)
    assert out.shape == (3, 1, 2, *size)
    for n in range(3):
        crop = []
        for i in range(d):
            c, s = cells[n * d + i], size[i]
            crop.append(slice(c - (s - 1) // 2, c - (s - 1) // 2 + s))
        padded = F.pad(x[n], [p for s in reversed(size) for p in (s, s)])  # zeros outside
        ref = padded[
            (slice(None), *(slice(sl.start + s, sl.stop + s) for sl, s in zip(crop, size)))
        ]
        torch.testing.assert_close(out[n, 0], ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("factor, k", [(2, 1), (2, 2), (3, 1)])
def test_a_coarse_scale_is_the_sharp_glimpse_of_the_pooled_input(factor, k):
    width = factor**k
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6 * width, 5 * width, generator=g, dtype=torch.float64)
    pooled = F.avg_pool2d(x, width)  # (6, 5) cells
    cell = torch.tensor([[2.0, 3.0], [4.0, 1.0]], dtype=torch.float64)  # in pooled cells
    # the centre of a pooled cell, in the input's cells
    middle = cell * width + (width - 1) / 2
    centers = torch.stack([2 * middle[:, i] / (x.shape[2 + i] - 1) - 1 for i in range(2)], dim=-1)
    pooled_centers = torch.stack(
        [2 * cell[:, i] / (pooled.shape[2 + i] - 1) - 1 for i in range(2)], dim=-1
    )
    out = gc.glimpse(x, centers, 3, scales=k + 1, scale_factor=factor)
    ref = gc.glimpse(pooled, pooled_centers, 3)
    torch.testing.assert_close(out[:, k], ref[:, 0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(  # and reaching past the edge reads zeros
        gc.glimpse(x, torch.tensor([[1.0, 1.0]] * 2, dtype=torch.float64), 3, scales=k + 1,
                   scale_factor=factor)[:, k, :, 2, 2].abs().max(),
        torch.tensor(0.0, dtype=torch.float64),
    )  # fmt: skip


def test_one_sampling_per_scale_covers_the_whole_batch(monkeypatch):
    """No loop over images: each scale is one batched grid_sample of its pyramid level."""
    calls = []
    real = F.grid_sample
    monkeypatch.setattr(
        F, "grid_sample", lambda m, g, **k: calls.append(m.shape) or real(m, g, **k)
    )
    gc.glimpse(torch.randn(16, 1, 60, 60), torch.rand(16, 2) * 2 - 1, 8, scales=3)
    assert calls == [(16, 1, 60, 60), (16, 1, 30, 30), (16, 1, 15, 15)]


@pytest.mark.parametrize("spatial", [(9,), (7, 6), (5, 4, 6)])
def test_glimpses_are_differentiable_in_the_input_and_the_centres(spatial):
    d = len(spatial)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 2, *spatial, generator=g, dtype=torch.float64, requires_grad=True)
    # off the cell grid, where bilinear sampling is smooth
    centers = (torch.rand(2, d, generator=g, dtype=torch.float64) * 1.2 - 0.6).requires_grad_()
    assert gradcheck(lambda x, c: gc.glimpse(x, c, 3, scales=2), (x, centers))


def test_log_polar_rings_wedges_and_rotation():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 33, 33, generator=g, dtype=torch.float64)
    kw = dict(rings=5, wedges=12, min_radius=0.1, max_radius=0.9)
    out = gc.log_polar(x, torch.zeros(2, 2, dtype=torch.float64), **kw)
    assert out.shape == (2, 3, 5, 12)
    turned = gc.log_polar(torch.rot90(x, 1, dims=(2, 3)), torch.zeros(2, 2, dtype=x.dtype), **kw)
    # rot90 turns the picture counter-clockwise: what was at angle a is now at a + 90 degrees
    torch.testing.assert_close(turned, out.roll(3, dims=-1), rtol=1e-9, atol=1e-9)
    # wedge 0 looks right along the middle row, at the geometric radii
    ones = torch.zeros(1, 1, 33, 33, dtype=torch.float64)
    ones[0, 0, 16, :] = torch.arange(33, dtype=torch.float64)  # column index along the row
    ring = gc.log_polar(ones, torch.zeros(1, 2, dtype=torch.float64), **kw)[0, 0, :, 0]
    radii = 0.1 * 9.0 ** (torch.arange(5, dtype=torch.float64) / 4)
    torch.testing.assert_close(ring, 16 + radii * 16)


def test_log_polar_is_differentiable_in_the_input_and_the_centres():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 2, 8, 9, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.tensor([[0.13, -0.21]], dtype=torch.float64, requires_grad=True)
    kw = dict(rings=3, wedges=5, min_radius=0.2, max_radius=0.7)
    assert gradcheck(lambda x, c: gc.log_polar(x, c, **kw), (x, c))


def test_the_sensor_layer_is_the_function():
    x, c = torch.randn(4, 1, 30, 30), torch.rand(4, 2) * 2 - 1
    sensor = gc.nn.GlimpseSensor(6, scales=2, scale_factor=3)
    torch.testing.assert_close(sensor(x, c), gc.glimpse(x, c, 6, scales=2, scale_factor=3))
    assert "scales=2" in repr(sensor) and not list(sensor.parameters())


def polar(x, c, rings, wedges, min_radius, max_radius):
    return gc.log_polar(
        x, c, rings=rings, wedges=wedges, min_radius=min_radius, max_radius=max_radius
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x, c: gc.glimpse(x, c[:3], 4), ValueError, "centers"),
        (lambda x, c: gc.glimpse(x, c[:, :1], 4), ValueError, "centers"),
        (lambda x, c: gc.glimpse(x, c, 0), ValueError, "size"),
        (lambda x, c: gc.glimpse(x, c, 4, scales=0), ValueError, "scales"),
        (lambda x, c: gc.glimpse(x, c, 4, scale_factor=0), ValueError, "scale_factor"),
        (lambda x, c: gc.glimpse(x, c, 4, scale_factor=1.5), TypeError, "scale_factor"),
        (lambda x, c: gc.glimpse(x, c.double(), 4), TypeError, "centers"),
        (lambda x, c: gc.glimpse(x[0, 0], c, 4), ValueError, "x"),
        (lambda x, c: polar(x, c, 0, 4, 0.1, 1), ValueError, "rings"),
        (lambda x, c: polar(x, c, 2, 0, 0.1, 1), ValueError, "wedges"),
        (lambda x, c: polar(x, c, 2, 4, 0, 1), ValueError, "min_radius"),
        (lambda x, c: polar(x, c, 2, 4, 1, 1), ValueError, "max_radius"),
        (lambda x, c: gc.nn.GlimpseSensor(0), ValueError, "size"),
        (lambda x, c: gc.nn.GlimpseSensor(4, scale_factor=0), ValueError, "scale_factor"),
    ],
)  # fmt: skip
def test_bad_input_names_the_argument(call, error, match):
    x, c = torch.randn(4, 1, 20, 20), torch.zeros(4, 2)
    with pytest.raises(error, match=match):
        call(x, c)


def test_a_level_of_one_cell_reads_zero_outside_it():
    """4 x 4 ones at scale 2 (blocks of 4 x 4): one cell of mean 1, centred on the image; a
    3 x 3 glimpse there reads it in the middle and zeros one level cell away."""
    out = gc.glimpse(torch.ones(1, 1, 4, 4), torch.zeros(1, 2), 3, scales=3)
    expected = torch.zeros(3, 3)
    expected[1, 1] = 1
    assert torch.allclose(out[0, 2, 0], expected)
    line = gc.glimpse(torch.ones(1, 1, 4), torch.zeros(1, 1), 3, scales=3)  # 1-D too
    assert torch.allclose(line[0, 2, 0], torch.tensor([0.0, 1.0, 0.0]))
