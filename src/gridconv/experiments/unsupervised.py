"""Sec. 9.9-9.10: kernels made without labels. k-means on whitened patches of natural
images learns Gabor-like kernels (random kernels are not), and fixed kernels from k-means,
Gabor banks or random draws, in the single-layer pipeline of Coates, Lee & Ng (2011),
classify MNIST nearly as well as kernels learned with labels."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from gridconv import data, kernels
from gridconv import nn as gnn
from gridconv.experiments._base import Figures, Result, Settings, mnist, train_classifier
from gridconv.plot import kernel_grid

NAME = "unsupervised"
TITLE = "Kernels without labels: k-means, Gabor, random, and supervised"
CLAIM = (
    "Kernels learned by k-means on natural images are mostly Gabor-like (random ones are "
    "not), and fixed kernels made without labels classify digits nearly as well (within 2 "
    "points) as first-layer kernels learned with labels."
)


def verdict(records: list[dict]) -> tuple[bool, str]:
    """Supported when at least half the k-means kernels are Gabor-like, under a tenth of the
    random ones are, and the best label-free source is within 2 points of the supervised."""
    like = {r["kernels"]: r["gabor_like"] for r in records if r["measure"] == "gabor fit"}
    accuracy = {r["kernels"]: r["test_accuracy"] for r in records if r["measure"] == "pipeline"}
    supervised = accuracy.pop("supervised")
    best = max(accuracy, key=accuracy.__getitem__)
    measured = (
        f"Gabor-like (R² >= 0.6): {like['k-means']:.0%} of the k-means kernels, "
        f"{like['random']:.0%} of the random ones. Single-layer accuracy on MNIST: "
        + ", ".join(f"{k} {v:.1%}" for k, v in accuracy.items())
        + f", supervised kernels {supervised:.1%}."
    )
    close = accuracy[best] >= supervised - 0.02
    return like["k-means"] >= 0.5 and like["random"] < 0.1 and close, measured


def gabor_likeness(settings: Settings, figures: Figures) -> list[dict]:
    """The share of kernels a fitted Gabor explains with R^2 >= 0.6: k-means and random."""
    generator = settings.generator(5)
    count = 32 if settings.quick else 100
    patches = 10_000 if settings.quick else 100_000
    learned = kernels.kmeans_kernels(
        data.natural_images(), count, 8, num_patches=patches, generator=generator
    )
    banks = {
        "k-means": learned.kernels,
        "random": kernels.random_kernels((count, 1, 8, 8), generator=generator),
    }
    picture = kernel_grid(learned.kernels, title="k-means, 8x8 whitened natural-image patches")
    figures.save(picture, "kmeans", "k-means centroids learned from scikit-image's images.")
    records, fits = [], {}
    for name, bank in banks.items():
        fits[name] = kernels.fit_gabor(bank)
        r2 = fits[name].r2
        records.append(
            {
                "measure": "gabor fit",
                "kernels": name,
                "count": count,
                "gabor_like": (r2 >= 0.6).double().mean().item(),
                "median_r2": r2.median().item(),
            }
        )
    figure = figures.new(10, 3.4)
    left, right = figure.subfigures(1, 2, width_ratios=[1, 1.2])
    histogram = left.subplots()
    for name, fit in fits.items():
        histogram.hist(
            fit.r2.clamp(-0.2, 1).numpy(), bins=24, range=(-0.2, 1), alpha=0.6, label=name
        )
    histogram.axvline(0.6, color="black", linestyle=":", label="R² = 0.6")
    histogram.set_xlabel("R² of the best-fitting Gabor function")
    histogram.set_ylabel("kernels")
    histogram.legend()
    pairs = torch.stack(
        [torch.stack([banks["k-means"][i, 0], fits["k-means"].fitted[i, 0]]) for i in range(6)]
    )
    tiles = right.subplots(2, 6)
    for i in range(6):
        for j in range(2):
            ax = tiles[j, i]
            tile = pairs[i, j]
            ax.imshow(tile.numpy(), cmap="gray", vmin=-tile.abs().max(), vmax=tile.abs().max())
            ax.set_axis_off()
            if i == 0:
                ax.set_title("kernel" if j == 0 else "Gabor fit", fontsize=9, loc="left")
    figures.save(
        figure,
        "gabor-fit",
        "Left: how well a Gabor function fits each kernel. "
        "Right: six k-means kernels (top) and their fitted Gabor functions "
        "(bottom).",
    )
    return records


def _supervised_kernels(
    split: data.Split, count: int, size: int, settings: Settings
) -> torch.Tensor:
    """First-layer kernels of a small network trained with labels."""
    torch.manual_seed(settings.seed)
    first = gnn.Conv2d(1, count, size)
    model = nn.Sequential(
        first,
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(2),
        nn.Flatten(),
        nn.Linear(count * 4, 10),
    )
    train_classifier(model, split, settings, epochs=1 if settings.quick else 4, offset=6)
    return first.weight.detach()


def pipeline(settings: Settings, figures: Figures) -> list[dict]:
    """Single-layer features (Coates et al.) + logistic regression, per kernel source."""
    split = mnist(settings)
    (x_train, y_train), (x_test, y_test) = split.train.tensors, split.test.tensors
    size, count = 7, 32 if settings.quick else 96
    generator = settings.generator(7)
    patches = 10_000 if settings.quick else 100_000
    learned = kernels.kmeans_kernels(x_train, count, size, num_patches=patches, generator=generator)
    wavelengths = (2.5, 3.5, 5.0, 7.0, 10.0, 14.0)[: 2 if settings.quick else 6]
    banks = {
        "k-means": learned.kernels,
        "Gabor": kernels.gabor_bank(
            size, orientations=8, frequencies=[2 * math.pi / v for v in wavelengths]
        ),
        "random": kernels.random_kernels((count, 1, size, size), generator=generator),
        "supervised": _supervised_kernels(split, count, size, settings),
    }
    figure = figures.new(10, 2.8)
    for i, (name, bank) in enumerate(banks.items()):
        ax = figure.add_subplot(1, 4, i + 1)
        grid = bank[:16, 0]
        grid = grid / grid.flatten(1).abs().amax(1).clamp_min(1e-12)[:, None, None]
        tiles = torch.cat([torch.cat(list(grid[r * 4 : r * 4 + 4]), dim=1) for r in range(4)])
        ax.imshow(tiles.numpy(), cmap="gray", vmin=-1, vmax=1)
        ax.set_title(name)
        ax.set_axis_off()
    figures.save(figure, "sources", "Sixteen 7x7 kernels of each source used on MNIST.")
    records: list[dict[str, Any]] = []
    for name, bank in banks.items():
        features = [
            kernels.single_layer_features(x, bank, whitening=learned.whitening)
            for x in (x_train, x_test)
        ]
        accuracy = kernels.linear_probe(features[0], y_train, features[1], y_test)
        records.append(
            {"measure": "pipeline", "kernels": name, "count": len(bank), "test_accuracy": accuracy}
        )
    return records


def run(settings: Settings) -> Result:
    figures = Figures(settings.out, NAME)
    records = gabor_likeness(settings, figures) + pipeline(settings, figures)
    return Result.judged(NAME, TITLE, CLAIM, verdict(records), records, figures)
