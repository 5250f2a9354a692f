"""The ``gridconv`` command line: the only module that parses arguments or prints.

Exit codes: 0 on success, 2 on bad arguments (with a one-line reason), 1 on other errors.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TextIO

import torch

from gridconv import __version__, data, models
from gridconv.train import BatchReport, fit


class ProgressBar:
    """A one-line progress bar on a terminal; one line per finished epoch elsewhere (CI logs)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.live = self.stream.isatty()

    def __call__(self, r: BatchReport) -> None:
        if not self.live and r.batch != r.batches:
            return
        filled = round(self.width * r.batch / r.batches)
        bar = "#" * filled + "." * (self.width - filled)
        line = (
            f"epoch {r.epoch} [{bar}] {r.batch}/{r.batches}  loss {r.loss:.4f}  "
            f"acc {r.accuracy:.3f}  {r.examples_per_second:,.0f} img/s"
        )
        end = "\n" if r.batch == r.batches else ""
        self.stream.write(("\r" + line if self.live else line) + end)
        self.stream.flush()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _demo(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    print(f"gridconv {__version__} demo: a ConvNet of gridconv.nn.Conv2d layers on MNIST (5k)")
    train, test = data.load("mnist5k")
    if args.quick:
        train = torch.utils.data.Subset(train, range(1000))
    print(f"  {len(train)} training and {len(test)} test digits, {args.epochs} epochs")
    model = models.build("convnet", in_channels=1, num_classes=10, image_size=28)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    reports = fit(
        model,
        train,
        test,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        generator=generator,
        on_batch=ProgressBar(),
    )
    for r in reports:
        print(
            f"  epoch {r.epoch}: train loss {r.train_loss:.4f}, test accuracy {r.test_accuracy:.4f}"
        )
    print(f"test accuracy: {reports[-1].test_accuracy:.4f} ({time.perf_counter() - start:.1f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gridconv", description="Convolutional networks for any grid-like data."
    )
    parser.add_argument("--version", action="version", version=f"gridconv {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="the main job: train a ConvNet on embedded MNIST")
    demo.add_argument("--quick", action="store_true", help="a fast smoke run (1,000 digits)")
    demo.add_argument("--epochs", type=_positive_int, default=None, help="default 10 (quick: 3)")
    demo.add_argument("--batch-size", type=_positive_int, default=64)
    demo.add_argument("--lr", type=float, default=2e-3)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "epochs", 0) is None:
        args.epochs = 3 if args.quick else 10
    try:
        return args.run(args)
    except (ValueError, TypeError) as err:
        print(f"gridconv {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as err:
        print(f"gridconv {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
