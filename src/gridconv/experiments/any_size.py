"""Sec. 9.7 (He et al. 2014): pooling regions that scale with the input give a fixed-size
output for any input size, so one network takes images of any size."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from gridconv import models
from gridconv.experiments._base import Figures, Result, Settings, mnist, train_classifier
from gridconv.train import evaluate

NAME = "any_size"
TITLE = "One network, inputs of any size (spatial pyramid pooling)"
CLAIM = (
    "A network ending in spatial pyramid pooling, trained on 28x28 digits, classifies "
    "digits placed on larger canvases (36x36, 44x44) without any change, well above chance."
)
SIZES = (28, 36, 44)


def verdict(records: list[dict]) -> tuple[bool, str]:
    """Supported when digits in the middle of every canvas size are classified with at least
    50 % accuracy (chance: 10 %)."""
    parts = [
        f"{r['canvas']}x{r['canvas']} {r['test_accuracy']:.1%} / "
        f"{r['test_accuracy_random_place']:.1%}"
        for r in records
    ]
    measured = "Test accuracy by canvas size, digit in the middle / anywhere: "
    measured += ", ".join(parts) + "."
    return all(r["test_accuracy"] >= 0.5 for r in records), measured


def on_canvas(
    images: torch.Tensor, size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Each 28x28 image pasted on a blank ``size`` x ``size`` canvas: in the middle, or at a
    random place when a ``generator`` is given.

    Shape:
        ``(N, 1, 28, 28) -> (N, 1, size, size)``
    """
    canvas = torch.zeros(len(images), 1, size, size)
    room = size - 28
    if generator is None:
        where = torch.full((len(images), 2), room // 2)
    else:
        where = torch.randint(0, room + 1, (len(images), 2), generator=generator)
    for i, (r, c) in enumerate(where.tolist()):
        canvas[i, :, r : r + 28, c : c + 28] = images[i]
    return canvas


def run(settings: Settings) -> Result:
    split = mnist(settings)
    torch.manual_seed(settings.seed)
    model = models.build("pyramid", 1, 10, 28)
    epochs = 2 if settings.quick else 5
    train_classifier(model, split, settings, epochs=epochs, offset=10)
    images, labels = split.test.tensors
    records, examples = [], []
    for size in SIZES:
        centred = on_canvas(images, size)
        anywhere = on_canvas(images, size, settings.generator(size))
        records.append(
            {
                "canvas": size,
                "test_accuracy": evaluate(model, TensorDataset(centred, labels)),
                "test_accuracy_random_place": evaluate(model, TensorDataset(anywhere, labels)),
                "features": 64 * 21,
            }
        )
        examples.append(anywhere[0, 0])
    figures = Figures(settings.out, NAME)
    figure = figures.new(10, 3)
    axes = figure.subplots(1, len(SIZES) + 1, width_ratios=[*(1,) * len(SIZES), 2])
    for ax, example, r in zip(axes, examples, records):
        ax.imshow(example.numpy(), cmap="gray")
        ax.set_title(f"{r['canvas']}x{r['canvas']}")
        ax.set_axis_off()
    positions = torch.arange(len(records)).float()
    axes[-1].bar(positions - 0.2, [r["test_accuracy"] for r in records], 0.4, label="middle")
    axes[-1].bar(
        positions + 0.2, [r["test_accuracy_random_place"] for r in records], 0.4, label="anywhere"
    )
    axes[-1].set_xticks(positions.tolist(), [str(r["canvas"]) for r in records])
    axes[-1].set_ylim(0, 1)
    axes[-1].axhline(0.1, color="gray", linestyle=":", label="chance")
    axes[-1].set_xlabel("canvas size")
    axes[-1].set_ylabel("test accuracy")
    axes[-1].legend()
    figures.save(
        figure,
        "sizes",
        "A pyramid-pooling network trained on 28x28 digits, "
        "tested on the same digits in the middle of, or anywhere on, larger "
        "canvases.",
    )
    return Result.judged(NAME, TITLE, CLAIM, verdict(records), records, figures)
