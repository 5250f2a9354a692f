"""Pictures of kernels. matplotlib is optional (``pip install gridconv[plot]``) and imported
only when a picture is made."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from gridconv._checks import check_choice, check_int, describe

__all__ = ["kernel_grid"]


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "pictures need matplotlib, which is not installed; install it with "
            "`pip install matplotlib` (or `pip install gridconv[plot]`)."
        ) from err
    return Figure


def kernel_grid(
    w: Tensor,
    *,
    columns: int | None = None,
    scale: str = "each",
    title: str | None = None,
    cell_inches: float = 0.6,
) -> Any:
    """A figure with one tile per kernel of a conv weight, the way kernels are usually shown.

    Three-channel kernels are drawn in colour, others one tile per channel in gray. Each
    tile is centred on gray: mid-gray is 0, white the largest positive value and black the
    most negative one, of that kernel (``scale="each"``) or of the whole bank (``"all"``).

    Args:
        w: ``(K, C, *kernel)`` with a 1-D or 2-D kernel (1-D kernels are drawn as rows).
        columns: tiles per row; defaults to about ``sqrt(tiles)``.
        scale: ``"each"`` or ``"all"``.
        title: above the grid.
        cell_inches: the size of one tile.

    Shape:
        - w: ``(K, C, k)`` or ``(K, C, kh, kw)``
        - Output: a ``matplotlib.figure.Figure``; save it with ``.savefig(path)``.

    Example:
        >>> import gridconv as gc
        >>> bank = gc.kernels.gabor_bank(9, orientations=4, frequencies=(1.0,))
        >>> fig = gc.plot.kernel_grid(bank)
        >>> len(fig.axes)
        8
    """
    if not isinstance(w, Tensor) or not w.is_floating_point():
        raise TypeError(f"`w` must be a floating-point tensor, got {describe(w)}.")
    if w.ndim not in (3, 4) or w.numel() == 0:
        raise ValueError(
            f"`w` must have shape (K, C, k) or (K, C, kh, kw), got shape {tuple(w.shape)}."
        )
    scale = check_choice("scale", scale, ("each", "all"))
    w = w.detach().double().cpu()
    if w.ndim == 3:
        w = w[:, :, None, :]
    colour = w.shape[1] == 3
    if not colour:
        w = w.reshape(-1, 1, *w.shape[2:])
    tiles = w.permute(0, 2, 3, 1)  # (tiles, rows, columns, 1 or 3)
    peak = tiles.abs().amax((1, 2, 3), keepdim=True)
    if scale == "all":
        peak = peak.amax().expand_as(peak)
    tiles = (0.5 + 0.5 * tiles / peak.clamp_min(1e-12)).clamp(0, 1)
    count = len(tiles)
    cols = math.ceil(math.sqrt(count))
    if columns is not None:
        cols = check_int("columns", columns, minimum=1)
    rows = math.ceil(count / cols)
    aspect = tiles.shape[2] / tiles.shape[1]
    size = (cols * cell_inches * min(aspect, 4), rows * cell_inches + 0.4)
    figure = _figure_class()(figsize=size)
    for i, tile in enumerate(tiles):
        axes = figure.add_subplot(rows, cols, i + 1)
        image = tile.numpy() if colour else tile[..., 0].numpy()
        axes.imshow(image, cmap=None if colour else "gray", vmin=0, vmax=1, interpolation="nearest")
        axes.set_axis_off()
    if title:
        figure.suptitle(title)
    figure.subplots_adjust(
        left=0.02, right=0.98, bottom=0.02, top=0.9 if title else 0.98, wspace=0.1, hspace=0.1
    )
    return figure
