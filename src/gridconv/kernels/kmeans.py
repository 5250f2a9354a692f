"""Kernels learned without labels: k-means on image patches (Coates, Lee & Ng 2011; Coates &
Ng 2012, "Learning feature representations with k-means").

The recipe: random patches; per-patch brightness and contrast normalisation; ZCA whitening;
spherical k-means with damped centroid updates and empty clusters re-seeded. The
centroids, seen as kernels in the whitened space, look like the Gabor-like edges of V1
simple cells (sec. 9.10). Everything runs in torch, on the GPU when the images are there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gridconv._checks import check_int, describe
from gridconv._shapes import ntuple

CONTRAST_EPSILON = 10 / 255**2  # Coates & Ng's 10 for pixels in [0, 255], for [0, 1]
_CHUNK = 8192  # patches per step of k-means: bounds the (chunk, K) similarity matrix


class Whitening(NamedTuple):
    """ZCA whitening ``(x - mean) @ matrix``; ``matrix`` is symmetric."""

    mean: Tensor
    matrix: Tensor

    def __call__(self, patches: Tensor) -> Tensor:
        """Whiten flattened patches.

        Shape:
            ``(P, D) -> (P, D)``
        """
        return (patches - self.mean) @ self.matrix


class KMeansKernels(NamedTuple):
    """What :func:`kmeans_kernels` learned.

    Attributes:
        kernels: ``(K, C, *patch_size)``, unit-norm centroids in the whitened space.
        whitening: the ZCA transform fitted on the normalised patches, or None.
        contrast_epsilon: the variance floor of the patch normalisation.
    """

    kernels: Tensor
    whitening: Whitening | None
    contrast_epsilon: float

    def transform(self, patches: Tensor) -> Tensor:
        """Normalise and whiten flattened patches as the training patches were.

        Shape:
            ``(P, C * prod(patch_size)) -> (P, C * prod(patch_size))``
        """
        x = normalize_patches(patches, self.contrast_epsilon)
        return x if self.whitening is None else self.whitening(x)


def _check_images(images: object) -> list[Tensor]:
    """``images`` as a list of ``(C, *spatial)`` float tensors with one channel count."""
    if isinstance(images, Tensor):
        if images.ndim < 3:
            raise ValueError(
                f"`images` must be (N, C, *spatial) or a sequence of (C, *spatial) tensors, "
                f"got shape {tuple(images.shape)}."
            )
        images = list(images)
    if not isinstance(images, Sequence) or not images:
        raise ValueError(
            f"`images` must be a non-empty tensor or sequence, got {describe(images)}."
        )
    for i, image in enumerate(images):
        if not isinstance(image, Tensor) or not image.is_floating_point():
            raise TypeError(
                f"`images[{i}]` must be a floating-point tensor, got {describe(image)}."
            )
        if image.ndim != images[0].ndim or image.ndim < 2:
            raise ValueError(
                f"`images` must all be (C, *spatial) with one number of dims; images[0] has "
                f"shape {tuple(images[0].shape)}, images[{i}] {tuple(image.shape)}."
            )
        if image.shape[0] != images[0].shape[0]:
            raise ValueError(
                f"`images` must all have one channel count: images[0] has {images[0].shape[0]}, "
                f"images[{i}] has {image.shape[0]}."
            )
    return list(images)


def extract_patches(
    images: Tensor | Sequence[Tensor],
    patch_size: int | Sequence[int],
    num_patches: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Patches at uniformly random positions of randomly chosen images.

    Each image is picked in proportion to its number of patch positions, so every position
    of every image is equally likely.

    Args:
        images: ``(N, C, *spatial)`` or a sequence of ``(C, *spatial)`` of any sizes.
        patch_size: int or one per spatial dim.
        num_patches: how many.
        generator: for reproducible draws.

    Shape:
        Output: ``(num_patches, C, *patch_size)``
    """
    images = _check_images(images)
    d = images[0].ndim - 1
    size = ntuple("patch_size", patch_size, d)
    num_patches = check_int("num_patches", num_patches, minimum=1)
    for i, image in enumerate(images):
        if any(p > n for p, n in zip(size, image.shape[1:])):
            raise ValueError(
                f"`patch_size` {size} is larger than images[{i}] of spatial size "
                f"{tuple(image.shape[1:])}."
            )
    positions = [math.prod(n - p + 1 for n, p in zip(im.shape[1:], size)) for im in images]
    weights = torch.tensor(positions, dtype=torch.float64)
    which = torch.multinomial(weights, num_patches, replacement=True, generator=generator)
    patches = []
    for i in which.unique().tolist():
        picks = int((which == i).sum())
        view = images[i]
        for dim, p in enumerate(size):  # (C, *positions, *patch) without a copy
            view = view.unfold(dim + 1, p, 1)
        grid = view.shape[1 : d + 1]
        flat = torch.randint(math.prod(grid), (picks,), generator=generator)
        index = torch.unravel_index(flat, grid)
        at = (slice(None), *(ix.to(view.device) for ix in index))
        chosen = view[at]  # (C, picks, *p)
        patches.append(chosen.movedim(1, 0))
    out = torch.cat(patches)
    order = torch.randperm(num_patches, generator=generator).to(out.device)
    return out[order]


