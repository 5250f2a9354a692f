"""Translated and cluttered canvases (Mnih et al. 2014, "Recurrent Models of Visual
Attention"): each digit at a random place on a larger canvas, with pieces of other digits
scattered around it as clutter. Made from any image set; nothing is downloaded.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gridconv._checks import check_int, check_tensor

# The seeds of the canvases of the `cluttered:` and `translated:` specs, per split.
TRAIN_SEED, TEST_SEED = 0, 1


def _random_ints(high: Tensor | int, shape: tuple[int, ...], generator: torch.Generator | None):
    """Uniform integers in ``[0, high]`` (inclusive), one per element of ``shape``."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return (u * (torch.as_tensor(high, dtype=torch.float64) + 1)).floor().long()


def _paste(canvas: Tensor, values: Tensor, top: Tensor, left: Tensor, h: int, w: int) -> None:
    """Add ``values`` ``(N, C, h, w)`` into ``canvas`` ``(N, C, S, S)`` at per-image corners."""
    N, C, S, _ = canvas.shape
    rows = top[:, None] + torch.arange(h)  # (N, h)
    cols = left[:, None] + torch.arange(w)  # (N, w)
    index = (rows[:, :, None] * S + cols[:, None, :]).reshape(N, 1, h * w).expand(N, C, h * w)
    canvas.view(N, C, S * S).scatter_add_(2, index, values.reshape(N, C, h * w))


def cluttered(
    images: Tensor,
    labels: Tensor,
    *,
    canvas: int = 60,
    pieces: int = 4,
    piece_size: int = 8,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Each image at a random place on a ``canvas`` x ``canvas`` field, fully inside it, with
    ``pieces`` random ``piece_size`` crops of other images added at random places; values
    clipped to [0, 1]. ``pieces=0`` gives translated canvases.

    Args:
        images: ``(N, C, h, w)`` or ``(N, h, w)`` in [0, 1].
        labels: ``(N,)``, passed through.
        canvas: the side of the canvas, at least the images' sides.
        pieces: clutter pieces per canvas (crops of other images; of the image itself when
            there is only one).
        piece_size: the side of each piece, at most the images' sides.
        generator: for every random choice; the same generator state gives the same
            canvases.

    Returns:
        ``(canvases, labels, positions)``: positions are each image's top-left corner
        ``(row, column)`` on its canvas.

    Shape:
        - images: ``(N, C, h, w)``; labels: ``(N,)``
        - Output: ``(N, C, canvas, canvas)``, ``(N,)``, ``(N, 2)`` int64

    Raises:
        TypeError: non-tensor inputs, non-integer sizes.
        ValueError: mismatched lengths, a canvas smaller than the images, a piece larger
            than them, a negative number of pieces.

    Example:
        >>> import torch, gridconv as gc
        >>> digits = torch.rand(10, 1, 28, 28)
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y, where = gc.data.cluttered(digits, torch.arange(10), generator=g)
        >>> x.shape, bool(((where >= 0) & (where <= 32)).all())
        (torch.Size([10, 1, 60, 60]), True)
    """
    images = check_tensor("images", images)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            f"`images` must have shape (N, C, h, w) or (N, h, w), got {tuple(images.shape)}."
        )
    if not isinstance(labels, Tensor) or labels.shape != images.shape[:1]:
        raise ValueError(
            f"`labels` must be a tensor of shape ({images.shape[0]},), one per image; got "
            f"{getattr(labels, 'shape', type(labels).__name__)}."
        )
    N, C, h, w = images.shape
    canvas = check_int("canvas", canvas, minimum=1)
    if canvas < max(h, w):
        raise ValueError(f"`canvas` (={canvas}) must be at least the images' sides ({h}, {w}).")
    pieces = check_int("pieces", pieces, minimum=0)
    piece_size = check_int("piece_size", piece_size, minimum=1)
    if piece_size > min(h, w):
        raise ValueError(
            f"`piece_size` (={piece_size}) must be at most the images' sides ({h}, {w})."
        )
    images = images.detach().cpu()
    out = torch.zeros(N, C, canvas, canvas, dtype=images.dtype)
    positions = torch.stack(
        [_random_ints(canvas - h, (N,), generator), _random_ints(canvas - w, (N,), generator)],
        dim=1,
    )
    _paste(out, images, positions[:, 0], positions[:, 1], h, w)
    flat = images.reshape(N, C, h * w)
    for _ in range(pieces):
        # another image: a shift of 1 .. N - 1 places (the image itself when N == 1)
        source = (torch.arange(N) + 1 + _random_ints(max(N - 2, 0), (N,), generator)) % N
        top = _random_ints(h - piece_size, (N,), generator)
        left = _random_ints(w - piece_size, (N,), generator)
        rows = top[:, None] + torch.arange(piece_size)
        cols = left[:, None] + torch.arange(piece_size)
        index = (rows[:, :, None] * w + cols[:, None, :]).reshape(N, 1, -1).expand(N, C, -1)
        crop = flat[source].gather(2, index)
        at = [_random_ints(canvas - piece_size, (N,), generator) for _ in range(2)]
        _paste(out, crop, at[0], at[1], piece_size, piece_size)
    return out.clamp_(0, 1), labels, positions
