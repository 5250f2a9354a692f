"""Sec. 9.6, fig. 9.14: from no prior to an infinitely strong one. One hidden layer of the
same shape (8 maps of 24 x 24 from 5 x 5 windows), connected four ways: fully connected,
locally connected (a kernel per position), tiled (2 x 2 kernels in turn) and convolutional
(one kernel per map)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gridconv import data
from gridconv import nn as gnn
from gridconv.analysis import count_parameters
from gridconv.experiments._base import (
    Figures,
    Result,
    Settings,
    mnist,
    subset,
    train_classifier,
)

NAME = "sharing"
TITLE = "Weight sharing: fully connected, locally connected, tiled, convolutional"
CLAIM = (
    "Sharing weights is a strong prior: the more a layer shares, the smaller its gap between "
    "training and test accuracy, and convolution comes close to the unshared layers' accuracy "
    "with hundreds to thousands of times fewer weights."
)
MAPS, KERNEL, SIDE = 8, 5, 24  # 28 - 5 + 1


class _Dense(nn.Module):
    """A fully connected layer whose output is shaped like the others' (8, 24, 24)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(28 * 28, MAPS * SIDE * SIDE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)).reshape(-1, MAPS, SIDE, SIDE)


def _hidden(kind: str) -> nn.Module:
    if kind == "fully connected":
        return _Dense()
    if kind == "locally connected":
        return gnn.LocallyConnected2d(1, MAPS, KERNEL, 28)
    if kind == "tiled 2x2":
        return gnn.TiledConv2d(1, MAPS, KERNEL, 2)
    return gnn.Conv2d(1, MAPS, KERNEL)


def _network(kind: str) -> nn.Sequential:
    return nn.Sequential(
        _hidden(kind),
        nn.ReLU(),
        nn.MaxPool2d(4),
        nn.Flatten(),
        nn.Linear(MAPS * (SIDE // 4) ** 2, 10),
    )


KINDS = ("fully connected", "locally connected", "tiled 2x2", "convolutional")


def verdict(records: list[dict]) -> tuple[bool, str]:
    """Supported when, at every training-set size, convolution's train-test gap is smaller
    than full connection's, and with the most data its test accuracy is within 3 points of
    the best, with at most 1/100 of the locally connected layer's weights."""
    sizes = sorted({r["train_examples"] for r in records})
    by = {(r["layer"], r["train_examples"]): r for r in records}

    def gap(layer: str, n: int) -> float:
        return by[layer, n]["train_accuracy"] - by[layer, n]["test_accuracy"]

    largest = sizes[-1]
    best = max(by[k, largest]["test_accuracy"] for k in KINDS)
    conv = by["convolutional", largest]
    ratio = by["locally connected", largest]["layer_parameters"] / conv["layer_parameters"]
    narrower = all(gap("convolutional", n) < gap("fully connected", n) for n in sizes)
    measured = "; ".join(
        f"{n:,} examples: train-test gap " + ", ".join(f"{k} {gap(k, n):.1%}" for k in KINDS)
        for n in sizes
    )
    measured += (
        f". With {largest:,}: convolution {conv['test_accuracy']:.1%} with "
        f"{conv['layer_parameters']:,} weights, best {best:.1%}."
    )
    return narrower and conv["test_accuracy"] >= best - 0.03 and ratio >= 100, measured


def run(settings: Settings) -> Result:
    split = mnist(settings)
    plan = ((300, 3), (1000, 2)) if settings.quick else ((500, 10), (4000, 4))
    records: list[dict[str, Any]] = []
    for count, epochs in plan:
        chosen = data.Split(subset(split.train, count), split.test)
        for kind in KINDS:
            torch.manual_seed(settings.seed)
            model = _network(kind)
            reports, seconds = train_classifier(model, chosen, settings, epochs=epochs)
            records.append(
                {
                    "layer": kind,
                    "train_examples": count,
                    "layer_parameters": count_parameters(model[0]),
                    "test_accuracy": reports[-1].test_accuracy,
                    "train_accuracy": reports[-1].train_accuracy,
                    "train_seconds": round(seconds, 2),
                }
            )
    figures = Figures(settings.out, NAME)
    figure = figures.new(10, 4)
    left, right = figure.subplots(1, 2)
    for count, _ in plan:
        rows = [r for r in records if r["train_examples"] == count]
        left.plot(
            [r["layer_parameters"] for r in rows],
            [r["test_accuracy"] for r in rows],
            "o-",
            label=f"{count:,} training examples",
        )
        right.plot(
            range(len(rows)),
            [r["train_accuracy"] - r["test_accuracy"] for r in rows],
            "o-",
            label=f"{count:,} training examples",
        )
    for r in records[-len(KINDS) :]:
        left.annotate(
            r["layer"],
            (r["layer_parameters"], r["test_accuracy"]),
            textcoords="offset points",
            xytext=(4, 6),
            fontsize=8,
        )
    left.set_xscale("log")
    left.set_xlabel("weights of the hidden layer (log); stronger prior to the left")
    left.set_ylabel("test accuracy")
    right.set_xticks(range(len(KINDS)), [k.replace(" ", "\n") for k in KINDS])
    right.set_ylabel("train accuracy - test accuracy")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    figures.save(
        figure,
        "spectrum",
        "One hidden layer of 8 maps of 24 x 24, connected four "
        "ways: test accuracy against weights, and the generalisation gap.",
    )
    return Result.judged(NAME, TITLE, CLAIM, verdict(records), records, figures)