def normalize_patches(patches: Tensor, epsilon: float = CONTRAST_EPSILON) -> Tensor:
    """Brightness and contrast normalisation: ``(x - mean(x)) / sqrt(var(x) + epsilon)`` per
    patch, over all its cells and channels.

    Shape:
        ``(P, D) -> (P, D)``
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not epsilon > 0:
        raise ValueError(f"`contrast_epsilon` must be a number > 0, got {describe(epsilon)}.")
    centred = patches - patches.mean(1, keepdim=True)
    return centred / (centred.var(1, keepdim=True) + epsilon).sqrt()


def zca_whitening(patches: Tensor, epsilon: float = 0.1) -> Whitening:
    """ZCA: ``V diag(1 / sqrt(lambda + epsilon)) V^T`` of the patches' covariance.

    ``epsilon`` regularises the small eigenvalues (0.1 for normalised patches, after Coates
    et al.); ZCA whitened patches stay closest to the originals of all whitenings.

    Shape:
        ``patches`` ``(P, D)``; ``mean`` ``(D,)``, ``matrix`` ``(D, D)``.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not epsilon > 0:
        raise ValueError(f"`epsilon` must be a number > 0, got {describe(epsilon)}.")
    x = patches.double()
    mean = x.mean(0)
    centred = x - mean
    covariance = centred.T @ centred / max(len(x) - 1, 1)
    values, vectors = torch.linalg.eigh(covariance)
    matrix = (vectors * (values.clamp_min(0) + epsilon).rsqrt()) @ vectors.T
    return Whitening(mean.to(patches.dtype), matrix.to(patches.dtype))


