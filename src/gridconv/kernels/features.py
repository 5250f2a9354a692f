"""The single-layer feature pipeline of Coates, Lee & Ng (2011): fixed kernels, a
non-linear encoding of every patch, and sum pooling over the four quadrants.

With kernels from k-means, Gabor banks or random draws it measures how good kernels made
without labels are: a linear classifier on these features is the whole supervised part.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gridconv._checks import check_choice, check_int, check_tensor
from gridconv.kernels.kmeans import CONTRAST_EPSILON, Whitening, normalize_patches, triangle

ENCODINGS = ("triangle", "relu")


def quadrant_sums(maps: Tensor) -> Tensor:
    """Sum each feature map over its four quadrants (rows and columns split at ``n // 2``).

    Shape:
        ``(N, K, H, W) -> (N, 4 K)``, quadrant-major.
    """
    h, w = maps.shape[2] // 2, maps.shape[3] // 2
    parts = [
        maps[:, :, rows, cols]
        for rows in (slice(0, h), slice(h, None))
        for cols in (slice(0, w), slice(w, None))
    ]
    return torch.cat([p.sum((2, 3)) for p in parts], dim=1)


def single_layer_features(
    images: Tensor,
    kernels: Tensor,
    *,
    whitening: Whitening | None = None,
    encoding: str = "triangle",
    contrast_epsilon: float = CONTRAST_EPSILON,
    stride: int = 1,
    batch_size: int = 128,
) -> Tensor:
    """Features of ``images`` from fixed ``kernels``, as in Coates, Lee & Ng 2011.

    Every ``k x k`` patch (at ``stride``) is contrast-normalised and, if ``whitening`` is
    given, whitened; then encoded against the kernels, ``"triangle"``
    (``max(0, mean(z) - z_k)`` of the distances ``z`` to the unit-norm kernels) or
    ``"relu"`` (``max(0, <w_k, x>)``); then each feature map is summed over its quadrants.

    Args:
        images: ``(N, C, H, W)``.
        kernels: ``(K, C, k, k)``; normalised to unit norm for the encoding.
        whitening: from :func:`gridconv.kernels.kmeans_kernels` (or None).
        encoding: ``"triangle"`` or ``"relu"``.
        contrast_epsilon: the variance floor of the patch normalisation.
        stride: between patches.
        batch_size: images per step (bounds memory).

    Shape:
        Output: ``(N, 4 K)``
    """
    images = check_tensor("images", images)
    kernels = check_tensor("kernels", kernels)
    if images.ndim != 4 or kernels.ndim != 4 or kernels.shape[1] != images.shape[1]:
        raise ValueError(
            f"`images` (N, C, H, W) and `kernels` (K, C, k, k) must agree on C; got shapes "
            f"{tuple(images.shape)} and {tuple(kernels.shape)}."
        )
    encoding = check_choice("encoding", encoding, ENCODINGS)
    stride = check_int("stride", stride, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    size = kernels.shape[2:]
    if any(k > n for k, n in zip(size, images.shape[2:])):
        raise ValueError(
            f"`kernels` of size {tuple(size)} are larger than the images "
            f"({tuple(images.shape[2:])})."
        )
    out_h, out_w = ((n - k) // stride + 1 for n, k in zip(images.shape[2:], size))
    centroids = F.normalize(kernels.flatten(1).to(images.dtype), dim=1)
    features = []
    for batch in images.split(batch_size):
        patches = F.unfold(batch, tuple(size), stride=stride).transpose(1, 2)  # (B, L, D)
        x = normalize_patches(patches.reshape(-1, patches.shape[-1]), contrast_epsilon)
        if whitening is not None:
            x = whitening(x)
        if encoding == "triangle":
            code = triangle(torch.cdist(x, centroids), dim=1)
        else:
            code = (x @ centroids.T).clamp_min(0)
        maps = code.reshape(len(batch), out_h, out_w, -1).permute(0, 3, 1, 2)
        features.append(quadrant_sums(maps))
    return torch.cat(features)


def linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    *,
    weight_decay: float = 1e-4,
    iterations: int = 200,
) -> float:
    """Test accuracy of multinomial logistic regression trained on fixed features.

    The features are standardised with the training set's mean and deviation; the model is
    fitted by full-batch L-BFGS with an L2 penalty. This is the only supervised part of the
    single-layer pipeline.

    Shape:
        ``train_features`` ``(N, F)``, ``train_labels`` ``(N,)`` int64; the same for test.
        Output: a float in [0, 1].
    """
    train_features = check_tensor("train_features", train_features).double()
    test_features = check_tensor("test_features", test_features).double()
    iterations = check_int("iterations", iterations, minimum=1)
    mean, std = train_features.mean(0), train_features.std(0).clamp_min(1e-8)
    x, x_test = (train_features - mean) / std, (test_features - mean) / std
    classes = int(train_labels.max()) + 1
    weight = torch.zeros(x.shape[1], classes, dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(classes, dtype=x.dtype, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias], max_iter=iterations, history_size=20, line_search_fn="strong_wolfe"
    )

    def loss() -> Tensor:
        optimiser.zero_grad()
        value = F.cross_entropy(x @ weight + bias, train_labels)
        value = value + weight_decay * weight.square().sum()
        value.backward()
        return value

    optimiser.step(loss)
    with torch.no_grad():
        predicted = (x_test @ weight + bias).argmax(1)
    return (predicted == test_labels).double().mean().item()
