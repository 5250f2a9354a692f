"""The model registry: every model maps images to logits (RAM: an output with ``.logits``),
and uses the layer it names."""

from __future__ import annotations

import pytest
import torch

from gridconv import models
from gridconv import nn as gnn

USES = {
    "convnet": gnn.Conv2d,
    "local": gnn.LocallyConnected2d,
    "tiled": gnn.TiledConv2d,
    "separable": gnn.DepthwiseSeparableConv2d,
    "pyramid": gnn.PyramidPool,
    "ram": gnn.RecurrentAttention,
}


@pytest.mark.parametrize("name", list(models.MODELS))
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (1, 8)])
def test_every_model_maps_images_to_logits(name, channels, size):
    torch.manual_seed(0)
    model = models.build(name, channels, 7, size)
    out = model(torch.randn(2, channels, size, size))
    out = getattr(out, "logits", out)  # RAM: an AttentionOutput, trained with its own loss
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    if name in USES:
        assert any(isinstance(m, USES[name]) for m in model.modules())


def test_pyramid_takes_any_size_and_user_factories_are_checked():
    model = models.build("pyramid", 1, 10, 28)
    assert model(torch.randn(1, 1, 45, 37)).shape == (1, 10)
    with pytest.raises(ValueError, match=r"`model` must be one of 'convnet'"):
        models.build("resnet", 1, 10, 28)
    with pytest.raises(ValueError, match=r"has no function 'nothing'"):
        models.build("gridconv.models:nothing", 1, 10, 28)
    with pytest.raises(TypeError, match=r"returned .* not a torch.nn.Module"):
        models.build("builtins:max", 1, 10, 28)
