"""What every experiment shares: its settings, its result, and small helpers for training
and figures. Experiments use only gridconv's public API and return records and figures;
they never print or write anything but the figure files they are asked for."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from gridconv import data
from gridconv.train import BatchReport, EpochReport, fit


@dataclass(frozen=True)
class Settings:
    """How an experiment runs: ``quick`` shrinks it to seconds; ``seed`` makes it repeatable;
    figures go to ``out``; ``on_batch`` receives training progress."""

    out: Path
    quick: bool = False
    seed: int = 0
    on_batch: Callable[[BatchReport], None] | None = None

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1000 + offset)


@dataclass
class Result:
    """One experiment's outcome: the chapter's claim, what was measured and the verdict
    (computed from the records), its records (plain JSON values) and figure files."""

    name: str
    title: str
    claim: str
    measured: str = ""
    supported: bool | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    figures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Result:
        return cls(**value)

    @classmethod
    def judged(
        cls,
        name: str,
        title: str,
        claim: str,
        verdict: tuple[bool, str],
        records: list[dict[str, Any]],
        figures: Figures,
    ) -> Result:
        """A finished experiment's result: ``verdict`` is ``(supported, measured)``, what
        the experiment's ``verdict(records)`` returned."""
        supported, measured = verdict
        return cls(name, title, claim, measured, supported, records, figures.saved)


class Figures:
    """Saves matplotlib figures as PNGs in ``out`` and keeps their captions."""

    def __init__(self, out: Path, prefix: str) -> None:
        self.out, self.prefix = Path(out), prefix
        self.saved: list[dict[str, str]] = []

    def new(self, width: float = 6.0, height: float = 4.0) -> Any:
        from matplotlib.figure import Figure

        return Figure(figsize=(width, height), layout="constrained")

    def save(self, figure: Any, name: str, caption: str) -> None:
        filename = f"{self.prefix}-{name}.png"
        figure.savefig(self.out / filename, dpi=100)
        self.saved.append({"file": filename, "caption": caption})


def subset(dataset: TensorDataset, count: int | None) -> TensorDataset:
    """The first ``count`` examples (the embedded splits are already shuffled)."""
    if count is None or count >= len(dataset):
        return dataset
    images, labels = dataset.tensors
    return TensorDataset(images[:count], labels[:count])


def mnist(settings: Settings, full: int = 4000, quick: int = 1000) -> data.Split:
    """The embedded MNIST sample, smaller when quick (test set: 1,000 or 300)."""
    train, test = data.load("mnist5k")
    count = quick if settings.quick else full
    return data.Split(subset(train, count), subset(test, 300 if settings.quick else None))


def train_classifier(
    model: nn.Module,
    split: data.Split,
    settings: Settings,
    *,
    epochs: int,
    lr: float = 2e-3,
    batch_size: int = 64,
    offset: int = 0,
) -> tuple[list[EpochReport], float]:
    """Train with the library's loop; returns the epoch reports and the seconds it took."""
    start = time.perf_counter()
    reports = fit(
        model,
        split.train,
        split.test,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        generator=settings.generator(offset),
        on_batch=settings.on_batch,
    )
    return reports, time.perf_counter() - start
