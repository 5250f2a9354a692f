"""The glimpse sensor of a recurrent attention model (Mnih et al. 2014) as a layer."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from gridconv._checks import check_int, describe
from gridconv.functional.glimpse import glimpse


class GlimpseSensor(nn.Module):
    """A retina: :func:`gridconv.glimpse` with a fixed ``size``, ``scales`` and
    ``scale_factor``; no parameters.

    Args:
        size: cells per spatial dim of each glimpse.
        scales: patches per centre, each ``scale_factor`` times as wide as the last.
        scale_factor: an int >= 1.

    Shape:
        - Input: ``x`` ``(N, C, *spatial)`` and ``centers`` ``(N, d)`` in [-1, 1]
        - Output: ``(N, scales, C, *size)``

    Example:
        >>> import torch, gridconv as gc
        >>> sensor = gc.nn.GlimpseSensor(8, scales=3)
        >>> sensor(torch.randn(4, 1, 60, 60), torch.zeros(4, 2)).shape
        torch.Size([4, 3, 1, 8, 8])
    """

    def __init__(self, size: int | Sequence[int], *, scales: int = 3, scale_factor: int = 2):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int | Sequence):
            raise TypeError(f"`size` must be an int or one int per dim, got {describe(size)}.")
        if isinstance(size, int):
            check_int("size", size, minimum=1)
        self.size = size
        self.scales = check_int("scales", scales, minimum=1)
        if isinstance(scale_factor, bool) or not isinstance(scale_factor, int):
            raise TypeError(f"`scale_factor` must be an int >= 1, got {describe(scale_factor)}.")
        self.scale_factor = check_int("scale_factor", scale_factor, minimum=1)

    def forward(self, x: Tensor, centers: Tensor) -> Tensor:
        return glimpse(x, centers, self.size, scales=self.scales, scale_factor=self.scale_factor)

    def extra_repr(self) -> str:
        return f"size={self.size}, scales={self.scales}, scale_factor={self.scale_factor}"
