"""Sec. 9.10 (Mnih et al. 2014, "Recurrent Models of Visual Attention"): the eye sees a small
patch sharply and the rest coarsely, and moves. A recurrent attention model (RAM) that looks
through a few foveated glimpses, against a ConvNet that reads the whole canvas, on digits
placed at random on 60 x 60 canvases with clutter; and the same RAM with random glimpses."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from gridconv import data
from gridconv import nn as gnn
from gridconv.analysis import count_flops, count_parameters
from gridconv.experiments._base import Figures, Result, Settings, subset
from gridconv.functional import glimpse
from gridconv.train import evaluate, fit

NAME = "foveation"
TITLE = "Foveated glimpses against a ConvNet over the whole canvas"
CLAIM = (
    "A recurrent attention model that looks through a few small foveated glimpses "
    "recognises digits on 60x60 cluttered canvases about as well as a ConvNet that reads the "
    "whole canvas (test error at most twice the ConvNet's), at a fraction of its "
    "multiply-adds (under a quarter); and where it looks matters: learned glimpses beat "
    "random ones by at least 5 points."
)
CANVAS = 60
# The retina of gridconv's default RAM: 6 glimpses of 8 x 8 cells at 3 scales (8, 16 and 32
# pixels wide). 12 x 12 glimpses (as in the paper) reached 77 % against 75 % here, reading
# 2,592 values per canvas instead of 1,152.
RETINA: dict[str, Any] = {"glimpse_size": 8, "scales": 3, "glimpses": 6}


def verdict(records: list[dict]) -> tuple[bool, str]:
    """Supported when RAM's test error is at most twice the ConvNet's, its FLOPs under a
    quarter of the ConvNet's, and its accuracy at least 5 points above random glimpses'."""
    by = {r["model"]: r for r in records}
    ram, random, conv = by["RAM"], by["RAM, random glimpses"], by["ConvNet"]
    measured = "; ".join(
        f"{r['model']}: {r['test_accuracy']:.1%} test accuracy "
        f"({r['epochs']} epochs, {r['train_seconds']:.0f} s), {r['flops']:,} FLOPs and "
        f"{r['values_read']:,} values read per image, {r['pixels_reached']:,.0f} of "
        f"{CANVAS * CANVAS:,} canvas pixels reaching it"
        for r in (ram, random, conv)
    )
    ram_error, conv_error = 1 - ram["test_accuracy"], 1 - conv["test_accuracy"]
    measured += (
        f". RAM's error is {ram_error / max(conv_error, 1e-9):.1f}x the ConvNet's, at "
        f"{ram['flops'] / conv['flops']:.1%} of its FLOPs."
    )
    supported = (
        ram_error <= 2 * conv_error
        and ram["flops"] < conv["flops"] / 4
        and ram["test_accuracy"] >= random["test_accuracy"] + 0.05
    )
    return supported, measured


def convnet() -> nn.Module:
    """Three "same" convolutions (5x5, 5x5, 3x3; 16, 32, 64 channels) with ReLU, 2x2 max
    pooling after the first two, global max pooling and a linear classifier: it reads every
    pixel of the canvas, wherever the digit is.

    Shape:
        ``(N, 1, H, W) -> (N, 10)``
    """
    return nn.Sequential(
        gnn.Conv2d(1, 16, 5, padding="same"), nn.ReLU(), gnn.Pool2d(2),
        gnn.Conv2d(16, 32, 5, padding="same"), nn.ReLU(), gnn.Pool2d(2),
        gnn.Conv2d(32, 64, 3, padding="same"), nn.ReLU(),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip


def _reached(model: nn.Module, canvases: torch.Tensor) -> float:
    """Mean number of canvas pixels that reach the model: for RAM, those with a gradient from
    its glimpses at the locations it chose (eval mode); for the ConvNet, all of them."""
    if not isinstance(model, gnn.RecurrentAttention):
        return float(canvases[0].numel())
    with torch.no_grad():
        locations = model(canvases).locations  # (N, glimpses, 2)
    x = canvases.clone().requires_grad_()
    sensor = model.sensor
    for step in range(locations.shape[1]):
        seen = glimpse(x, locations[:, step], sensor.size, scales=sensor.scales)
        seen.sum().backward()
    grad = torch.zeros_like(x) if x.grad is None else x.grad
    return (grad != 0).flatten(1).sum(1).float().mean().item()


def _values_read(model: nn.Module) -> int:
    """Numbers the model reads per canvas: the retina's outputs, or every pixel."""
    if isinstance(model, gnn.RecurrentAttention):
        return RETINA["glimpses"] * RETINA["scales"] * RETINA["glimpse_size"] ** 2
    return CANVAS * CANVAS


