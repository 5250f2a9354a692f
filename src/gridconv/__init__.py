"""gridconv: convolutional networks for any grid-like data.

Every idea of the convolution chapter of *Deep Learning* (Goodfellow, Bengio & Courville,
2016, ch. 9) as fast, tested PyTorch code. Ops are pure functions (``gridconv.conv``, ...);
layers live in ``gridconv.nn``.
"""

from gridconv import analysis, data, functional, kernels, nn, plan, plot
from gridconv.allocator import keep_freed_memory
from gridconv.functional import (
    SeparableKernel,
    channel_pool,
    conv,
    conv_matrix,
    conv_transpose,
    decompose,
    fft_conv,
    glimpse,
    global_pool,
    is_separable,
    local_conv,
    log_polar,
    pool,
    pyramid_pool,
    separable_conv,
    tiled_conv,
)
from gridconv.plan import planning

__version__ = "0.1.0"

__all__ = [
    "SeparableKernel",
    "__version__",
    "analysis",
    "channel_pool",
    "conv",
    "conv_matrix",
    "conv_transpose",
    "data",
    "decompose",
    "fft_conv",
    "functional",
    "glimpse",
    "global_pool",
    "is_separable",
    "keep_freed_memory",
    "kernels",
    "local_conv",
    "log_polar",
    "nn",
    "plan",
    "planning",
    "plot",
    "pool",
    "pyramid_pool",
    "separable_conv",
    "tiled_conv",
]
