"""The figures of the kernels issue: how Gabor-like k-means kernels are, how well fixed
kernels from k-means, Gabor banks and random draws classify MNIST in the single-layer
pipeline of Coates, Lee & Ng (2011), and how long k-means takes.

    python benchmarks/unsupervised_kernels.py [--out benchmarks/results]

Writes ``kernels.json`` and pictures of the kernel banks; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch

import gridconv as gc
from gridconv import kernels as K
from gridconv import models
from gridconv.train import fit as train_model


def gabor_likeness(generator: torch.Generator, out: Path) -> dict:
    """The fraction of kernels a fitted Gabor explains with R^2 >= 0.6, per source."""
    images = gc.data.natural_images()
    learned = K.kmeans_kernels(images, 100, 8, num_patches=100_000, generator=generator)
    raw = K.kmeans_kernels(images, 100, 8, num_patches=100_000, whiten=False, generator=generator)
    banks = {
        "k-means, whitened": learned.kernels,
        "k-means, not whitened": raw.kernels,
        "random (normal)": K.random_kernels((100, 1, 8, 8), generator=generator),
        "random (uniform)": K.random_kernels((100, 1, 8, 8), method="uniform", generator=generator),
    }
    gc.plot.kernel_grid(learned.kernels, title="k-means on natural images (8x8, whitened)").savefig(
        out / "kmeans_kernels.png", dpi=100
    )
    result = {}
    for name, bank in banks.items():
        r2 = K.fit_gabor(bank).r2
        result[name] = {
            "kernels": len(bank),
            "gabor_like": (r2 >= 0.6).double().mean().item(),
            "median_r2": r2.median().item(),
        }
    return result


def mnist_pipeline(generator: torch.Generator, out: Path) -> dict:
    """Single-layer features + logistic regression, per kernel source and encoding."""
    train_set, test_set = gc.data.load("mnist5k")
    (x_train, y_train), (x_test, y_test) = train_set.tensors, test_set.tensors
    size, count = 7, 96
    learned = K.kmeans_kernels(x_train, count, size, num_patches=100_000, generator=generator)
    wavelengths = (2.5, 3.5, 5.0, 7.0, 10.0, 14.0)
    banks = {
        "k-means": learned.kernels,
        "Gabor": K.gabor_bank(
            size, orientations=8, frequencies=[2 * math.pi / v for v in wavelengths]
        ),
        "random": K.random_kernels((count, 1, size, size), generator=generator),
    }
    gc.plot.kernel_grid(learned.kernels, title="k-means on MNIST (7x7, whitened)").savefig(
        out / "mnist_kmeans_kernels.png", dpi=100
    )
    result = {}
    for name, bank in banks.items():
        for encoding in ("triangle", "relu"):
            start = time.perf_counter()
            features = [
                K.single_layer_features(x, bank, whitening=learned.whitening, encoding=encoding)
                for x in (x_train, x_test)
            ]
            accuracy = K.linear_probe(features[0], y_train, features[1], y_test)
            result[f"{name}, {encoding}"] = {
                "kernels": len(bank),
                "features": features[0].shape[1],
                "test_accuracy": accuracy,
                "seconds": time.perf_counter() - start,
            }
    torch.manual_seed(0)
    model = models.build("convnet", 1, 10, 28)
    start = time.perf_counter()
    reports = train_model(model, train_set, test_set, epochs=10, batch_size=64, lr=2e-3)
    result["supervised ConvNet (32-64 5x5)"] = {
        "kernels": 32 + 64,
        "test_accuracy": reports[-1].test_accuracy,
        "seconds": time.perf_counter() - start,
    }
    return result


def kmeans_timing(generator: torch.Generator, repeats: int = 3) -> dict:
    """Median seconds of kmeans_kernels on 100,000 colour 8x8 patches."""
    images = gc.data.natural_images(("astronaut", "coffee", "chelsea", "rocket"), gray=False)
    result = {}
    for count in (400, 1600):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            K.kmeans_kernels(images, count, 8, num_patches=100_000, generator=generator)
            times.append(time.perf_counter() - start)
        result[f"K={count}"] = statistics.median(times)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    results = {
        "machine": f"{os.cpu_count()} CPUs, torch {torch.__version__}",
        "gabor_likeness_8x8_natural_images": gabor_likeness(generator, out),
        "mnist5k_single_layer": mnist_pipeline(generator, out),
        "kmeans_seconds_100k_patches_8x8x3": kmeans_timing(generator),
    }
    path = out / "kernels.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(path)
    print("| kernels | Gabor-like (R² ≥ 0.6) | median R² |\n|---|---|---|")
    for name, r in results["gabor_likeness_8x8_natural_images"].items():
        print(f"| {name} | {r['gabor_like']:.0%} | {r['median_r2']:.2f} |")
    print("\n| MNIST 5k | test accuracy | seconds |\n|---|---|---|")
    for name, r in results["mnist5k_single_layer"].items():
        print(f"| {name} | {r['test_accuracy']:.1%} | {r['seconds']:.1f} |")
    print("\nk-means, 100,000 patches of 8x8x3:", results["kmeans_seconds_100k_patches_8x8x3"])


if __name__ == "__main__":
    main()