def run(settings: Settings) -> Result:
    digits = data.load("mnist5k", image_size=28, gray=True)
    images, labels = subset(digits.train, 1000 if settings.quick else None).tensors
    test = subset(data.load("cluttered:mnist5k").test, 300 if settings.quick else None)
    canvases = settings.generator(17)

    def fresh(epoch: int) -> TensorDataset:  # new canvases of the same digits every epoch
        x, y, _ = data.cluttered(images, labels, canvas=CANVAS, generator=canvases)
        return TensorDataset(x, y)

    ram_epochs = 4 if settings.quick else 100
    candidates = (
        ("RAM", lambda: gnn.RecurrentAttention(1, 10, **RETINA), ram_epochs),
        (
            "RAM, random glimpses",
            lambda: gnn.RecurrentAttention(1, 10, policy="random", **RETINA),
            ram_epochs,
        ),
        ("ConvNet", convnet, 2 if settings.quick else 10),
    )
    records: list[dict[str, Any]] = []
    trained: dict[str, Any] = {}
    for i, (name, build, epochs) in enumerate(candidates):
        torch.manual_seed(settings.seed + i)
        model = build()
        start = time.perf_counter()
        reports = fit(
            model,
            fresh,
            test,
            epochs=epochs,
            lr=1e-3,
            generator=settings.generator(18 + i),
            on_batch=settings.on_batch,
        )
        seconds = time.perf_counter() - start
        model.eval()
        records.append(
            {
                "model": name,
                "epochs": epochs,
                "train_seconds": round(seconds, 1),
                "test_accuracy": evaluate(model, test),
                "parameters": count_parameters(model),
                "flops": count_flops(model, (1, 1, CANVAS, CANVAS)),
                "values_read": _values_read(model),
                "pixels_reached": _reached(model, test.tensors[0][:100]),
                "accuracy_by_epoch": [round(r.test_accuracy, 4) for r in reports],
            }
        )
        trained[name] = model
    figures = Figures(settings.out, NAME)
    _paths_figure(figures, trained["RAM"], test.tensors[0][:8], test.tensors[1][:8])
    _curves_figure(figures, records)
    return Result.judged(NAME, TITLE, CLAIM, verdict(records), records, figures)


def _paths_figure(
    figures: Figures, model: gnn.RecurrentAttention, canvases: torch.Tensor, labels: torch.Tensor
) -> None:
    with torch.no_grad():
        out = model(canvases)
    rows = (out.locations + 1) / 2 * (CANVAS - 1)  # (N, glimpses, 2): (row, column) in pixels
    figure = figures.new(9, 4.8)
    axes = figure.subplots(2, 4)
    size = RETINA["glimpse_size"]
    for ax, canvas, path, label, guess in zip(
        axes.flat, canvases, rows, labels.tolist(), out.logits.argmax(1).tolist()
    ):
        ax.imshow(canvas[0].numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.plot(path[:, 1].numpy(), path[:, 0].numpy(), "-", color="#c64", linewidth=1)
        for step, (r, c) in enumerate(path.tolist()):
            ax.add_patch(
                _square(c, r, size, "#c64" if step else "#36a")  # the first glimpse in blue
            )
        ax.set_title(f"digit {label}, read as {guess}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    figures.save(
        figure,
        "paths",
        f"Where RAM looked on test canvases: its {RETINA['glimpses']} glimpse centres in "
        f"order (the first, at the centre, in blue), each square the sharpest "
        f"{size}x{size} patch of its retina (the others are 2x and 4x as wide, coarser).",
    )


def _square(column: float, row: float, size: int, color: str):
    from matplotlib.patches import Rectangle

    half = size / 2
    return Rectangle((column - half, row - half), size, size, fill=False, color=color, lw=1)


def _curves_figure(figures: Figures, records: list[dict]) -> None:
    figure = figures.new(6, 3.4)
    ax = figure.subplots()
    for r, color in zip(records, ("#c64", "#888", "#36a")):
        epochs = range(1, len(r["accuracy_by_epoch"]) + 1)
        ax.plot(epochs, r["accuracy_by_epoch"], color=color, label=r["model"])
    ax.set_xlabel("epoch (new canvases of the same digits each epoch)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.legend()
    figures.save(
        figure,
        "curves",
        "Test accuracy on 60x60 cluttered canvases during training: RAM with learned and "
        "with random glimpses, and the ConvNet over the whole canvas.",
    )
