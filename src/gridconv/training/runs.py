"""Training runs: classifiers trained with minibatches, checkpoints that survive
interruption, and several processes or machines through torch.distributed (DDP). The loop
itself, and :func:`fit` for a model and data of your own, are in :mod:`.loop`; both are
importable from :mod:`gridconv.train`.

Nothing here prints: progress goes to callbacks, so the command line (or a notebook)
decides how to show it. Under ``torchrun`` every process runs :func:`run`; only rank 0
evaluates, writes files and reports progress.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from gridconv import checkpoint, data, models
from gridconv._atomic import write_json, write_text
from gridconv._checks import check_choice, check_int, describe
from gridconv._shapes import ceil_div
from gridconv.training.loop import BatchReport, EpochReport, Running, evaluate, train_batches

__all__ = [
    "CHECKPOINT",
    "OPTIMIZERS",
    "SCHEDULERS",
    "Processes",
    "TrainConfig",
    "build_model",
    "evaluate_checkpoint",
    "run",
]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("constant", "cosine")
CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; a resumed run must match its checkpoint's (but may
    ask for more epochs)."""

    model: str
    data: str
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    optimizer: str = "adam"
    scheduler: str = "constant"
    seed: int = 0
    checkpoint_every: int = 0
    image_size: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"`model` must be a model name, got {describe(self.model)}.")
        models.factory(self.model)
        data.check_spec(self.data)
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("checkpoint_every", self.checkpoint_every, minimum=0)
        check_int("seed", self.seed)
        check_int("image_size", self.image_size, minimum=4)
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) or not self.lr > 0:
            raise ValueError(f"`lr` must be a number > 0, got {describe(self.lr)}.")
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("scheduler", self.scheduler, SCHEDULERS)

    def check_resumable(self, saved: dict) -> None:
        """``saved`` (a checkpoint's config) describes the same run, epochs aside."""
        for f in fields(self):
            if f.name in ("epochs", "checkpoint_every"):
                continue
            ours, theirs = getattr(self, f.name), saved.get(f.name)
            if ours != theirs:
                what = "model" if f.name == "model" else f"`{f.name}`"
                raise ValueError(
                    f"the checkpoint is from a different run: its {what} is {theirs!r}, this "
                    f"run's is {ours!r}."
                )


@dataclass(frozen=True)
class Processes:
    """This process's place among ``torchrun``'s (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Processes:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0


def _optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=config.lr)


def _scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps: int):
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _shapes(split: data.Split) -> tuple[int, int, int]:
    images, labels = split.train.tensors
    if images.ndim != 4:
        raise ValueError(f"the data must be images (N, C, H, W), got {tuple(images.shape)}.")
    return images.shape[1], int(labels.max()) + 1, images.shape[2]


def build_model(config: dict) -> nn.Module:
    """The model a checkpoint's config describes, with fresh weights."""
    return models.build(
        config["model"], config["in_channels"], config["num_classes"], config["image_size"]
    )


