"""Low-rank (separable) convolution layers: each kernel a sum of outer products of 1-D
factors, applied as d one-dimensional passes per term (Jaderberg et al. 2014; Denton et
al. 2014). ``Conv.to_separable(rank)`` makes one from a trained layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from gridconv._shapes import Padding, parse_padding
from gridconv.functional.separable import SeparableKernel, check_kernel, separable_conv


class LowRankConv(nn.Module):
    """A convolution whose kernels are ``rank``-term sums of separable (outer-product) kernels.

    Args:
        factors: one tensor per spatial dim, ``(C_out, C_in / groups, rank, k_i)``; they
            become the layer's parameters ``factors[i]``.
        bias: ``None``, tied ``(C_out,)`` or untied ``(C_out, *out_size)``.
        stride, padding, dilation, groups, padding_mode: as in :class:`gridconv.nn.Conv`.
        approximation_error: the relative error against the dense kernel it replaces.

    Weights:
        ``C_out * C_in / groups * rank * sum(kernel_size)`` weights, against
        ``C_out * C_in / groups * prod(kernel_size)`` for the dense layer.

    Shape:
        - Input: ``(N, C_in, *n)``
        - Output: ``(N, C_out, *o)``, as :class:`gridconv.nn.Conv`.
    """

    def __init__(
        self,
        factors: Sequence[Tensor],
        bias: Tensor | None = None,
        *,
        stride: int | Sequence[int] = 1,
        padding: Padding = "valid",
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        approximation_error: float = 0.0,
    ) -> None:
        super().__init__()
        check_kernel(SeparableKernel(tuple(factors)))
        self.factors = nn.ParameterList([nn.Parameter(f) for f in factors])
        self.bias = None if bias is None else nn.Parameter(bias)
        self.stride = stride
        self.padding = parse_padding(padding, len(factors))
        self.dilation = dilation
        self.groups = groups
        self.padding_mode = padding_mode
        self.approximation_error = approximation_error

    @property
    def kernel(self) -> SeparableKernel:
        return SeparableKernel(tuple(self.factors))

    @property
    def rank(self) -> int:
        return self.factors[0].shape[2]

    def forward(self, x: Tensor) -> Tensor:
        return separable_conv(
            x,
            self.kernel,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
        )

    def extra_repr(self) -> str:
        shape = self.kernel.shape
        return (
            f"{shape[1] * self.groups}, {shape[0]}, kernel_size={shape[2:]}, rank={self.rank}, "
            f"padding={self.padding!r}, approximation_error={self.approximation_error:.3g}, "
            f"weights={sum(math.prod(f.shape) for f in self.factors)}"
        )
