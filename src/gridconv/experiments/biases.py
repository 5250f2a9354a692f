"""Sec. 9.5: with zero padding, units at the border see zeros where interior units see
pixels. An untied bias (one per position) can make up for it, and the chapter expects the
learned biases to differ at the border. The digits are shown inverted (dark on white), so
that the zero padding is not just more background: it draws a dark frame around each image
that only the border units see. Biases start at zero, so their map is what training wrote."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from gridconv import data
from gridconv import nn as gnn
from gridconv.experiments._base import Figures, Result, Settings, mnist, train_classifier

NAME = "biases"
TITLE = "Tied and untied biases with zero padding"
CLAIM = (
    "With zero ('same') padding, untied biases learn different values at the border, where "
    "the padding hides part of the kernel, than in the interior."
)


def _network(bias: str) -> nn.Sequential:
    return nn.Sequential(
        gnn.Conv2d(1, 16, 7, padding="same", bias=bias, input_size=28),
        nn.ReLU(),
        nn.MaxPool2d(2),
        gnn.Conv2d(16, 32, 5, padding="same", bias=bias, input_size=14),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )


def border_contrast(bias: torch.Tensor, width: int = 3) -> tuple[float, float]:
    """Mean |b - median(interior)| of the outer ``width`` rings and of the interior, over
    channels, for an untied bias.

    Shape:
        ``bias`` ``(C, H, W)``; two floats out.
    """
    mask = torch.zeros(bias.shape[1:], dtype=torch.bool)
    mask[:width], mask[-width:], mask[:, :width], mask[:, -width:] = True, True, True, True
    interior = bias[:, ~mask]
    centre = interior.median(dim=1, keepdim=True).values
    return (bias[:, mask] - centre).abs().mean().item(), (interior - centre).abs().mean().item()


def verdict(records: list[dict]) -> tuple[bool, str]:
    """Supported when the first layer's untied biases deviate at least 1.5 times as much at
    the border (outer 3 rings) as in the interior."""
    untied = next(r for r in records if r["bias"] == "untied")
    tied = next(r for r in records if r["bias"] == "tied")
    ratio = untied["border_deviation"] / max(untied["interior_deviation"], 1e-12)
    measured = (
        f"The untied biases of the first layer deviate {ratio:.1f}x as much at the border as "
        f"in the interior ({untied['border_deviation']:.3f} against "
        f"{untied['interior_deviation']:.3f}). Test accuracy: tied {tied['test_accuracy']:.1%}, "
        f"untied {untied['test_accuracy']:.1%}."
    )
    return ratio >= 1.5, measured


def _inverted(split: data.Split) -> data.Split:
    return data.Split(*(TensorDataset(1 - d.tensors[0], d.tensors[1]) for d in split))


def run(settings: Settings) -> Result:
    split = _inverted(mnist(settings))
    epochs = 2 if settings.quick else 5
    records: list[dict[str, Any]] = []
    untied_map = torch.empty(0)
    for bias in ("tied", "untied"):
        torch.manual_seed(settings.seed)
        model = _network(bias)
        with torch.no_grad():
            for layer in (model[0], model[3]):
                layer.get_parameter("bias").zero_()
        reports, seconds = train_classifier(model, split, settings, epochs=epochs, offset=8)
        record = {
            "bias": bias,
            "test_accuracy": reports[-1].test_accuracy,
            "train_seconds": round(seconds, 2),
        }
        if bias == "untied":
            untied_map = model[0].get_parameter("bias").detach()
            record["border_deviation"], record["interior_deviation"] = border_contrast(untied_map)
        records.append(record)
    figures = Figures(settings.out, NAME)
    figure = figures.new(9, 3.2)
    axes = figure.subplots(1, 3)
    mean = untied_map.mean(0)
    shown = axes[0].imshow(mean.numpy(), cmap="coolwarm")
    figure.colorbar(shown, ax=axes[0], shrink=0.8)
    axes[0].set_title("mean untied bias, layer 1")
    spread = (untied_map - untied_map.median()).abs().mean(0)
    shown = axes[1].imshow(spread.numpy(), cmap="magma")
    figure.colorbar(shown, ax=axes[1], shrink=0.8)
    axes[1].set_title("mean |deviation|, layer 1")
    for ax in axes[:2]:
        ax.set_axis_off()
    axes[2].bar(
        [r["bias"] for r in records], [r["test_accuracy"] for r in records], color=["#88a", "#c64"]
    )
    low = min(r["test_accuracy"] for r in records)
    axes[2].set_ylim(low - 0.05, 1.0)
    axes[2].set_ylabel("test accuracy")
    figures.save(
        figure,
        "map",
        "The first layer's learned untied biases (16 maps of 28x28 "
        "averaged; inverted digits, zero padding), their deviation from the "
        "interior's median, and accuracy.",
    )
    return Result.judged(NAME, TITLE, CLAIM, verdict(records), records, figures)