def run(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    on_batch: Callable[[BatchReport], None] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> dict:
    """Train ``config.model`` on ``config.data``, writing everything to ``out``.

    Writes ``out/checkpoint.pt`` (atomically, at the end of every epoch and every
    ``checkpoint_every`` batches: model, optimizer, scheduler, RNG states, epoch and batch),
    ``out/metrics.jsonl`` (one line per epoch) and ``out/result.json``. With ``resume`` it
    continues from the checkpoint exactly where it stopped: on one CPU process the weights
    end bit-for-bit as in an uninterrupted run.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel (gloo on
    CPU, nccl on GPU); ``batch_size`` is the global batch, split evenly over processes, and
    the data order is the one-process order, so the weights match a one-process run up to
    rounding. Only rank 0 evaluates and writes.

    Returns:
        The contents of ``result.json``.
    """
    procs = Processes.from_env()
    out = Path(out)
    path = out / CHECKPOINT
    saved = None
    if resume:
        if not path.is_file():
            raise ValueError(f"`--resume`: there is no checkpoint in {out} ({CHECKPOINT}).")
        saved = checkpoint.load(path)
        config.check_resumable(saved["config"]["run"])
    if config.batch_size % procs.world:
        raise ValueError(
            f"`batch_size` (={config.batch_size}) must be divisible by the number of "
            f"processes (={procs.world}): it is the global batch."
        )
    split = data.load(config.data, image_size=config.image_size)
    in_channels, num_classes, image_size = _shapes(split)
    meta = {
        "run": asdict(config),
        "model": config.model,
        "in_channels": in_channels,
        "num_classes": num_classes,
        "image_size": image_size,
    }
    use_cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{procs.local_rank}" if use_cuda else "cpu")
    owned = procs.world > 1 and not torch.distributed.is_initialized()
    if owned:  # a group the caller made is the caller's to destroy
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    try:
        result = _run(
            config=config, meta=meta, split=split, out=out, saved=saved, procs=procs,
            device=device, on_batch=on_batch, on_epoch=on_epoch,
        )  # fmt: skip
    except BaseException:
        if owned:
            torch.distributed.destroy_process_group()
        raise
    if owned:
        # Every rank tears down only when all are done: rank 0 still writes result.json after
        # the last collective. A rank once died in gloo's teardown in CI (SIGABRT, "terminate
        # called without an active exception") after training had finished; we could not
        # make it happen again in 94 runs, so this narrows that window more than it proves
        # a cause.
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result


@dataclass
class _Run:
    """A run in progress: what its epochs read and update, in one place."""

    config: TrainConfig
    meta: dict
    out: Path
    procs: Processes
    model: nn.Module
    trained: nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampler: DistributedSampler
    batches: int  # per epoch, per process
    running: Running = field(default_factory=Running)
    history: list[dict] = field(default_factory=list)
    checkpoint_seconds: float = 0.0  # spent writing checkpoints since the last report

    @property
    def per_process(self) -> int:
        return self.config.batch_size // self.procs.world

    def save(self, at_epoch: int, step: int, sums: Running) -> None:
        """Write the checkpoint (rank 0 only), its time counted."""
        if not self.procs.main:
            return
        start = time.perf_counter()
        state = {
            "config": self.meta,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": checkpoint.rng_state(),
            "epoch": at_epoch,
            "step": step,
            "running": asdict(sums),
            "history": self.history,
        }
        checkpoint.save(state, self.out / CHECKPOINT)
        self.checkpoint_seconds += time.perf_counter() - start


def _start(
    *, config: TrainConfig, meta: dict, split: data.Split, out: Path, procs: Processes,
    device: torch.device,
) -> _Run:  # fmt: skip
    """A fresh run: the seeded model, its optimizer and schedule, the sampler."""
    torch.manual_seed(config.seed)
    model = build_model(meta).to(device)
    optimizer = _optimizer(config, model)
    sampler: DistributedSampler = DistributedSampler(
        split.train, num_replicas=procs.world, rank=procs.rank, shuffle=True, seed=config.seed
    )
    batches = ceil_div(len(sampler), config.batch_size // procs.world)
    scheduler = _scheduler(config, optimizer, batches * config.epochs)
    return _Run(config, meta, out, procs, model, model, optimizer, scheduler, sampler, batches)


def _restore(state: _Run, saved: dict) -> tuple[int, int]:
    """Load a checkpoint into ``state``; the epoch and the batch to go on from."""
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    checkpoint.set_rng_state(saved["rng"])
    state.running, state.history = Running(**saved["running"]), list(saved["history"])
    return saved["epoch"], saved["step"]


def _epoch(
    state: _Run, *, epoch: int, first: int, split: data.Split, device: torch.device,
    on_batch: Callable[[BatchReport], None] | None,
) -> None:  # fmt: skip
    """Train the batches of ``epoch`` (0-based) from batch ``first``, checkpointing every
    ``checkpoint_every`` batches."""
    config, per_process = state.config, state.per_process
    state.sampler.set_epoch(epoch)
    order = list(state.sampler)[first * per_process :]
    loader = DataLoader(Subset(split.train, order), batch_size=per_process)

    def every(step: int, sums: Running) -> None:
        every_n = config.checkpoint_every
        if every_n and step % every_n == 0 and step < state.batches:
            state.save(epoch, step, sums)

    train_batches(
        state.trained,
        loader,
        state.optimizer,
        state.scheduler,
        epoch=epoch + 1,
        total=state.batches,
        first=first,
        running=state.running,
        device=device,
        on_batch=on_batch if state.procs.main else None,
        after_step=every,
    )


def _end_epoch(
    state: _Run, *, epoch: int, split: data.Split, on_epoch: Callable[[EpochReport], None] | None
) -> None:
    """On rank 0: test, report, checkpoint and append to ``metrics.jsonl``; then a fresh
    running sum."""
    if state.procs.main:
        running = state.running
        report = EpochReport(
            epoch + 1,
            running.loss / running.seen,
            running.correct / running.seen,
            evaluate(state.model, split.test),
            running.seconds,
            running.seen * state.procs.world / running.seconds,
            state.checkpoint_seconds,
        )
        state.history.append(asdict(report))
        state.running, state.checkpoint_seconds = Running(), 0.0
        state.save(epoch + 1, 0, state.running)
        state.history[-1]["checkpoint_seconds"] += state.checkpoint_seconds
        state.checkpoint_seconds = 0.0
        lines = "".join(json.dumps(h) + "\n" for h in state.history)
        write_text(state.out / "metrics.jsonl", lines)
        if on_epoch is not None:
            on_epoch(report)
    state.running = Running()


def _run(
    *, config: TrainConfig, meta: dict, split: data.Split, out: Path, saved: dict | None,
    procs: Processes, device: torch.device, on_batch: Callable[[BatchReport], None] | None,
    on_epoch: Callable[[EpochReport], None] | None,
) -> dict:  # fmt: skip
    state = _start(config=config, meta=meta, split=split, out=out, procs=procs, device=device)
    first_epoch, done = _restore(state, saved) if saved is not None else (0, 0)
    if procs.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        state.trained = nn.parallel.DistributedDataParallel(state.model, device_ids=ids)
    if procs.main:
        out.mkdir(parents=True, exist_ok=True)
    for epoch in range(first_epoch, config.epochs):
        _epoch(state, epoch=epoch, first=done, split=split, device=device, on_batch=on_batch)
        done = 0
        _end_epoch(state, epoch=epoch, split=split, on_epoch=on_epoch)
        if procs.world > 1:
            torch.distributed.barrier()
    history = state.history
    result = {
        "model": config.model,
        "data": config.data,
        "epochs": config.epochs,
        "processes": procs.world,
        "test_accuracy": history[-1]["test_accuracy"] if history else None,
        "images_per_second": history[-1]["examples_per_second"] if history else None,
        "parameters": sum(p.numel() for p in state.model.parameters()),
        "history": history,
    }
    if procs.main:
        write_json(result, out / "result.json")
    return result


def evaluate_checkpoint(path: str | Path, spec: str) -> tuple[float, dict]:
    """Test accuracy of a checkpoint's model on the test split of ``spec``.

    Returns:
        The accuracy and the checkpoint's config.
    """
    state = checkpoint.load(Path(path))
    meta = state["config"]
    split = data.load(spec, image_size=meta["run"]["image_size"])
    images = split.test.tensors[0]
    if images.ndim != 4 or images.shape[1] != meta["in_channels"]:
        raise ValueError(
            f"the checkpoint's model {meta['model']!r} takes images with "
            f"{meta['in_channels']} channels, but {spec!r} has images of shape "
            f"{tuple(images.shape[1:])}."
        )
    model = build_model(meta)
    model.load_state_dict(state["model"])
    try:
        return evaluate(model, split.test), meta
    except RuntimeError as err:  # a size the model cannot take
        raise ValueError(
            f"the checkpoint's model {meta['model']!r} was trained on images of "
            f"{meta['image_size']}x{meta['image_size']} and cannot take {spec!r}'s "
            f"{tuple(images.shape[2:])}: {err}"
        ) from err
