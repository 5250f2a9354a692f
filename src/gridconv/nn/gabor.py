"""Layers of model V1 cells (sec. 9.10): a bank of Gabor simple cells with fixed or
learnable parameters, and complex cells, the L2 norm of quadrature pairs of simple cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gridconv._checks import check_choice, check_int
from gridconv._shapes import Padding, ntuple, parse_padding
from gridconv.functional.conv import conv, method_names
from gridconv.functional.padding import PADDING_MODES
from gridconv.functional.pooling import channel_pool
from gridconv.kernels.gabor import bank_parameters, gabor


class GaborConv2d(nn.Module):
    """A bank of Gabor simple cells applied to every input channel.

    The bank is every orientation x frequency x phase (phase fastest, as
    :func:`gridconv.kernels.gabor_bank`). Each kernel's eight parameters (alpha, beta_x,
    beta_y, frequency, phase, x0, y0, tau) are kept, not the kernel: with
    ``learnable=True`` they are trained, and the kernels stay Gabor functions.

    Args:
        in_channels: each is filtered by the whole bank on its own.
        size: kernel cells per side.
        orientations: a count (``tau = pi i / n``) or angles in radians.
        frequencies: radians per cell.
        phases: radians; the default pairs make quadrature pairs.
        learnable: train the Gabor parameters (else they are fixed buffers).
        bandwidth: of the initial envelopes, in octaves.
        stride, padding, padding_mode, method: as :class:`gridconv.nn.Conv2d`.

    Shape:
        - Input: ``(N, C_in, H, W)``
        - Output: ``(N, C_in * K, H_out, W_out)``; channel ``c * K + k`` is kernel ``k`` on
          input channel ``c``.

    Example:
        >>> import math, torch, gridconv as gc
        >>> cells = gc.nn.GaborConv2d(1, 11, orientations=4, frequencies=(math.pi / 3,))
        >>> cells.weight.shape, cells(torch.randn(2, 1, 32, 32)).shape
        (torch.Size([8, 1, 11, 11]), torch.Size([2, 8, 32, 32]))
    """

    # the bank's parameters (or buffers), one value per kernel, set in __init__
    alpha: Tensor
    log_beta_x: Tensor
    log_beta_y: Tensor
    frequency: Tensor
    phase: Tensor
    x0: Tensor
    y0: Tensor
    tau: Tensor

    def __init__(
        self,
        in_channels: int,
        size: int,
        *,
        orientations: int | Sequence[float],
        frequencies: Sequence[float],
        phases: Sequence[float] = (0.0, math.pi / 2),
        learnable: bool = False,
        bandwidth: float = 1.0,
        stride: int | Sequence[int] = 1,
        padding: Padding = "same",
        padding_mode: str = "zeros",
        method: str = "auto",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.size = check_int("size", size, minimum=1)
        self.stride = ntuple("stride", stride, 2)
        self.padding = parse_padding(padding, 2)
        self.padding_mode = check_choice("padding_mode", padding_mode, PADDING_MODES)
        self.method = check_choice("method", method, method_names())
        factory: dict[str, Any] = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        initial = bank_parameters(orientations, frequencies, phases, bandwidth)
        initial["log_beta_x"] = initial.pop("beta_x").log()
        initial["log_beta_y"] = initial.pop("beta_y").log()
        self.learnable = bool(learnable)
        for name, value in initial.items():
            value = value.to(**factory)
            if self.learnable:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.out_channels = self.in_channels * len(self.tau)

    @property
    def weight(self) -> Tensor:
        """The bank, ``(K, 1, size, size)``, made from the current parameters."""
        w = gabor(
            self.size,
            alpha=self.alpha,
            beta_x=self.log_beta_x.exp(),
            beta_y=self.log_beta_y.exp(),
            frequency=self.frequency,
            phase=self.phase,
            x0=self.x0,
            y0=self.y0,
            tau=self.tau,
        )
        return w[:, None]

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        return conv(
            x,
            w.repeat(self.in_channels, 1, 1, 1),
            stride=self.stride,
            padding=self.padding,
            groups=self.in_channels,
            padding_mode=self.padding_mode,
            method=self.method,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, size={self.size}, "
            f"kernels={len(self.tau)}, learnable={self.learnable}, padding={self.padding!r}"
        )


class ComplexCell2d(nn.Module):
    """Model complex cells: the L2 norm of each quadrature pair of Gabor simple cells.

    ``sqrt(even^2 + odd^2)`` is the local energy of the matching frequency and orientation:
    as a grating drifts under the cell (its phase changes), the simple cells' responses
    swing between positive and negative, the complex cell's barely moves (sec. 9.10).

    Args:
        size, orientations, frequencies, bandwidth, learnable: as :class:`GaborConv2d`
            (the phases are ``0`` and ``pi / 2``).
        stride, padding, padding_mode, method: as :class:`GaborConv2d`.
        in_channels: each is filtered on its own.

    Shape:
        - Input: ``(N, C_in, H, W)``
        - Output: ``(N, C_in * orientations * frequencies, H_out, W_out)``

    Example:
        >>> import math, torch, gridconv as gc
        >>> cells = gc.nn.ComplexCell2d(11, orientations=4, frequencies=(math.pi / 3,))
        >>> cells(torch.randn(2, 1, 32, 32)).shape
        torch.Size([2, 4, 32, 32])
    """

    def __init__(
        self,
        size: int,
        *,
        orientations: int | Sequence[float],
        frequencies: Sequence[float],
        in_channels: int = 1,
        learnable: bool = False,
        bandwidth: float = 1.0,
        stride: int | Sequence[int] = 1,
        padding: Padding = "same",
        padding_mode: str = "zeros",
        method: str = "auto",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.simple = GaborConv2d(
            in_channels,
            size,
            orientations=orientations,
            frequencies=frequencies,
            phases=(0.0, math.pi / 2),
            learnable=learnable,
            bandwidth=bandwidth,
            stride=stride,
            padding=padding,
            padding_mode=padding_mode,
            method=method,
            dtype=dtype,
            device=device,
        )
        self.in_channels = self.simple.in_channels
        self.out_channels = self.simple.out_channels // 2

    def forward(self, x: Tensor) -> Tensor:
        return channel_pool(self.simple(x), 2, method="lp", p=2.0)
