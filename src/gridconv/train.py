"""``gridconv.train``: training classifiers, under one public name.

The loop (:func:`fit`, :func:`evaluate`, the reports) lives in
:mod:`gridconv.training.loop`; the runs behind ``gridconv train`` (:class:`TrainConfig`,
:func:`run`, checkpoints, resuming, DDP) in :mod:`gridconv.training.runs`. Nothing here
prints: progress goes to callbacks, so the command line (or a notebook) decides how to show
it. Under ``torchrun`` every process runs :func:`run`; only rank 0 evaluates, writes files
and reports progress.
"""

from gridconv.training.loop import BatchReport, EpochReport, evaluate, fit
from gridconv.training.runs import (
    CHECKPOINT,
    OPTIMIZERS,
    SCHEDULERS,
    Processes,
    TrainConfig,
    build_model,
    evaluate_checkpoint,
    run,
)

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
