"""Kernels without supervised training (sec. 9.9): designed by hand, random, Gabor cells,
and k-means on image patches (Coates, Lee & Ng 2011)."""

from gridconv.kernels.classic import (
    box,
    difference_of_gaussians,
    gaussian,
    laplacian,
    oriented_edges,
    prewitt,
    sobel,
)
from gridconv.kernels.features import linear_probe, quadrant_sums, single_layer_features
from gridconv.kernels.gabor import (
    GaborFit,
    bank_parameters,
    envelope_beta,
    fit_gabor,
    gabor,
    gabor_bank,
    quadrature_pair,
)
from gridconv.kernels.kmeans import (
    KMeansKernels,
    Whitening,
    extract_patches,
    kmeans_kernels,
    normalize_patches,
    spherical_kmeans,
    triangle,
    zca_whitening,
)
from gridconv.kernels.random import random_kernels
from gridconv.kernels.sources import SOURCES, kernel_bank

__all__ = [
    "SOURCES",
    "GaborFit",
    "KMeansKernels",
    "Whitening",
    "bank_parameters",
    "box",
    "difference_of_gaussians",
    "envelope_beta",
    "extract_patches",
    "fit_gabor",
    "gabor",
    "gabor_bank",
    "gaussian",
    "kernel_bank",
    "kmeans_kernels",
    "laplacian",
    "linear_probe",
    "normalize_patches",
    "oriented_edges",
    "prewitt",
    "quadrant_sums",
    "quadrature_pair",
    "random_kernels",
    "single_layer_features",
    "sobel",
    "spherical_kmeans",
    "triangle",
    "zca_whitening",
]
