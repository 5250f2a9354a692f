"""Pure ``Tensor -> Tensor`` operations: no state, no printing, no I/O."""

from gridconv.functional.conv import conv
from gridconv.functional.matrix import conv_matrix
from gridconv.functional.padding import PADDING_MODES, pad, pad_adjoint, padding_index
from gridconv.functional.transpose import conv_transpose

__all__ = [
    "PADDING_MODES",
    "conv",
    "conv_matrix",
    "conv_transpose",
    "pad",
    "pad_adjoint",
    "padding_index",
]