def spherical_kmeans(
    x: Tensor,
    num_clusters: int,
    *,
    iterations: int = 10,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Spherical (gain-shape) k-means of Coates & Ng 2012: unit-norm centroids.

    Each step assigns every point to the centroid with the largest ``|<c, x>|``, adds
    ``<c, x> x`` of its points to each centroid (the old centroid stays in the sum, which
    damps the update) and renormalises. A centroid that no point chose is re-seeded from a
    random point.

    Shape:
        ``x`` ``(P, D)`` -> centroids ``(num_clusters, D)``
    """
    num_clusters = check_int("num_kernels", num_clusters, minimum=1)
    iterations = check_int("iterations", iterations, minimum=0)
    P, D = x.shape
    draw: dict[str, Any] = {"generator": generator, "dtype": x.dtype}
    centroids = torch.randn(num_clusters, D, **draw).to(x.device)
    centroids = torch.nn.functional.normalize(centroids, dim=1)
    for _ in range(iterations):
        update = centroids.clone()  # the damping term
        counts = torch.zeros(num_clusters, dtype=torch.long, device=x.device)
        for chunk in x.split(_CHUNK):
            s = chunk @ centroids.T
            best = s.abs().argmax(1)
            weight = s.gather(1, best[:, None])
            update.index_add_(0, best, chunk * weight)
            counts += torch.bincount(best, minlength=num_clusters)
        empty = (counts == 0).nonzero()[:, 0]
        if len(empty):
            seeds = torch.randint(P, (len(empty),), generator=generator).to(x.device)
            update[empty] = x[seeds]
        centroids = torch.nn.functional.normalize(update, dim=1)
    return centroids


def triangle(z: Tensor, *, dim: int = 1) -> Tensor:
    """The "triangle" encoding of Coates et al. 2011: ``f_k = max(0, mean(z) - z_k)``.

    ``z_k`` is the distance of a patch to centroid ``k``; about half the features are 0,
    the rest say how much closer than average the patch is to that centroid.

    Args:
        z: distances, the centroids along ``dim``.

    Shape:
        Output: as ``z``.
    """
    return (z.mean(dim, keepdim=True) - z).clamp_min(0)


def kmeans_kernels(
    images: Tensor | Sequence[Tensor],
    num_kernels: int,
    patch_size: int | Sequence[int],
    *,
    num_patches: int = 100_000,
    whiten: bool = True,
    epsilon: float = 0.1,
    iterations: int = 10,
    contrast_epsilon: float = CONTRAST_EPSILON,
    generator: torch.Generator | None = None,
) -> KMeansKernels:
    """Learn ``num_kernels`` kernels from unlabelled images (Coates, Lee & Ng 2011).

    Args:
        images: ``(N, C, *spatial)``, or a sequence of ``(C, *spatial)`` of any sizes, with
            values in [0, 1]; on the GPU for a GPU run.
        num_kernels: ``K``, the number of centroids.
        patch_size: int or one per spatial dim.
        num_patches: random patches to learn from; at least ``num_kernels``.
        whiten: ZCA-whiten the normalised patches (it makes the centroids edge-like).
        epsilon: the ZCA regulariser.
        iterations: of spherical k-means.
        contrast_epsilon: the variance floor of the per-patch normalisation.
        generator: for reproducible draws.

    Shape:
        - images: ``(N, C, *spatial)`` or ``[(C, *spatial), ...]``
        - Output: ``kernels`` ``(K, C, *patch_size)``, ``whitening`` on
          ``C * prod(patch_size)`` dims.

    Example:
        >>> import torch, gridconv as gc
        >>> images = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> learned = gc.kernels.kmeans_kernels(images, 16, 6, num_patches=2000,
        ...                                     generator=torch.Generator().manual_seed(0))
        >>> learned.kernels.shape, learned.whitening.matrix.shape
        (torch.Size([16, 1, 6, 6]), torch.Size([36, 36]))
    """
    num_kernels = check_int("num_kernels", num_kernels, minimum=1)
    num_patches = check_int("num_patches", num_patches, minimum=1)
    if num_patches < num_kernels:
        raise ValueError(
            f"`num_patches` (={num_patches}) must be at least `num_kernels` (={num_kernels}): "
            "every centroid needs patches to summarise."
        )
    patches = extract_patches(images, patch_size, num_patches, generator=generator)
    shape = patches.shape[1:]
    x = normalize_patches(patches.flatten(1), contrast_epsilon)
    whitening = zca_whitening(x, epsilon) if whiten else None
    if whitening is not None:
        x = whitening(x)
    centroids = spherical_kmeans(x, num_kernels, iterations=iterations, generator=generator)
    return KMeansKernels(centroids.reshape(num_kernels, *shape), whitening, contrast_epsilon)
