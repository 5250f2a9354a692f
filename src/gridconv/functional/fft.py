"""``fft_conv``: convolution in the frequency domain (Goodfellow et al. 2016, sec. 9.8), as a
public op. The method itself is the subpackage :mod:`gridconv.functional.methods.fft`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from gridconv._shapes import Padding
from gridconv.functional._spec import finish, setup
from gridconv.functional.methods.fft.plan import fast_length, tile_plan
from gridconv.functional.methods.fft.run import run


def fft_conv(
    x: Tensor,
    w: Tensor,
    bias: Tensor | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "valid",
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Tensor:
    """:func:`gridconv.conv` computed with FFTs: the same arguments, the same result.

    Fast when the kernel is large: the cost grows as ``n log n`` with the input and barely
    with the kernel, where the direct method grows as ``n * k``. On this project's 2-core
    CPU it wins from kernels of about 9 x 9 in 2-D (single channel) and 15 x 15 with many
    channels, and in 1-D, where a compiled kernel runs it (on the CPU, float32 or half,
    in training too; see :mod:`gridconv.functional.methods.fft.overlap_save`), from about 7 taps
    with 8 channels; ``method="auto"`` makes that choice per shape. Half-precision inputs
    are transformed in float32. Accuracy against direct: about 1e-6 relative in float32
    and 1e-14 in float64 (max abs difference over max abs output).

    Args:
        x, w, bias, stride, padding, dilation, groups, padding_mode: as in
            :func:`gridconv.conv`.

    Shape:
        As :func:`gridconv.conv`: ``(N, C_in, *n) -> (N, C_out, *o)`` with
        ``o_i = floor((n_i + before_i + after_i - dilation_i * (k_i - 1) - 1) / stride_i) + 1``.

    Example:
        >>> import torch, gridconv as gc
        >>> x, w = torch.randn(2, 3, 64, 64), torch.randn(4, 3, 21, 21)
        >>> y = gc.fft_conv(x, w, padding="same")
        >>> torch.allclose(y, gc.conv(x, w, padding="same", method="direct"), atol=1e-3)
        True
    """
    x, spec, batched = setup(x, w, bias, stride, padding, dilation, groups, padding_mode)
    return finish(run(x, w, spec), bias, batched)


__all__ = ["fast_length", "fft_conv", "tile_plan"]
