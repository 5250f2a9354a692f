"""Layers: thin ``torch.nn.Module`` wrappers whose ``forward`` is one call into functional."""

from gridconv.nn.conv import Conv, Conv1d, Conv2d, Conv3d
from gridconv.nn.lowrank import LowRankConv

__all__ = ["Conv", "Conv1d", "Conv2d", "Conv3d", "LowRankConv"]
