"""gridconv.nn.Conv1d/2d/3d: forward, parameters, state_dict, and the round trip with torch."""

from __future__ import annotations

import math

import pytest
import torch

import gridconv as gc

LAYERS = {1: gc.nn.Conv1d, 2: gc.nn.Conv2d, 3: gc.nn.Conv3d}
TORCH_LAYERS = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
SIZES = {1: (12,), 2: (9, 10), 3: (5, 6, 7)}


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("padding", ["valid", "same", "full", 1, "pairs"])
def test_forward_is_the_functional_conv(d, padding):
    if padding == "pairs":
        padding = [(i % 2, 2 - i % 2) for i in range(d)]
    layer = LAYERS[d](4, 6, 3, stride=2, padding=padding, groups=2, padding_mode="circular")
    x = torch.randn(2, 4, *SIZES[d])
    ref = gc.conv(
        x,
        layer.weight,
        layer.bias,
        stride=2,
        padding=padding,
        groups=2,
        padding_mode="circular",
    )
    torch.testing.assert_close(layer(x), ref)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", ["same", "valid", 1])
def test_round_trip_with_torch_is_exact(d, mode, padding):
    ref = TORCH_LAYERS[d](4, 6, 3, padding=padding, padding_mode=mode, groups=2).double()
    layer = LAYERS[d].from_torch(ref)
    assert isinstance(layer, LAYERS[d])
    assert layer.weight.dtype == torch.float64
    x = torch.randn(2, 4, *SIZES[d], dtype=torch.float64)
    torch.testing.assert_close(layer(x), ref(x))
    back = layer.to_torch()
    assert type(back) is type(ref)
    assert torch.equal(back.weight, ref.weight) and torch.equal(back.bias, ref.bias)
    assert (back.padding, back.padding_mode, back.groups) == (ref.padding, mode, 2)
    torch.testing.assert_close(back(x), ref(x))


@pytest.mark.parametrize("padding", ["full", "same", [(2, 2), (1, 1)]])
def test_to_torch_expresses_full_same_and_symmetric_pairs(padding):
    layer = gc.nn.Conv2d(3, 5, (4, 3), padding=padding, dilation=(1, 2), bias=False).double()
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64)
    module = layer.to_torch()
    assert module.bias is None
    torch.testing.assert_close(module(x), layer(x))


def test_generic_conv_from_torch_infers_the_dims():
    layer = gc.nn.Conv.from_torch(torch.nn.Conv3d(2, 3, 2, stride=2))
    assert layer.num_spatial_dims == 3 and type(layer) is gc.nn.Conv


def test_untied_bias_has_one_value_per_output_location_and_learns():
    layer = gc.nn.Conv2d(3, 4, 3, stride=2, padding="same", bias="untied", input_size=(9, 7))
    assert layer.bias.shape == (4, 5, 4)
    x = torch.randn(2, 3, 9, 7)
    layer(x).sum().backward()
    torch.testing.assert_close(layer.bias.grad, torch.full((4, 5, 4), 2.0))
    no_bias = gc.conv(x, layer.weight, stride=2, padding="same")
    torch.testing.assert_close(layer(x), no_bias + layer.bias)


def test_state_dict_round_trip():
    a = gc.nn.Conv2d(3, 4, 3, padding="same", bias="untied", input_size=8)
    b = gc.nn.Conv2d(3, 4, 3, padding="same", bias="untied", input_size=8)
    assert set(a.state_dict()) == {"weight", "bias"}
    assert a.state_dict()["bias"].shape == (4, 8, 8)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(a(x), b(x))


@pytest.mark.parametrize("bias", [True, "tied", "untied", False])
def test_reset_parameters_draws_from_torchs_default_range(bias):
    layer = gc.nn.Conv2d(6, 8, (3, 5), groups=2, bias=bias, input_size=10, padding="same")
    bound = 1 / math.sqrt(3 * 3 * 5)
    before = layer.weight.detach().clone()
    layer.reset_parameters()
    assert not torch.equal(before, layer.weight)
    assert layer.weight.abs().max() <= bound
    assert layer.weight.std() > bound / 3  # spread over the range, not collapsed near zero
    if bias:
        assert layer.bias.abs().max() <= bound
    else:
        assert layer.bias is None


def test_device_and_dtype():
    layer = gc.nn.Conv1d(2, 3, 3, device="cpu", dtype=torch.float64)
    assert layer.weight.dtype == torch.float64 and layer.bias.dtype == torch.float64
    assert layer(torch.randn(1, 2, 5, dtype=torch.float64)).dtype == torch.float64
    meta = gc.nn.Conv1d(2, 3, 3, device="meta")
    assert meta.weight.device.type == "meta"


def test_method_is_passed_through():
    layer = gc.nn.Conv2d(1, 2, 3, method="direct")
    x = torch.randn(1, 1, 6, 6)
    torch.testing.assert_close(layer(x), gc.conv(x, layer.weight, layer.bias, method="direct"))


def test_repr_shows_the_configuration():
    layer = gc.nn.Conv2d(3, 4, 3, stride=2, padding="same", bias="untied", input_size=8)
    text = repr(layer)
    assert "Conv2d(3, 4, kernel_size=(3, 3), stride=(2, 2), padding='same'" in text
    assert "bias='untied'" in text and "input_size=(8, 8)" in text


def _public_layers():
    import inspect as _inspect

    return [
        getattr(gc.nn, name)
        for name in gc.nn.__all__
        if _inspect.isclass(getattr(gc.nn, name))
        and issubclass(getattr(gc.nn, name), torch.nn.Module)
    ]


@pytest.mark.parametrize("layer", _public_layers(), ids=lambda c: c.__name__)
def test_every_public_layer_signature_names_its_parameters(layer):
    """help(), inspect.signature and editors see every parameter: no *args or **kwargs; a
    thin 1-d/2-d/3-d class shows its N-d class's signature less num_spatial_dims."""
    import inspect

    signature = inspect.signature(layer)
    kinds = {p.kind for p in signature.parameters.values()}
    assert not kinds & {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}
    dims = getattr(layer, "fixed_spatial_dims", None)
    if dims is not None:
        general = next(base for base in layer.__mro__ if base.__name__ == layer.__name__[:-2])
        params = list(inspect.signature(general).parameters.values())
        assert params[0].name == "num_spatial_dims"
        assert list(signature.parameters.values()) == params[1:]


def test_the_thin_classes_are_the_seventeen_of_five_families():
    thin = [c.__name__ for c in _public_layers() if getattr(c, "fixed_spatial_dims", None)]
    assert len(thin) == 17, thin
