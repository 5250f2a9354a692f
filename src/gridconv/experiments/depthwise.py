"""Sec. 9.8 (and Chollet 2017): a depthwise separable convolution filters each channel on
its own and then mixes channels with a 1x1 convolution. From 16 to 32 channels with 3x3
kernels that is 16*9 + 16*32 = 656 weights instead of 32*16*9 = 4608."""

from __future__ import annotations

import time
from typing import Any

import torch

from gridconv import models
from gridconv import nn as gnn
from gridconv.analysis import count_flops, count_parameters
from gridconv.experiments._base import Figures, Result, Settings, mnist, train_classifier

NAME = "depthwise"
TITLE = "Depthwise separable against standard convolution"
CLAIM = (
    "A depthwise separable layer needs the chapter's 656 weights where a standard one needs "
    "4608, with as many fewer FLOPs, and a network built with it loses little accuracy "
    "(under 1.5 points)."
)


def verdict(records: list[dict]) -> tuple[bool, str]:
    """Supported when the layer counts are 4608 and 656 and the separable network is within
    1.5 points of the standard one."""
    layers = {r["layer"]: r for r in records if r["measure"] == "layer"}
    nets = {r["network"]: r for r in records if r["measure"] == "network"}
    standard, separable = layers["standard 16->32 3x3"], layers["depthwise separable 16->32 3x3"]
    drop = nets["convnet"]["test_accuracy"] - nets["separable"]["test_accuracy"]
    measured = (
        f"16 -> 32 channels, 3x3: {standard['weights']:,} against {separable['weights']:,} "
        f"weights, {standard['flops']:,} against {separable['flops']:,} FLOPs on 32x32. "
        f"Networks: {nets['convnet']['parameters']:,} parameters, "
        f"{nets['convnet']['test_accuracy']:.1%}, {nets['convnet']['train_seconds']:.1f} s; "
        f"separable {nets['separable']['parameters']:,}, "
        f"{nets['separable']['test_accuracy']:.1%}, {nets['separable']['train_seconds']:.1f} s."
    )
    exact = standard["weights"] == 4608 and separable["weights"] == 656
    return exact and drop <= 0.015, measured


def _time_layer(layer: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    with torch.no_grad():
        layer(x)
        start = time.perf_counter()
        for _ in range(repeats):
            layer(x)
    return (time.perf_counter() - start) / repeats * 1e3


def run(settings: Settings) -> Result:
    records: list[dict[str, Any]] = []
    x = torch.randn(32, 16, 32, 32)
    for name, layer in (
        ("standard 16->32 3x3", gnn.Conv2d(16, 32, 3, padding="same", bias=False)),
        (
            "depthwise separable 16->32 3x3",
            gnn.DepthwiseSeparableConv2d(16, 32, 3, padding="same", bias=False),
        ),
    ):
        records.append(
            {
                "measure": "layer",
                "layer": name,
                "weights": count_parameters(layer),
                "flops": count_flops(layer, (1, 16, 32, 32)),
                "forward_ms_batch32": _time_layer(layer, x, 5 if settings.quick else 30),
            }
        )
    split = mnist(settings)
    epochs = 2 if settings.quick else 5
    for name in ("convnet", "separable"):
        torch.manual_seed(settings.seed)
        model = models.build(name, 1, 10, 28)
        reports, seconds = train_classifier(model, split, settings, epochs=epochs, offset=9)
        records.append(
            {
                "measure": "network",
                "network": name,
                "parameters": count_parameters(model),
                "flops": count_flops(model, (1, 1, 28, 28)),
                "test_accuracy": reports[-1].test_accuracy,
                "train_seconds": round(seconds, 2),
            }
        )
    figures = Figures(settings.out, NAME)
    figure = figures.new(9, 3.2)
    axes = figure.subplots(1, 3)
    layers = [r for r in records if r["measure"] == "layer"]
    nets = [r for r in records if r["measure"] == "network"]
    labels = ["standard", "separable"]
    for ax, key, title in (
        (axes[0], "weights", "weights of one layer"),
        (axes[1], "flops", "FLOPs of one layer (32x32)"),
    ):
        ax.bar(labels, [r[key] for r in layers], color=["#88a", "#c64"])
        ax.set_title(title)
        for i, r in enumerate(layers):
            ax.annotate(f"{r[key]:,}", (i, r[key]), ha="center", va="bottom")
    axes[2].bar(labels, [r["test_accuracy"] for r in nets], color=["#88a", "#c64"])
    axes[2].set_ylim(min(r["test_accuracy"] for r in nets) - 0.05, 1.0)
    axes[2].set_title("network test accuracy")
    figures.save(
        figure,
        "cost",
        "Weights and FLOPs of a 16 -> 32 channel 3x3 layer, "
        "standard and depthwise separable, and MNIST accuracy of networks "
        "built with each.",
    )
    return Result.judged(NAME, TITLE, CLAIM, verdict(records), records, figures)
