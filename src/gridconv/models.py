"""A small registry of classifiers built from gridconv layers, for ``demo`` and ``train``.

Every factory takes ``(in_channels, num_classes, image_size)`` and returns a fresh
``torch.nn.Module`` mapping ``(N, in_channels, H, W)`` images to ``(N, num_classes)`` logits.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from gridconv import nn as gnn
from gridconv._checks import check_choice, check_int, describe

__all__ = ["build", "convnet", "factory", "local", "mlp", "pyramid", "ram", "separable", "tiled"]


def _two_blocks(
    first: nn.Module, second: nn.Module, channels: int, image_size: int, num_classes: int
) -> nn.Sequential:
    """``first``, ReLU, 2x2 max pooling, ``second`` (``channels`` out), ReLU, 2x2 max
    pooling, then a linear classifier: the shape every registered ConvNet shares."""
    side = image_size // 4
    return nn.Sequential(
        first,
        nn.ReLU(),
        nn.MaxPool2d(2),
        second,
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * side * side, num_classes),
    )


def convnet(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Two 5x5 "same" convolutions with ReLU and 2x2 max pooling, then a linear classifier.

    Shape:
        ``(N, in_channels, image_size, image_size) -> (N, num_classes)``
    """
    first = gnn.Conv2d(in_channels, 32, 5, padding="same")
    return _two_blocks(first, gnn.Conv2d(32, 64, 5, padding="same"), 64, image_size, num_classes)


def mlp(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """A multilayer perceptron with one hidden layer of 256 ReLU units: no spatial prior.

    Shape:
        ``(N, in_channels, image_size, image_size) -> (N, num_classes)``
    """
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, 256),
        nn.ReLU(),
        nn.Linear(256, num_classes),
    )


def local(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """A convolution, then a locally connected layer (a kernel per position, sec. 9.6).

    Shape:
        ``(N, in_channels, image_size, image_size) -> (N, num_classes)``
    """
    first = gnn.Conv2d(in_channels, 32, 5, padding="same")
    second = gnn.LocallyConnected2d(32, 16, 3, image_size // 2, padding="same")
    return _two_blocks(first, second, 16, image_size, num_classes)


def tiled(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Two tiled convolutions (2 x 2 kernels cycled over the output, Le et al. 2010).

    Shape:
        ``(N, in_channels, image_size, image_size) -> (N, num_classes)``
    """
    first = gnn.TiledConv2d(in_channels, 32, 5, 2, padding="same")
    second = gnn.TiledConv2d(32, 64, 5, 2, padding="same")
    return _two_blocks(first, second, 64, image_size, num_classes)


def separable(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """The ConvNet with its second layer depthwise separable (sec. 9.8's parameter saving).

    Shape:
        ``(N, in_channels, image_size, image_size) -> (N, num_classes)``
    """
    first = gnn.Conv2d(in_channels, 32, 5, padding="same")
    second = gnn.DepthwiseSeparableConv2d(32, 64, 5, padding="same")
    return _two_blocks(first, second, 64, image_size, num_classes)


def pyramid(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Convolutions, then spatial pyramid pooling (1, 2, 4): takes images of any size.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)`` for any ``H, W >= 4``
    """
    spp = gnn.PyramidPool((1, 2, 4))
    return nn.Sequential(
        gnn.Conv2d(in_channels, 32, 5, padding="same"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        gnn.Conv2d(32, 64, 5, padding="same"),
        nn.ReLU(),
        spp,
        nn.Linear(spp.out_features(64), num_classes),
    )


def ram(in_channels: int = 1, num_classes: int = 10, image_size: int = 60) -> nn.Module:
    """The recurrent attention model of Mnih et al. 2014: 6 glimpses of 8 x 8 at 3 scales,
    a core of 256, trained with its hybrid loss (``gridconv train`` uses a model's own
    ``loss``). Any image size: the glimpses are what it reads."""
    return gnn.RecurrentAttention(in_channels, num_classes, glimpse_size=8, scales=3, glimpses=6)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "convnet": convnet,
    "mlp": mlp,
    "local": local,
    "tiled": tiled,
    "separable": separable,
    "pyramid": pyramid,
    "ram": ram,
}


def factory(name: str) -> Callable[..., nn.Module]:
    """The registered factory ``name``, or a user's ``package.module:function``."""
    if not isinstance(name, str):
        raise TypeError(f"`model` must be a name (str), got {describe(name)}.")
    if ":" not in name:
        return MODELS[check_choice("model", name, MODELS)]
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"`model` {name!r}: cannot import {module_name!r}: {err}.") from err
    made = getattr(module, attribute, None)
    if not callable(made):
        raise ValueError(f"`model` {name!r}: {module_name} has no function {attribute!r}.")
    return made


def build(name: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """The model ``name`` (registered, or ``package.module:factory``) for images of the given
    channels and size; a user factory is called as ``factory(in_channels, num_classes,
    image_size)`` and must return a ``torch.nn.Module``."""
    make = factory(name)
    check_int("image_size", image_size, minimum=4)
    model = make(in_channels, num_classes, image_size)
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` {name!r} returned {describe(model)}, not a torch.nn.Module.")
    return model
