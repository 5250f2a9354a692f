"""Every gridconv layer, built small, with an input: the cases the compile, export and ONNX
tests share. ``fft`` cases are shaped so that auto picks the FFT (eager and traced)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import gridconv as gc


@dataclass(frozen=True)
class LayerCase:
    name: str
    make: Callable[[], nn.Module]
    shape: tuple[int, ...]
    trains: bool = True  # has parameters or wants an input gradient


def _maxout() -> nn.Module:
    return gc.nn.Maxout(gc.nn.Conv2d(3, 8, 3, padding="same"), 2)


LAYERS = (
    LayerCase("Conv1d", lambda: gc.nn.Conv1d(3, 4, 5, padding="same"), (2, 3, 40)),
    LayerCase("Conv1d-fft", lambda: gc.nn.Conv1d(4, 4, 64, padding="same"), (2, 4, 2048)),
    LayerCase("Conv2d", lambda: gc.nn.Conv2d(3, 4, 3, padding="same"), (2, 3, 16, 16)),
    LayerCase(
        "Conv2d-strided",
        lambda: gc.nn.Conv2d(3, 4, 4, stride=2, padding="same", padding_mode="reflect"),
        (2, 3, 15, 17),
    ),
    LayerCase("Conv2d-fft", lambda: gc.nn.Conv2d(2, 2, 21, padding="same"), (2, 2, 64, 64)),
    LayerCase(
        "Conv2d-untied",
        lambda: gc.nn.Conv2d(3, 4, 3, padding=(1, 2), bias="untied", input_size=12),
        (2, 3, 12, 12),
    ),
    LayerCase("Conv3d", lambda: gc.nn.Conv3d(2, 3, 3, padding="full"), (1, 2, 6, 6, 6)),
    LayerCase(
        "LocallyConnected2d",
        lambda: gc.nn.LocallyConnected2d(3, 4, 3, input_size=10),
        (2, 3, 10, 10),
    ),
    LayerCase(
        "TiledConv2d",
        lambda: gc.nn.TiledConv2d(3, 4, 3, tile_size=2, padding="same"),
        (2, 3, 10, 10),
    ),
    LayerCase(
        "DepthwiseSeparableConv2d",
        lambda: gc.nn.DepthwiseSeparableConv2d(4, 6, 3, padding="same"),
        (2, 4, 12, 12),
    ),
    LayerCase(
        "SpatiallySeparableConv2d",
        lambda: gc.nn.SpatiallySeparableConv2d(3, 4, 5, padding="same"),
        (2, 3, 12, 12),
    ),
    *(
        LayerCase(f"Pool2d-{method}", lambda m=method: gc.nn.Pool2d(3, 2, method=m), (2, 3, 9, 9))
        for method in ("max", "avg", "lp", "gaussian")
    ),
    LayerCase("PyramidPool", lambda: gc.nn.PyramidPool((1, 2, 3)), (2, 3, 12, 12)),
    LayerCase("ChannelPool", lambda: gc.nn.ChannelPool(2), (2, 4, 6, 6)),
    LayerCase("GlobalPool", lambda: gc.nn.GlobalPool(), (2, 4, 6, 6)),
    LayerCase("Maxout", _maxout, (2, 3, 8, 8)),
    LayerCase(
        "GaborConv2d",
        lambda: gc.nn.GaborConv2d(1, 7, orientations=2, frequencies=(0.2,)),
        (2, 1, 16, 16),
    ),
    LayerCase(
        "ComplexCell2d",
        lambda: gc.nn.ComplexCell2d(7, orientations=2, frequencies=(0.2,)),
        (2, 1, 16, 16),
    ),
)


def inputs(case: LayerCase, seed: int = 0) -> torch.Tensor:
    return torch.randn(case.shape, generator=torch.Generator().manual_seed(seed))


def built(case: LayerCase, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return case.make()
