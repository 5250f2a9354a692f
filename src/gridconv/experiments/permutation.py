"""Sec. 9.4: convolution is a prior (local, shared weights) that an MLP does not have.
Shuffling the pixels by one fixed permutation keeps every bit of information, so an MLP
learns as well as before, while a ConvNet's prior no longer fits the data."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import TensorDataset

from gridconv import data, models
from gridconv.experiments._base import Figures, Result, Settings, mnist, train_classifier

NAME = "permutation"
TITLE = "Permuted pixels: the ConvNet's prior against the MLP's none"
CLAIM = (
    "An MLP learns as well from pixels under one fixed permutation as from natural images; "
    "a ConvNet, whose prior expects local structure, loses accuracy."
)


def _points(change: float) -> str:
    """A change of accuracy in percentage points, without a "-0.0"."""
    return f"{round(change * 100, 1) + 0.0:+.1f} points"


def verdict(records: list[dict]) -> tuple[bool, str]:
    """Supported when the MLP's drop stays within 1.5 points and the ConvNet's exceeds the
    MLP's by at least 2 points."""
    acc = {(r["model"], r["pixels"]): r["test_accuracy"] for r in records}
    mlp_drop = acc["mlp", "natural"] - acc["mlp", "permuted"]
    conv_drop = acc["convnet", "natural"] - acc["convnet", "permuted"]
    measured = (
        f"Permuting the pixels changes the MLP's test accuracy by {_points(-mlp_drop)} "
        f"({acc['mlp', 'natural']:.1%} -> {acc['mlp', 'permuted']:.1%}) and the ConvNet's by "
        f"{_points(-conv_drop)} ({acc['convnet', 'natural']:.1%} -> "
        f"{acc['convnet', 'permuted']:.1%})."
    )
    return abs(mlp_drop) <= 0.015 and conv_drop >= mlp_drop + 0.02, measured


def _permuted(dataset: TensorDataset, order: torch.Tensor) -> TensorDataset:
    images, labels = dataset.tensors
    flat = images.flatten(1)[:, order]
    return TensorDataset(flat.reshape(images.shape), labels)


def run(settings: Settings) -> Result:
    split = mnist(settings)
    order = torch.randperm(28 * 28, generator=settings.generator(1))
    permuted = data.Split(_permuted(split.train, order), _permuted(split.test, order))
    epochs = 2 if settings.quick else 5
    records: list[dict[str, Any]] = []
    for model_name in ("mlp", "convnet"):
        for pixels, chosen in (("natural", split), ("permuted", permuted)):
            torch.manual_seed(settings.seed)
            model = models.build(model_name, 1, 10, 28)
            reports, seconds = train_classifier(model, chosen, settings, epochs=epochs)
            records.append(
                {
                    "model": model_name,
                    "pixels": pixels,
                    "test_accuracy": reports[-1].test_accuracy,
                    "train_seconds": round(seconds, 2),
                }
            )
    figures = Figures(settings.out, NAME)
    figure = figures.new(8, 3)
    axes = figure.subplots(1, 3, width_ratios=[1, 1, 2])
    image = split.test.tensors[0][0, 0]
    shuffled = image.flatten()[order].reshape(28, 28)
    for ax, shown, title in ((axes[0], image, "natural"), (axes[1], shuffled, "permuted")):
        ax.imshow(shown.numpy(), cmap="gray")
        ax.set_title(title)
        ax.set_axis_off()
    labels = [f"{r['model']}\n{r['pixels']}" for r in records]
    accuracy = [r["test_accuracy"] for r in records]
    axes[2].bar(labels, accuracy, color=["#88a", "#88a", "#c64", "#c64"])
    axes[2].set_ylim(min(accuracy) - 0.05, 1.0)
    axes[2].set_ylabel("test accuracy")
    figures.save(
        figure,
        "accuracy",
        "One test digit before and after the fixed permutation; "
        "test accuracy of each model on each.",
    )
    return Result.judged(NAME, TITLE, CLAIM, verdict(records), records, figures)
