"""The figures of the kernels issue: how Gabor-like k-means kernels are (with and without
whitening, against random ones), how well fixed kernels from k-means, Gabor banks and
random draws classify MNIST in the single-layer pipeline of Coates, Lee & Ng (2011), and
how long k-means takes.

    python benchmarks/unsupervised_kernels.py [--out benchmarks/results]

The Gabor fit and the pipeline are the demo's ``unsupervised`` experiment; this script adds
the whitening and distribution ablations and the timing, writes ``kernels.json`` and the
pictures, and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

import gridconv as gc
from gridconv import experiments
from gridconv import kernels as K
from gridconv.checkpoint import save_json


def ablations(generator: torch.Generator) -> list[dict]:
    """Gabor-likeness without whitening, and of uniform random kernels."""
    images = gc.data.natural_images()
    raw = K.kmeans_kernels(images, 100, 8, num_patches=100_000, whiten=False, generator=generator)
    banks = {
        "k-means, not whitened": raw.kernels,
        "random (uniform)": K.random_kernels((100, 1, 8, 8), method="uniform", generator=generator),
    }
    records = []
    for name, bank in banks.items():
        r2 = K.fit_gabor(bank).r2
        records.append(
            {
                "measure": "gabor fit",
                "kernels": name,
                "count": 100,
                "gabor_like": (r2 >= 0.6).double().mean().item(),
                "median_r2": r2.median().item(),
            }
        )
    return records


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
    result = experiments.run_one("unsupervised", experiments.Settings(out))
    generator = torch.Generator().manual_seed(0)
    records = result.records + ablations(generator)
    results = {
        "machine": f"{os.cpu_count()} CPUs, torch {torch.__version__}",
        "verdict": {"supported": result.supported, "measured": result.measured},
        "records": records,
        "kmeans_seconds_100k_patches_8x8x3": kmeans_timing(generator),
    }
    save_json(results, out / "kernels.json")
    print("| kernels | Gabor-like (R² ≥ 0.6) | median R² |\n|---|---|---|")
    for r in records:
        if r["measure"] == "gabor fit":
            print(f"| {r['kernels']} | {r['gabor_like']:.0%} | {r['median_r2']:.2f} |")
    print("\n| MNIST 5k, single layer | test accuracy |\n|---|---|")
    for r in records:
        if r["measure"] == "pipeline":
            print(f"| {r['kernels']} | {r['test_accuracy']:.1%} |")
    print("\nk-means, 100,000 patches of 8x8x3:", results["kmeans_seconds_100k_patches_8x8x3"])


if __name__ == "__main__":
    main()
