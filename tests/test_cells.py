"""Gabor simple cells and complex cells as layers, layers started from kernel banks, the
kernel pictures and the `gridconv kernels` command."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gridconv as gc
from gridconv import kernels as K
from gridconv.cli import main


def test_gabor_layer_is_its_bank_on_every_channel():
    layer = gc.nn.GaborConv2d(2, 9, orientations=3, frequencies=(0.8, 1.6), dtype=torch.float64)
    bank = K.gabor_bank(9, orientations=3, frequencies=(0.8, 1.6), dtype=torch.float64)
    torch.testing.assert_close(layer.weight, bank)
    assert list(layer.parameters()) == [] and layer.out_channels == 24
    x = torch.randn(2, 2, 16, 15, dtype=torch.float64)
    out = layer(x)
    for c in range(2):
        expected = F.conv2d(x[:, c : c + 1], bank, padding=4)
        torch.testing.assert_close(out[:, 12 * c : 12 * (c + 1)], expected)


def test_learnable_gabor_parameters_train_and_stay_gabor():
    torch.manual_seed(0)
    layer = gc.nn.GaborConv2d(1, 9, orientations=2, frequencies=(1.0,), learnable=True)
    assert len(list(layer.parameters())) == 8
    target = K.gabor(9, beta_x=0.08, beta_y=0.08, frequency=1.3, tau=0.3)[None, None]
    x = torch.randn(4, 1, 20, 20)
    goal = F.conv2d(x, target.expand(4, 1, 9, 9), padding=4)
    optimiser = torch.optim.Adam(layer.parameters(), lr=0.03)
    first = None
    for _ in range(60):
        loss = (layer(x) - goal).square().mean()
        first = first if first is not None else loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.5 * first
    assert (K.fit_gabor(layer.weight.detach()).r2 > 0.99).all()


def grating(phase: float, frequency: float, tau: float, size: int = 41) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = t[:, None], t[None, :]
    return torch.cos(frequency * (x * math.cos(tau) + y * math.sin(tau)) + phase)[None, None]


def test_complex_cells_are_invariant_to_a_drifting_gratings_phase_and_simple_cells_are_not():
    f, tau = 2 * math.pi / 6, math.pi / 3
    cells = gc.nn.ComplexCell2d(
        15, orientations=[tau], frequencies=(f,), dtype=torch.float64, padding="valid"
    )
    phases = torch.linspace(0, 2 * math.pi, 17)[:-1].tolist()
    complex_response, simple_response = [], []
    for phase in phases:
        x = grating(phase, f, tau)
        complex_response.append(cells(x)[0, 0, 13, 13].item())
        simple_response.append(cells.simple(x)[0, 0, 13, 13].item())
    complex_response, simple_response = np.array(complex_response), np.array(simple_response)
    assert complex_response.std() / complex_response.mean() < 0.02
    assert simple_response.min() < 0 < simple_response.max()  # the simple cell flips sign
    assert simple_response.std() > 0.5 * np.abs(simple_response).max()
    # the complex cell is the L2 norm of the pair
    pair = cells.simple(grating(0.3, f, tau))
    torch.testing.assert_close(
        cells(grating(0.3, f, tau)), pair.square().sum(1, keepdim=True).sqrt()
    )


def test_conv_from_kernels_frozen_or_trainable():
    bank = K.oriented_edges(5, 4)
    frozen = gc.nn.Conv2d.from_kernels(bank, trainable=False, padding="same")
    assert frozen.weight.requires_grad is False and frozen.bias is None
    x = torch.randn(2, 1, 12, 12)
    torch.testing.assert_close(frozen(x), F.conv2d(x, bank, padding=2))
    trainable = gc.nn.Conv.from_kernels(K.gaussian(1.0, ndim=3), bias=True, stride=2)
    assert trainable.weight.requires_grad and trainable.num_spatial_dims == 3
    assert trainable.bias.abs().sum() == 0
    grouped = gc.nn.Conv1d.from_kernels(torch.randn(4, 1, 3), groups=2)
    assert grouped.in_channels == 2 and grouped.groups == 2
    with pytest.raises(ValueError, match=r"`weight` must have shape .* 2 spatial dims"):
        gc.nn.Conv2d.from_kernels(torch.randn(4, 1, 3))
    with pytest.raises(TypeError, match=r"`weight` must be a floating-point tensor"):
        gc.nn.Conv2d.from_kernels(np.zeros((4, 1, 3, 3)))


def test_kernel_grid_draws_one_tile_per_kernel_and_channel():
    gray = gc.plot.kernel_grid(torch.randn(6, 2, 5, 5), columns=4, title="random")
    assert len(gray.axes) == 12 and gray._suptitle.get_text() == "random"
    colour = gc.plot.kernel_grid(torch.randn(5, 3, 4, 4), scale="all")
    assert len(colour.axes) == 5
    image = colour.axes[0].images[0].get_array()
    assert image.shape == (4, 4, 3) and image.min() >= 0 and image.max() <= 1
    assert len(gc.plot.kernel_grid(torch.randn(3, 1, 7)).axes) == 3  # 1-D kernels as rows
    with pytest.raises(ValueError, match=r"`w` must have shape"):
        gc.plot.kernel_grid(torch.randn(3, 3))
    with pytest.raises(ValueError, match=r"`scale` must be one of"):
        gc.plot.kernel_grid(torch.randn(3, 1, 3, 3), scale="none")


def test_kernels_command_writes_pictures(tmp_path, capsys):
    for source in ("sobel", "gabor", "random"):
        out = tmp_path / f"{source}.png"
        assert main(["kernels", "--source", source, "-o", str(out)]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "kmeans.png"
    args = ["kernels", "--image", "camera", "--num-kernels", "8", "--num-patches", "2000"]
    assert main([*args, "-o", str(out)]) == 0
    assert out.exists() and "8 kmeans kernels of (1, 8, 8)" in capsys.readouterr().out


def test_kernels_command_learns_from_a_folder(tmp_path, capsys):
    from skimage.io import imsave

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        imsave(folder / f"im{i}.png", (rng.random((24, 30, 3)) * 255).astype(np.uint8))
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "k.png"
    argv = ["kernels", "--folder", str(folder), "--colour", "--num-kernels", "4", "--size", "5"]
    assert main([*argv, "--num-patches", "500", "-o", str(out)]) == 0
    assert "4 kmeans kernels of (3, 5, 5)" in capsys.readouterr().out
    assert main(["kernels", "--folder", str(tmp_path / "missing"), "-o", str(out)]) == 2
    assert "`folder` must be a directory" in capsys.readouterr().err
    assert main(["kernels", "--size", "400", "--image", "coins", "-o", str(out)]) == 2
    assert "`patch_size` (400, 400) is larger than images[0]" in capsys.readouterr().err


def test_natural_images_and_read_images(tmp_path):
    from skimage.io import imsave

    camera, astronaut = gc.data.natural_images(("camera", "astronaut"), gray=False)
    assert camera.shape == (1, 512, 512) and astronaut.shape == (3, 512, 512)
    assert astronaut.min() >= 0 and astronaut.max() <= 1
    imsave(tmp_path / "a.png", np.full((4, 5), 255, dtype=np.uint8), check_contrast=False)
    (image,) = gc.data.read_images(tmp_path)
    torch.testing.assert_close(image, torch.ones(1, 4, 5))
    with pytest.raises(ValueError, match=r"`names` must be scikit-image sample images"):
        gc.data.natural_images("download_all")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"has no image files"):
        gc.data.read_images(tmp_path / "empty")
