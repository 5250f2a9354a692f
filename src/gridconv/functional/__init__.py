"""Pure ``Tensor -> Tensor`` operations: no state, no printing, no I/O."""

from gridconv._memo import clear as clear_caches
from gridconv.functional.conv import METHODS, KernelCache, auto_method_for, conv
from gridconv.functional.fft import fast_length, fft_conv
from gridconv.functional.glimpse import glimpse, log_polar
from gridconv.functional.local import local_conv
from gridconv.functional.matrix import conv_matrix
from gridconv.functional.padding import PADDING_MODES, pad, pad_adjoint, padding_index
from gridconv.functional.pooling import channel_pool, global_pool, pool, pyramid_pool
from gridconv.functional.separable import (
    SeparableKernel,
    decompose,
    is_separable,
    max_rank,
    separable_conv,
)
from gridconv.functional.tiled import tiled_conv
from gridconv.functional.transpose import conv_transpose

__all__ = [
    "METHODS",
    "PADDING_MODES",
    "KernelCache",
    "SeparableKernel",
    "auto_method_for",
    "channel_pool",
    "clear_caches",
    "conv",
    "conv_matrix",
    "conv_transpose",
    "decompose",
    "fast_length",
    "fft_conv",
    "glimpse",
    "global_pool",
    "is_separable",
    "local_conv",
    "log_polar",
    "max_rank",
    "pad",
    "pad_adjoint",
    "padding_index",
    "pool",
    "pyramid_pool",
    "separable_conv",
    "tiled_conv",
]
