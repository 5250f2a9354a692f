"""LocallyConnected and TiledConv layers: parameters, init, state_dict, from_conv, errors."""

from __future__ import annotations

import math

import pytest
import torch

import gridconv as gc

LC = {1: gc.nn.LocallyConnected1d, 2: gc.nn.LocallyConnected2d, 3: gc.nn.LocallyConnected3d}
TC = {1: gc.nn.TiledConv1d, 2: gc.nn.TiledConv2d, 3: gc.nn.TiledConv3d}
SIZES = {1: (12,), 2: (9, 10), 3: (5, 6, 7)}


@pytest.mark.parametrize("d", [1, 2, 3])
def test_locally_connected_parameters_and_forward(d):
    layer = LC[d](3, 4, 3, SIZES[d], padding="same", dtype=torch.float64)
    out = SIZES[d]
    assert layer.weight.shape == (*out, 4, 3, *([3] * d))
    assert layer.bias.shape == (4, *out)  # untied by default
    params = sum(p.numel() for p in layer.parameters())
    assert params == math.prod(out) * 4 * 3 * 3**d + 4 * math.prod(out)
    x = torch.randn(2, 3, *out, dtype=torch.float64)
    ref = gc.local_conv(x, layer.weight, layer.bias, padding="same")
    torch.testing.assert_close(layer(x), ref)
    tied = LC[d](3, 4, 3, SIZES[d], bias="tied")
    assert tied.bias.shape == (4,)
    assert LC[d](3, 4, 3, SIZES[d], bias=False).bias is None


@pytest.mark.parametrize("d", [1, 2, 3])
def test_tiled_parameters_and_forward(d):
    layer = TC[d](3, 4, 3, tile_size=2, stride=2, dtype=torch.float64)
    assert layer.weight.shape == (*([2] * d), 4, 3, *([3] * d)) and layer.bias.shape == (4,)
    assert sum(p.numel() for p in layer.parameters()) == 2**d * 4 * 3 * 3**d + 4
    x = torch.randn(2, 3, *SIZES[d], dtype=torch.float64)
    torch.testing.assert_close(layer(x), gc.tiled_conv(x, layer.weight, layer.bias, stride=2))
    untied = TC[d](3, 4, 3, tile_size=2, bias="untied", input_size=SIZES[d], padding="same")
    assert untied.bias.shape == (4, *SIZES[d])


def test_reset_parameters_and_state_dict():
    a = gc.nn.LocallyConnected2d(2, 3, 3, 8)
    bound = 1 / math.sqrt(2 * 9)
    assert a.weight.abs().max() <= bound and a.weight.std() > bound / 3
    b = gc.nn.LocallyConnected2d(2, 3, 3, 8)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 2, 8, 8)
    torch.testing.assert_close(a(x), b(x))
    before = a.weight.detach().clone()
    a.reset_parameters()
    assert not torch.equal(before, a.weight)
    t = gc.nn.TiledConv2d(2, 3, 3, (2, 3))
    u = gc.nn.TiledConv2d(2, 3, 3, (2, 3))
    u.load_state_dict(t.state_dict())
    torch.testing.assert_close(t(x), u(x))


@pytest.mark.parametrize(
    "conv",
    [
        torch.nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect"),
        gc.nn.Conv2d(3, 5, (3, 2), stride=2, padding="same"),
        torch.nn.Conv2d(3, 5, 3, bias=False),
    ],
)
def test_from_conv_starts_as_the_convolution(conv):
    conv = conv.double()
    x = torch.randn(2, 3, 11, 12, dtype=torch.float64)
    ref = conv(x)
    local = gc.nn.LocallyConnected2d.from_conv(conv, input_size=(11, 12))
    torch.testing.assert_close(local(x), ref)
    assert local.weight.shape[:2] == ref.shape[2:]
    tied = gc.nn.LocallyConnected.from_conv(conv, (11, 12), bias="tied")
    torch.testing.assert_close(tied(x), ref)
    tiled = gc.nn.TiledConv2d.from_conv(conv, tile_size=(2, 3))
    torch.testing.assert_close(tiled(x), ref)


def test_layer_errors():
    with pytest.raises(ValueError, match=r"`tile_size` must be >= 1, got 0"):
        gc.nn.TiledConv2d(3, 4, 3, tile_size=0)
    with pytest.raises(ValueError, match=r"`tile_size` must be >= 1, got 0"):
        gc.nn.TiledConv2d(3, 4, 3, tile_size=(2, 0))
    layer = gc.nn.LocallyConnected2d(3, 4, 3, (9, 9))
    with pytest.raises(
        ValueError,
        match=r"built for `input_size` \(9, 9\) but got an input of spatial size \(8, 9\)",
    ):
        layer(torch.randn(1, 3, 8, 9))
    with pytest.raises(ValueError, match=r"kernel is larger than the padded input"):
        gc.nn.LocallyConnected2d(3, 4, 5, 3)
    with pytest.raises(ValueError, match=r"`bias='untied'` needs `input_size`"):
        gc.nn.TiledConv2d(3, 4, 3, 2, bias="untied")
    with pytest.raises(ValueError, match=r"`bias` must be True, 'tied', 'untied' or False"):
        gc.nn.LocallyConnected2d(3, 4, 3, 9, bias="shared")
    with pytest.raises(ValueError, match=r"groups=1"):
        gc.nn.LocallyConnected2d.from_conv(torch.nn.Conv2d(4, 4, 3, groups=2), 9)
    with pytest.raises(TypeError, match=r"`conv` must be a 2-d convolution for LocallyConnected2d"):
        gc.nn.LocallyConnected2d.from_conv(torch.nn.Conv1d(4, 4, 3), 9)
    with pytest.raises(TypeError, match=r"`conv` must be a convolution layer, got Linear"):
        gc.nn.TiledConv2d.from_conv(torch.nn.Linear(3, 3), 2)
