"""Layers: thin ``torch.nn.Module`` wrappers whose ``forward`` is one call into functional."""

from gridconv.nn.conv import Conv, Conv1d, Conv2d, Conv3d

__all__ = ["Conv", "Conv1d", "Conv2d", "Conv3d"]
