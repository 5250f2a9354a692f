"""Layers: thin ``torch.nn.Module`` wrappers whose ``forward`` is one call into functional."""

from gridconv.nn.attention import AttentionOutput, RecurrentAttention
from gridconv.nn.conv import Conv, Conv1d, Conv2d, Conv3d
from gridconv.nn.convert import ConversionWarning, Verdict, conversion_plan, convert, revert
from gridconv.nn.gabor import ComplexCell2d, GaborConv2d
from gridconv.nn.glimpse import GlimpseSensor
from gridconv.nn.local import (
    LocallyConnected,
    LocallyConnected1d,
    LocallyConnected2d,
    LocallyConnected3d,
)
from gridconv.nn.lowrank import LowRankConv
from gridconv.nn.pooling import (
    ChannelPool,
    GlobalPool,
    Maxout,
    Pool,
    Pool1d,
    Pool2d,
    Pool3d,
    PyramidPool,
)
from gridconv.nn.separable import (
    DepthwiseSeparableConv,
    DepthwiseSeparableConv1d,
    DepthwiseSeparableConv2d,
    DepthwiseSeparableConv3d,
    SpatiallySeparableConv,
    SpatiallySeparableConv2d,
    SpatiallySeparableConv3d,
)
from gridconv.nn.tiled import TiledConv, TiledConv1d, TiledConv2d, TiledConv3d

__all__ = [
    "AttentionOutput",
    "ChannelPool",
    "ComplexCell2d",
    "Conv",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConversionWarning",
    "DepthwiseSeparableConv",
    "DepthwiseSeparableConv1d",
    "DepthwiseSeparableConv2d",
    "DepthwiseSeparableConv3d",
    "GaborConv2d",
    "GlimpseSensor",
    "GlobalPool",
    "LocallyConnected",
    "LocallyConnected1d",
    "LocallyConnected2d",
    "LocallyConnected3d",
    "LowRankConv",
    "Maxout",
    "Pool",
    "Pool1d",
    "Pool2d",
    "Pool3d",
    "PyramidPool",
    "RecurrentAttention",
    "SpatiallySeparableConv",
    "SpatiallySeparableConv2d",
    "SpatiallySeparableConv3d",
    "TiledConv",
    "TiledConv1d",
    "TiledConv2d",
    "TiledConv3d",
    "Verdict",
    "conversion_plan",
    "convert",
    "revert",
]
