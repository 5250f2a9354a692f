"""Layers: thin ``torch.nn.Module`` wrappers whose ``forward`` is one call into functional."""

from gridconv.nn.conv import Conv, Conv1d, Conv2d, Conv3d
from gridconv.nn.local import (
    LocallyConnected,
    LocallyConnected1d,
    LocallyConnected2d,
    LocallyConnected3d,
    TiledConv,
    TiledConv1d,
    TiledConv2d,
    TiledConv3d,
)
from gridconv.nn.lowrank import LowRankConv

__all__ = [
    "Conv",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "LocallyConnected",
    "LocallyConnected1d",
    "LocallyConnected2d",
    "LocallyConnected3d",
    "LowRankConv",
    "TiledConv",
    "TiledConv1d",
    "TiledConv2d",
    "TiledConv3d",
]
