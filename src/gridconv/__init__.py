"""gridconv: convolutional networks for any grid-like data.

Every idea of the convolution chapter of *Deep Learning* (Goodfellow, Bengio & Courville,
2016, ch. 9) as fast, tested PyTorch code. Ops are pure functions (``gridconv.conv``, ...);
layers live in ``gridconv.nn``.
"""

from gridconv import data, functional, nn
from gridconv.functional import conv, conv_matrix, conv_transpose

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "conv",
    "conv_matrix",
    "conv_transpose",
    "data",
    "functional",
    "nn",
]
