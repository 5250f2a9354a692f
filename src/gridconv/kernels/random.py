"""Random kernels: the cheapest kernels without supervised training (sec. 9.9).

Saxe et al. (2011) found that a convolution with random kernels followed by pooling is
already frequency selective and translation invariant, so random features make a strong
baseline for an architecture before anything is trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from gridconv._checks import check_choice, check_int, describe

METHODS = ("normal", "uniform", "orthogonal")


def random_kernels(
    shape: Sequence[int],
    *,
    method: str = "normal",
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random conv weights ``(C_out, C_in, *kernel)``, each kernel of expected norm ``gain``.

    Args:
        shape: ``(C_out, C_in, *kernel_size)``.
        method: ``"normal"``: N(0, gain^2 / fan_in) entries; ``"uniform"``: U(-a, a) with the
            same variance, ``a = gain * sqrt(3 / fan_in)``; ``"orthogonal"``: the
            ``C_out`` kernels, flattened, are orthonormal (times ``gain``) when
            ``C_out <= fan_in``, else the columns are (Saxe et al. 2014).
            ``fan_in = C_in * prod(kernel_size)``.
        gain: the scale.
        generator: for reproducible draws; the global generator is never seeded here.

    Shape:
        Output: ``shape``

    Example:
        >>> import torch, gridconv as gc
        >>> w = gc.kernels.random_kernels((8, 1, 5, 5), method="orthogonal",
        ...                               generator=torch.Generator().manual_seed(0))
        >>> flat = w.flatten(1)
        >>> torch.allclose(flat @ flat.T, torch.eye(8), atol=1e-5)
        True
    """
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if not isinstance(shape, Sequence) or len(shape) < 3:
        raise ValueError(
            f"`shape` must be (C_out, C_in, *kernel_size) with at least one spatial dim, "
            f"got {describe(shape)}."
        )
    shape = tuple(check_int("shape", n, minimum=1) for n in shape)
    method = check_choice("method", method, METHODS)
    if isinstance(gain, bool) or not isinstance(gain, int | float) or not 0 < gain < math.inf:
        raise ValueError(f"`gain` must be a positive number, got {describe(gain)}.")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator, got {describe(generator)}.")
    dtype = dtype or torch.get_default_dtype()
    out_channels, fan_in = shape[0], math.prod(shape[1:])
    draw: dict[str, Any] = {"generator": generator, "dtype": torch.float64, "device": device}
    if method == "normal":
        w = torch.randn(shape, **draw) / math.sqrt(fan_in)
    elif method == "uniform":
        w = (torch.rand(shape, **draw) * 2 - 1) * math.sqrt(3 / fan_in)
    else:
        rows, cols = max(out_channels, fan_in), min(out_channels, fan_in)
        q, r = torch.linalg.qr(torch.randn(rows, cols, **draw))
        q = q * torch.sign(torch.diagonal(r))  # uniform over orthogonal matrices (Mezzadri)
        w = (q if out_channels > fan_in else q.T).reshape(shape)
    return (w * gain).to(dtype)
