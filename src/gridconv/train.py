"""The training loop: minibatch SGD-family training of a classifier, with progress reports.

Nothing here prints: progress goes to an ``on_batch`` callback, so the command line (or a
notebook) decides how to show it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gridconv._checks import check_int


@dataclass(frozen=True)
class BatchReport:
    """Running figures of the current epoch, after one more batch."""

    epoch: int
    batch: int
    batches: int
    loss: float
    accuracy: float
    examples_per_second: float


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 500) -> float:
    """Fraction of ``dataset`` that ``model`` classifies correctly.

    Shape:
        ``dataset`` yields ``(input, label)`` with labels ``()``; ``model`` maps
        ``(B, *input)`` to logits ``(B, num_classes)``.
    """
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    model.train(was_training)
    return correct / max(total, 1)


def fit(
    model: nn.Module,
    train: Dataset,
    test: Dataset,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
) -> list[EpochReport]:
    """Train ``model`` with Adam and cross-entropy; test after every epoch.

    Args:
        model: maps a batch of inputs to class logits.
        train, test: datasets of ``(input, label)`` pairs.
        epochs, batch_size, lr: the usual.
        generator: drives the shuffling, so a seeded generator gives a repeatable run.
        on_batch: called after every batch with the epoch's running loss and accuracy.

    Returns:
        One :class:`EpochReport` per epoch.

    Shape:
        ``model`` maps ``(B, *input)`` to logits ``(B, num_classes)``; labels are ``(B,)``.
    """
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    reports = []
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        loss_sum = correct = seen = 0.0
        for batch, (x, y) in enumerate(loader, 1):
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            if on_batch is not None:
                elapsed = time.perf_counter() - start
                on_batch(
                    BatchReport(
                        epoch, batch, len(loader), loss_sum / seen, correct / seen, seen / elapsed
                    )
                )
        reports.append(
            EpochReport(
                epoch,
                loss_sum / seen,
                correct / seen,
                evaluate(model, test),
                time.perf_counter() - start,
            )
        )
    return reports
