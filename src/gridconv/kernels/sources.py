"""One entry point for every kind of kernel bank, by name (used by ``gridconv kernels``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from gridconv._checks import check_choice, check_int
from gridconv.kernels.classic import laplacian, oriented_edges, prewitt, sobel
from gridconv.kernels.gabor import gabor_bank
from gridconv.kernels.kmeans import kmeans_kernels
from gridconv.kernels.random import random_kernels

SOURCES = ("gabor", "kmeans", "random", "sobel", "prewitt", "laplacian", "edges")
DEFAULT_SIZE = {"gabor": 11, "kmeans": 8, "random": 7, "edges": 7}


def kernel_bank(
    source: str,
    *,
    images: Tensor | Sequence[Tensor] | None = None,
    num_kernels: int = 64,
    size: int | None = None,
    num_patches: int = 100_000,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A bank of 2-D kernels ``(K, C, size, size)`` made without labels.

    Args:
        source: ``"gabor"`` (8 orientations x 3 frequencies x 2 phases), ``"kmeans"``
            (learned from ``images``, whitened, :func:`kmeans_kernels`), ``"random"``
            (normal), ``"sobel"``, ``"prewitt"``, ``"laplacian"`` (fixed 3 x 3) or
            ``"edges"`` (``num_kernels`` oriented edge detectors).
        images: for ``"kmeans"``: ``(N, C, H, W)`` or a list of ``(C, H, W)`` in [0, 1].
        num_kernels: for ``"kmeans"``, ``"random"`` and ``"edges"``.
        size: cells per side; defaults to 11 (gabor), 8 (kmeans), 7 (random, edges).
        num_patches: for ``"kmeans"``.
        generator: for ``"kmeans"`` and ``"random"``.

    Shape:
        Output: ``(K, C, size, size)``; ``C`` is the images' channels for ``"kmeans"``, else 1.
    """
    source = check_choice("source", source, SOURCES)
    num_kernels = check_int("num_kernels", num_kernels, minimum=1)
    size = DEFAULT_SIZE.get(source, 3) if size is None else check_int("size", size, minimum=1)
    if source == "gabor":
        wavelengths = (size / 4, size / 3, size / 2)
        frequencies = tuple(2 * math.pi / max(v, 2.0) for v in wavelengths)
        return gabor_bank(size, orientations=8, frequencies=frequencies)
    if source == "kmeans":
        if images is None:
            raise ValueError("`images` are needed to learn k-means kernels from.")
        learned = kmeans_kernels(
            images, num_kernels, size, num_patches=num_patches, generator=generator
        )
        return learned.kernels
    if source == "random":
        return random_kernels((num_kernels, 1, size, size), generator=generator)
    if source == "edges":
        return oriented_edges(size, num_kernels)
    return {"sobel": sobel, "prewitt": prewitt, "laplacian": laplacian}[source]()
