"""Hypothesis strategies: random but valid convolution configurations, 1 to 3 spatial dims."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st

import gridconv as gc

MAX_SIZE = {1: 16, 2: 9, 3: 6}


@dataclass
class Config:
    batch: int
    in_channels: int
    out_channels: int
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: Any
    groups: int
    padding_mode: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
        )

    def x(self, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        shape = (self.batch, self.in_channels, *self.input_size)
        return torch.randn(shape, generator=g, dtype=torch.float64)

    def w(self, seed: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        return torch.randn(shape, generator=g, dtype=torch.float64)


@st.composite
def configs(draw: st.DrawFn, *, stride_one: bool = False) -> Config:
    d = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2]))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(d))
    stride = (1,) * d if stride_one else tuple(draw(st.integers(1, 3)) for _ in range(d))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(d))
    padding = draw(
        st.one_of(
            st.sampled_from(["valid", "same", "full"]),
            st.integers(0, 3),
            st.tuples(*[st.tuples(st.integers(0, 3), st.integers(0, 3)) for _ in range(d)]),
        )
    )
    if isinstance(padding, str):
        pads = [0 if padding == "valid" else None] * d
    elif isinstance(padding, int):
        pads = [2 * padding] * d
    else:
        pads = [b + a for b, a in padding]
    sizes = []
    for k, dl, pad in zip(kernel, dilation, pads):
        low = 1 if pad is None else max(1, dl * (k - 1) + 1 - pad)
        sizes.append(draw(st.integers(low, max(low, MAX_SIZE[d]))))
    return Config(
        batch=draw(st.integers(1, 2)),
        in_channels=groups * draw(st.integers(1, 2)),
        out_channels=groups * draw(st.integers(1, 2)),
        input_size=tuple(sizes),
        kernel_size=kernel,
        stride=stride,
        dilation=dilation,
        padding=padding,
        groups=groups,
        padding_mode=draw(st.sampled_from(gc.functional.PADDING_MODES)),
    )
