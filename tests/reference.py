"""Obviously-right references for the tests: a naive loop over output cells, in NumPy.

Padding is done by ``numpy.pad`` (an implementation independent of gridconv's index maps),
then every output cell is the dot product of one input window with the kernel.
"""

from __future__ import annotations

import itertools

import numpy as np

NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def naive_conv(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: tuple[int, ...],
    pairs: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    groups: int = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """Cross-correlation of batched ``x`` (N, C_in, *n) with ``w`` (C_out, C_in/groups, *k)."""
    d = w.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0), *pairs], mode=NUMPY_MODE[padding_mode])
    out_channels, group_in = w.shape[:2]
    kernel = w.shape[2:]
    out_size = [
        (xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(d)
    ]
    out = np.zeros((x.shape[0], out_channels, *out_size), dtype=np.float64)
    per_group = out_channels // groups
    axes = list(range(1, d + 2))
    for pos in itertools.product(*(range(o) for o in out_size)):
        window = tuple(
            slice(p * s, p * s + dl * (k - 1) + 1, dl)
            for p, s, dl, k in zip(pos, stride, dilation, kernel)
        )
        patch = xp[(slice(None), slice(None), *window)]  # (N, C_in, *k)
        for g in range(groups):
            xs = patch[:, g * group_in : (g + 1) * group_in]
            ws = w[g * per_group : (g + 1) * per_group]
            cell = (slice(None), slice(g * per_group, (g + 1) * per_group), *pos)
            out[cell] = np.tensordot(xs, ws, axes=(axes, axes))
    if bias is not None:
        out += bias.reshape(out_channels, *([1] * d)) if bias.ndim == 1 else bias
    return out


def naive_local(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: tuple[int, ...],
    pairs: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    padding_mode: str = "zeros",
) -> np.ndarray:
    """Unshared convolution: ``w[p]`` (C_out, C_in, *k) is the kernel of output location p."""
    d = len(pairs)
    xp = np.pad(x, [(0, 0), (0, 0), *pairs], mode=NUMPY_MODE[padding_mode])
    out_size = w.shape[:d]
    kernel = w.shape[d + 2 :]
    out = np.zeros((x.shape[0], w.shape[d], *out_size), dtype=np.float64)
    axes = list(range(1, d + 2))
    for pos in itertools.product(*(range(o) for o in out_size)):
        window = tuple(
            slice(p * s, p * s + dl * (k - 1) + 1, dl)
            for p, s, dl, k in zip(pos, stride, dilation, kernel)
        )
        patch = xp[(slice(None), slice(None), *window)]
        out[(slice(None), slice(None), *pos)] = np.tensordot(patch, w[pos], axes=(axes, axes))
    if bias is not None:
        out += bias.reshape(-1, *([1] * d)) if bias.ndim == 1 else bias
    return out


def tile_weights(w: np.ndarray, out_size: tuple[int, ...]) -> np.ndarray:
    """The per-location kernels of a tiled weight: location i gets ``w[i mod tile]``."""
    d = len(out_size)
    tile = w.shape[:d]
    full = np.empty((*out_size, *w.shape[d:]), dtype=w.dtype)
    for pos in itertools.product(*(range(o) for o in out_size)):
        full[pos] = w[tuple(p % t for p, t in zip(pos, tile))]
    return full
