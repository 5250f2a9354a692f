"""Sec. 9.3: pooling makes a representation approximately invariant to small translations,
at the price of precise position. Two measurements: how much feature maps move when the
input shifts, with and without pooling; and a task that needs position (where is the digit
on a larger canvas?), which heavy pooling makes harder to fit."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gridconv import nn as gnn
from gridconv.analysis import translation_sensitivity
from gridconv.experiments._base import Figures, Result, Settings, mnist

NAME = "invariance"
TITLE = "Pooling buys invariance to small shifts and costs precise position"
CLAIM = (
    "Max pooling makes features nearly invariant to shifts of a pixel or two; a task that "
    "needs exact position is fitted worse after heavy pooling."
)
CANVAS = 40


def verdict(records: list[dict]) -> tuple[bool, str]:
    """Supported when 4x4 pooling moves less than no pooling at shifts 1 and 2, and the
    position regressor with 8x8 pooling has a larger training error than without."""
    curves = {r["pooling"]: r["change"] for r in records if r["measure"] == "sensitivity"}
    errors = {r["pooling"]: r["train_rmse"] for r in records if r["measure"] == "position"}
    invariant = all(curves[4][s] < curves[1][s] for s in (1, 2))
    worse = errors[8] > errors[1]
    measured = (
        f"Relative change of the features under a 1- and 2-pixel shift: "
        f"{curves[1][1]:.2f} and {curves[1][2]:.2f} without pooling, "
        f"{curves[2][1]:.2f} and {curves[2][2]:.2f} with 2x2, "
        f"{curves[4][1]:.2f} and {curves[4][2]:.2f} with 4x4. Training error of the digit's "
        f"position on a {CANVAS}x{CANVAS} canvas: {errors[1]:.2f} px without pooling, "
        f"{errors[8]:.2f} px with 8x8 pooling."
    )
    return invariant and worse, measured


def _canvas(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each digit pasted at a random place on a blank canvas; the targets are its centre."""
    n = len(images)
    room = CANVAS - 28
    where = torch.randint(0, room + 1, (n, 2), generator=generator)
    canvas = torch.zeros(n, 1, CANVAS, CANVAS)
    for i, (r, c) in enumerate(where.tolist()):
        canvas[i, :, r : r + 28, c : c + 28] = images[i]
    return canvas, where.float() + 13.5


def _regressor(pool: int) -> nn.Sequential:
    size = CANVAS // pool
    return nn.Sequential(
        gnn.Conv2d(1, 16, 5, padding="same"),
        nn.ReLU(),
        nn.MaxPool2d(pool) if pool > 1 else nn.Identity(),
        gnn.Conv2d(16, 8, 3, padding="same"),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * size * size, 2),
    )


def run(settings: Settings) -> Result:
    split = mnist(settings)
    images = split.test.tensors[0][: 100 if settings.quick else 500]
    records: list[dict[str, Any]] = []
    torch.manual_seed(settings.seed)
    features = nn.Sequential(gnn.Conv2d(1, 8, 3, padding="same"), nn.ReLU())
    shifts = 4
    for pool in (1, 2, 4):
        model = features if pool == 1 else nn.Sequential(features, gnn.Pool2d(pool, padding="same"))
        change = translation_sensitivity(model, images, shifts, dims=(2, 3))
        records.append({"measure": "sensitivity", "pooling": pool, "change": change.tolist()})
    canvas, targets = _canvas(split.train.tensors[0], settings.generator(3))
    epochs = 2 if settings.quick else 6
    for pool in (1, 8):
        torch.manual_seed(settings.seed)
        model = _regressor(pool)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        order = settings.generator(4)
        for _ in range(epochs):
            for batch in torch.randperm(len(canvas), generator=order).split(64):
                loss = nn.functional.mse_loss(model(canvas[batch]), targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            rmse = (model(canvas) - targets).square().sum(1).mean().sqrt().item()
        records.append({"measure": "position", "pooling": pool, "train_rmse": rmse})
    figures = Figures(settings.out, NAME)
    figure = figures.new(10, 3.8)
    left, middle, right = figure.subplots(1, 3, width_ratios=[2, 1, 1])
    for r in records[:3]:
        label = "no pooling" if r["pooling"] == 1 else f"{r['pooling']}x{r['pooling']} max pooling"
        left.plot(range(shifts + 1), r["change"], "o-", label=label)
    left.set_xticks(range(shifts + 1))
    left.set_xlabel("shift (pixels, down and right)")
    left.set_ylabel("relative change of the features")
    left.grid(alpha=0.3)
    left.legend()
    middle.imshow(canvas[0, 0].numpy(), cmap="gray")
    middle.set_title(f"where is the digit? ({CANVAS}x{CANVAS})")
    middle.set_axis_off()
    errors = [r for r in records if r["measure"] == "position"]
    right.bar(
        [f"pool {r['pooling']}" if r["pooling"] > 1 else "no pool" for r in errors],
        [r["train_rmse"] for r in errors],
        color=["#88a", "#c64"],
    )
    right.set_ylabel("training error of the position (px)")
    figures.save(
        figure,
        "sensitivity",
        "Left: how much 8 convolutional feature maps change "
        "as MNIST digits shift, with and without pooling. Right: fitting a digit's "
        "position, without pooling and after 8x8 max pooling.",
    )
    return Result.judged(NAME, TITLE, CLAIM, verdict(records), records, figures)
