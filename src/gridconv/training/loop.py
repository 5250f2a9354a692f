"""The training loop for a model and data of your own: minibatches, one epoch at a time,
tested after each (:func:`fit`); :mod:`.runs` runs the same loop with checkpoints, files and
several processes.

Nothing here prints: progress goes to callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gridconv._checks import check_int, describe

__all__ = ["BatchReport", "EpochReport", "Running", "evaluate", "fit", "train_batches"]


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
    """One epoch's figures: its training loss and accuracy (running means over the epoch),
    the test accuracy after it, and its time."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float
    examples_per_second: float = 0.0
    checkpoint_seconds: float = 0.0


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 500) -> float:
    """Fraction of ``dataset`` that ``model`` classifies correctly.

    Shape:
        ``dataset`` yields ``(input, label)`` with labels ``()``; ``model`` maps
        ``(B, *input)`` to logits ``(B, num_classes)``.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = total = 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        logits = _logits(model(x.to(device)))
        correct += (logits.argmax(1).cpu() == y).sum().item()
        total += len(y)
    model.train(was_training)
    return correct / max(total, 1)


def _logits(output: Any) -> torch.Tensor:
    """A model's class logits: its output, or the output's ``.logits`` (a
    :class:`gridconv.nn.AttentionOutput`)."""
    logits: torch.Tensor = getattr(output, "logits", output)
    return logits


def _loss(model: nn.Module, output: object, target: torch.Tensor) -> torch.Tensor:
    """The training loss: the model's own ``loss(output, target)`` where it has one (the
    recurrent attention model's hybrid loss), else cross-entropy on the logits."""
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    own = getattr(core, "loss", None)
    if callable(own):
        return own(output, target)
    return nn.functional.cross_entropy(_logits(output), target)


@dataclass
class Running:
    """The sums behind an epoch's running loss and accuracy (kept in checkpoints)."""

    loss: float = 0.0
    correct: float = 0.0
    seen: float = 0.0
    seconds: float = 0.0


def train_batches(
    model: nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    *,
    epoch: int,
    total: int,
    first: int,
    running: Running,
    device: torch.device,
    on_batch: Callable[[BatchReport], None] | None,
    after_step: Callable[[int, Running], None] | None = None,
) -> None:
    """One pass over ``batches`` (batch numbers ``first + 1 ...`` of ``total``)."""
    model.train()
    start = time.perf_counter() - running.seconds
    for batch, (x, y) in enumerate(batches, first + 1):
        x, y = x.to(device), y.to(device)
        output = model(x)
        logits = _logits(output)
        loss = _loss(model, output, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        running.loss += loss.item() * len(y)
        running.correct += (logits.argmax(1) == y).sum().item()
        running.seen += len(y)
        running.seconds = time.perf_counter() - start
        if on_batch is not None:
            on_batch(
                BatchReport(
                    epoch,
                    batch,
                    total,
                    running.loss / running.seen,
                    running.correct / running.seen,
                    running.seen / running.seconds,
                )
            )
        if after_step is not None:
            after_step(batch, running)


def fit(
    model: nn.Module,
    train: Dataset | Callable[[int], Dataset],
    test: Dataset,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
) -> list[EpochReport]:
    """Train ``model`` in memory with Adam and cross-entropy; test after every epoch.

    :func:`gridconv.train.run` is the same loop with checkpoints, files and several
    processes.

    Args:
        model: maps a batch of inputs to class logits.
        train, test: datasets of ``(input, label)`` pairs; ``train`` may also be a function
            giving each epoch's (``1, 2, ...``) training set, such as new cluttered canvases
            of the same digits (:func:`gridconv.data.cluttered`).
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
    if not (isinstance(train, Dataset) or callable(train)):
        raise TypeError(
            f"`train` must be a Dataset or a function of the epoch giving one, "
            f"got {describe(train)}."
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    device = next(model.parameters()).device
    reports = []
    for epoch in range(1, epochs + 1):
        dataset = train if isinstance(train, Dataset) else train(epoch)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)
        running = Running()
        train_batches(
            model,
            loader,
            optimizer,
            None,
            epoch=epoch,
            total=len(loader),
            first=0,
            running=running,
            device=device,
            on_batch=on_batch,
        )
        reports.append(
            EpochReport(
                epoch,
                running.loss / running.seen,
                running.correct / running.seen,
                evaluate(model, test),
                running.seconds,
                running.seen / running.seconds,
            )
        )
    return reports
