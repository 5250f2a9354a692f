"""A small registry of classifiers built from gridconv layers, for ``demo`` and ``train``.

Every factory takes ``(in_channels, num_classes, image_size)`` and returns a fresh
``torch.nn.Module`` mapping ``(N, in_channels, H, W)`` images to ``(N, num_classes)`` logits.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from gridconv import nn as gnn
from gridconv._checks import check_choice, check_int


def convnet(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Two 5x5 "same" convolutions with ReLU and 2x2 max pooling, then a linear classifier.

    Shape:
        ``(N, in_channels, image_size, image_size) -> (N, num_classes)``
    """
    side = image_size // 4
    return nn.Sequential(
        gnn.Conv2d(in_channels, 32, 5, padding="same"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        gnn.Conv2d(32, 64, 5, padding="same"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, num_classes),
    )


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


MODELS: dict[str, Callable[..., nn.Module]] = {"convnet": convnet, "mlp": mlp}


def build(name: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """The registered model ``name`` for images of the given channels and size."""
    factory = MODELS[check_choice("model", name, MODELS)]
    check_int("image_size", image_size, minimum=4)
    return factory(in_channels, num_classes, image_size)
