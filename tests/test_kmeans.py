"""k-means kernels (Coates, Lee & Ng 2011): each step against an independent computation,
the claim that learned kernels are Gabor-like, and the error messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gridconv as gc
from gridconv import kernels as K


def test_extract_patches_are_windows_of_the_images():
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(2, 9, 11, generator=g), torch.rand(2, 6, 7, generator=g)]
    patches = K.extract_patches(images, (3, 4), 50, generator=g)
    assert patches.shape == (50, 2, 3, 4)
    windows = [
        im[:, r : r + 3, c : c + 4]
        for im in images
        for r in range(im.shape[1] - 2)
        for c in range(im.shape[2] - 3)
    ]
    for patch in patches:
        assert any(torch.equal(patch, w) for w in windows)
    # every position equally likely: the small image holds 16 of the 72 positions
    many = K.extract_patches(images, (3, 4), 6000, generator=g)
    small = sum(any(torch.equal(p, w) for w in windows[56:]) for p in many[:600])
    assert 100 < small < 170  # 133 expected


def test_normalize_and_zca_whitening():
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(5000, 6, generator=g, dtype=torch.float64) @ torch.randn(
        6, 6, generator=g, dtype=torch.float64
    )
    x = K.normalize_patches(raw + 3.0, 0.5)
    variance = raw.var(1, keepdim=True)
    torch.testing.assert_close(x.mean(1), torch.zeros(5000, dtype=torch.float64))
    torch.testing.assert_close(x.var(1, keepdim=True), variance / (variance + 0.5))
    white = K.zca_whitening(raw, epsilon=1e-9)
    out = white(raw)
    torch.testing.assert_close(
        torch.cov(out.T), torch.eye(6, dtype=torch.float64), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(white.matrix, white.matrix.T)
    # against NumPy's eigendecomposition with a visible epsilon
    eps = 0.3
    cov = np.cov(raw.numpy().T)
    values, vectors = np.linalg.eigh(cov)
    expected = vectors @ np.diag(1 / np.sqrt(values + eps)) @ vectors.T
    np.testing.assert_allclose(K.zca_whitening(raw, eps).matrix.numpy(), expected, rtol=1e-8)


def clusters(num, dims, per, generator):
    directions = torch.nn.functional.normalize(torch.randn(num, dims, generator=generator), dim=1)
    signs = torch.randint(0, 2, (num * per, 1), generator=generator) * 2 - 1
    noise = 0.05 * torch.randn(num * per, dims, generator=generator)
    scale = torch.rand(num * per, 1, generator=generator) + 0.5
    return directions, directions.repeat_interleave(per, 0) * signs * scale + noise


def test_spherical_kmeans_finds_the_directions_and_reseeds_empty_clusters():
    g = torch.Generator().manual_seed(2)
    directions, x = clusters(4, 16, 300, g)
    centroids = K.spherical_kmeans(x, 4, iterations=15, generator=g)
    similarity = (centroids @ directions.T).abs()
    assert torch.allclose(centroids.norm(dim=1), torch.ones(4))
    assert (similarity.max(1).values > 0.99).all() and (similarity.max(0).values > 0.99).all()
    # twice as many centroids as clusters: the unused ones are re-seeded onto data, so every
    # centroid ends near some cluster's direction (random starts in 16-D are not)
    doubled = K.spherical_kmeans(x, 8, iterations=15, generator=g)
    assert ((doubled @ directions.T).abs().max(1).values > 0.9).all()


def test_triangle_encoding():
    z = torch.tensor([[1.0, 2.0, 6.0], [3.0, 3.0, 3.0]])
    torch.testing.assert_close(K.triangle(z), torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    maps = torch.rand(2, 5, 3, 3)
    torch.testing.assert_close(K.triangle(maps)[:, :, 1, 2], K.triangle(maps[:, :, 1, 2]))


def test_single_layer_features_against_a_loop_over_patches():
    g = torch.Generator().manual_seed(3)
    images = torch.rand(2, 1, 7, 6, generator=g, dtype=torch.float64)
    kernels = torch.randn(3, 1, 3, 3, generator=g, dtype=torch.float64)
    white = K.zca_whitening(torch.randn(100, 9, generator=g, dtype=torch.float64), 0.1)
    unit = torch.nn.functional.normalize(kernels.flatten(1), dim=1)
    for encoding in ("triangle", "relu"):
        out = K.single_layer_features(images, kernels, whitening=white, encoding=encoding)
        maps = torch.zeros(2, 3, 5, 4, dtype=torch.float64)
        for n in range(2):
            for r in range(5):
                for c in range(4):
                    patch = images[n, :, r : r + 3, c : c + 3].reshape(1, -1)
                    x = white(K.normalize_patches(patch))
                    if encoding == "triangle":
                        z = (x - unit).norm(dim=1)
                        maps[n, :, r, c] = (z.mean() - z).clamp_min(0)
                    else:
                        maps[n, :, r, c] = (unit @ x[0]).clamp_min(0)
        expected = torch.cat(
            [
                maps[:, :, :2, :2].sum((2, 3)),
                maps[:, :, :2, 2:].sum((2, 3)),
                maps[:, :, 2:, :2].sum((2, 3)),
                maps[:, :, 2:, 2:].sum((2, 3)),
            ],
            dim=1,
        )
        torch.testing.assert_close(out, expected)


def test_kmeans_kernels_from_natural_images_are_gabor_like_and_random_ones_are_not():
    """Sec. 9.10: features learned from natural images look like Gabor functions."""
    g = torch.Generator().manual_seed(4)
    learned = K.kmeans_kernels(
        gc.data.natural_images(), 32, 8, num_patches=20_000, iterations=10, generator=g
    )
    assert learned.kernels.shape == (32, 1, 8, 8)
    gabor_like = (K.fit_gabor(learned.kernels).r2 >= 0.6).float().mean()
    random = K.random_kernels((32, 1, 8, 8), generator=g)
    random_like = (K.fit_gabor(random).r2 >= 0.6).float().mean()
    assert gabor_like > 0.6 and random_like < 0.2, (gabor_like, random_like)


def test_kmeans_kernels_colour_and_transform():
    g = torch.Generator().manual_seed(5)
    images = torch.rand(3, 3, 20, 20, generator=g)
    learned = K.kmeans_kernels(images, 5, (4, 3), num_patches=500, generator=g, whiten=False)
    assert learned.kernels.shape == (5, 3, 4, 3) and learned.whitening is None
    patches = torch.rand(10, 36, generator=g)
    torch.testing.assert_close(learned.transform(patches), K.normalize_patches(patches))


IMAGES = torch.rand(2, 1, 10, 10)
ERRORS = {
    "patch larger than images": (
        lambda: K.kmeans_kernels(IMAGES, 4, 12, num_patches=100),
        r"`patch_size` \(12, 12\) is larger than images\[0\]",
    ),
    "fewer patches than kernels": (
        lambda: K.kmeans_kernels(IMAGES, 50, 3, num_patches=20),
        r"`num_patches` \(=20\) must be at least `num_kernels` \(=50\)",
    ),
    "epsilon": (lambda: K.kmeans_kernels(IMAGES, 4, 3, num_patches=100, epsilon=0), r"`epsilon`"),
    "contrast epsilon": (
        lambda: K.kmeans_kernels(IMAGES, 4, 3, num_patches=100, contrast_epsilon=-1.0),
        r"`contrast_epsilon`",
    ),
    "patch size": (lambda: K.kmeans_kernels(IMAGES, 4, 0, num_patches=100), r"`patch_size`"),
    "num kernels": (lambda: K.kmeans_kernels(IMAGES, 0, 3), r"`num_kernels` must be >= 1"),
    "mixed channels": (
        lambda: K.kmeans_kernels([torch.rand(1, 9, 9), torch.rand(3, 9, 9)], 2, 3, num_patches=9),
        r"`images` must all have one channel count: images\[0\] has 1, images\[1\] has 3",
    ),
    "no images": (lambda: K.kmeans_kernels([], 2, 3), r"`images` must be a non-empty"),
    "features encoding": (
        lambda: K.single_layer_features(IMAGES, torch.rand(3, 1, 3, 3), encoding="soft"),
        r"`encoding`",
    ),
    "features channels": (
        lambda: K.single_layer_features(IMAGES, torch.rand(3, 2, 3, 3)),
        r"must agree on C",
    ),
    "source": (lambda: K.kernel_bank("pca"), r"`source` must be one of"),
    "kmeans without images": (lambda: K.kernel_bank("kmeans"), r"`images` are needed"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_name_their_argument(case):
    call, pattern = ERRORS[case]
    with pytest.raises(ValueError, match=pattern):
        call()


def test_every_source_makes_a_bank():
    g = torch.Generator().manual_seed(6)
    shapes = {
        source: tuple(
            K.kernel_bank(source, images=IMAGES, num_kernels=6, num_patches=200, generator=g).shape
        )
        for source in K.SOURCES
    }
    assert shapes == {
        "gabor": (48, 1, 11, 11),
        "kmeans": (6, 1, 8, 8),
        "random": (6, 1, 7, 7),
        "sobel": (2, 1, 3, 3),
        "prewitt": (2, 1, 3, 3),
        "laplacian": (1, 1, 3, 3),
        "edges": (6, 1, 7, 7),
    }


def test_linear_probe_agrees_with_scikit_learns_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(7)
    centres = torch.randn(3, 10, generator=g, dtype=torch.float64) * 1.2
    labels = torch.randint(0, 3, (600,), generator=g)
    features = centres[labels] + torch.randn(600, 10, generator=g, dtype=torch.float64)
    ours = K.linear_probe(features[:400], labels[:400], features[400:], labels[400:])
    mean, std = features[:400].mean(0), features[:400].std(0)
    sk = LogisticRegression(C=1 / (2 * 1e-4 * 400), max_iter=2000)
    sk.fit(((features[:400] - mean) / std).numpy(), labels[:400].numpy())
    theirs = sk.score(((features[400:] - mean) / std).numpy(), labels[400:].numpy())
    assert abs(ours - theirs) <= 0.02 and ours > 0.8
