"""Training runs: classifiers trained with minibatches, checkpoints that survive
interruption, and several processes or machines through torch.distributed (DDP). The loop
itself, and :func:`fit` for a model and data of your own, are in :mod:`gridconv.fitting`
(and importable from here).

Nothing here prints: progress goes to callbacks, so the command line (or a notebook)
decides how to show it. Under ``torchrun`` every process runs :func:`run`; only rank 0
evaluates, writes files and reports progress.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from gridconv import checkpoint, data, models
from gridconv._checks import check_choice, check_int, describe
from gridconv.fitting import BatchReport, EpochReport, Running, evaluate, fit, train_batches

__all__ = [
    "CHECKPOINT",
    "OPTIMIZERS",
    "SCHEDULERS",
    "BatchReport",
    "EpochReport",
    "Processes",
    "TrainConfig",
    "build_model",
    "evaluate",
    "evaluate_checkpoint",
    "fit",
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
        result = _run(config, meta, split, out, saved, procs, device, on_batch, on_epoch)
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


def _run(config, meta, split, out, saved, procs, device, on_batch, on_epoch) -> dict:
    torch.manual_seed(config.seed)
    model = build_model(meta).to(device)
    optimizer = _optimizer(config, model)
    per_process = config.batch_size // procs.world
    sampler: DistributedSampler = DistributedSampler(
        split.train, num_replicas=procs.world, rank=procs.rank, shuffle=True, seed=config.seed
    )
    batches = -(-len(sampler) // per_process)
    scheduler = _scheduler(config, optimizer, batches * config.epochs)
    first_epoch, done, running, history = 0, 0, Running(), []
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        checkpoint.set_rng_state(saved["rng"])
        first_epoch, done = saved["epoch"], saved["step"]
        running, history = Running(**saved["running"]), list(saved["history"])
    trained = model
    if procs.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        trained = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if procs.main:
        out.mkdir(parents=True, exist_ok=True)
    spent = [0.0]

    def save(at_epoch: int, step: int, sums: Running) -> None:
        if not procs.main:
            return
        start = time.perf_counter()
        state = {
            "config": meta,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": checkpoint.rng_state(),
            "epoch": at_epoch,
            "step": step,
            "running": asdict(sums),
            "history": history,
        }
        checkpoint.save(state, out / CHECKPOINT)
        spent[0] += time.perf_counter() - start

    for epoch in range(first_epoch, config.epochs):
        sampler.set_epoch(epoch)
        order = list(sampler)[done * per_process :]
        loader = DataLoader(Subset(split.train, order), batch_size=per_process)

        def every(step: int, sums: Running, epoch: int = epoch) -> None:
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < batches:
                save(epoch, step, sums)

        train_batches(
            trained,
            loader,
            optimizer,
            scheduler,
            epoch=epoch + 1,
            total=batches,
            first=done,
            running=running,
            device=device,
            on_batch=on_batch if procs.main else None,
            after_step=every,
        )
        done = 0
        if procs.main:
            report = EpochReport(
                epoch + 1,
                running.loss / running.seen,
                running.correct / running.seen,
                evaluate(model, split.test),
                running.seconds,
                running.seen * procs.world / running.seconds,
                spent[0],
            )
            history.append(asdict(report))
            running, spent[0] = Running(), 0.0
            save(epoch + 1, 0, running)
            history[-1]["checkpoint_seconds"] += spent[0]
            spent[0] = 0.0
            lines = "".join(json.dumps(h) + "\n" for h in history)
            checkpoint.write_atomic(out / "metrics.jsonl", lambda f, t=lines: f.write(t.encode()))
            if on_epoch is not None:
                on_epoch(report)
        running = Running()
        if procs.world > 1:
            torch.distributed.barrier()
    result = {
        "model": config.model,
        "data": config.data,
        "epochs": config.epochs,
        "processes": procs.world,
        "test_accuracy": history[-1]["test_accuracy"] if history else None,
        "images_per_second": history[-1]["examples_per_second"] if history else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history,
    }
    if procs.main:
        checkpoint.save_json(result, out / "result.json")
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
