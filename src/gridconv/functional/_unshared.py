"""What locally connected and tiled convolution share (sec. 9.6): weights with leading
location or tile dims, ``(*lead, C_out, C_in, *kernel_size)``, validated the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from gridconv._checks import check_same_kind, check_tensor
from gridconv._shapes import Padding
from gridconv.functional._spec import ConvSpec, check_input, conv_spec


def split_weight(w: object, name: str) -> int:
    """``w`` is ``(*lead, C_out, C_in, *kernel_size)`` with 1-3 spatial dims; returns d."""
    w = check_tensor(name, w)
    if w.ndim not in (4, 6, 8):
        raise ValueError(
            f"`{name}` must have shape (*{'out_spatial' if name == 'w' else 'tile_size'}, "
            f"C_out, C_in, *kernel_size) with 1, 2 or 3 spatial dims, i.e. 4, 6 or 8 dims; "
            f"got shape {tuple(w.shape)}."
        )
    if 0 in w.shape:
        raise ValueError(f"`{name}` must have no empty dims, got shape {tuple(w.shape)}.")
    return (w.ndim - 2) // 2


def setup_unshared(
    x: Tensor,
    w: Tensor,
    bias: Tensor | None,
    name: str,
    stride: int | Sequence[int],
    padding: Padding,
    dilation: int | Sequence[int],
    padding_mode: str,
) -> tuple[Tensor, ConvSpec, bool, int]:
    """Validate ``op(x, w, bias, ...)`` for local and tiled weights (``w`` called ``name`` in
    errors); batch ``x``."""
    d = split_weight(w, name)
    batched = check_input(x, d)
    check_same_kind(x=x, w=w)
    if not batched:
        x = x.unsqueeze(0)
    spec = conv_spec(
        tuple(w.shape[d:]), x.shape[1], x.shape[2:], stride=stride, padding=padding,
        dilation=dilation, groups=1, padding_mode=padding_mode,
    )  # fmt: skip
    return x, spec, batched, d
