"""The ``gridconv`` command line: the only module that parses arguments or prints.

Exit codes: 0 on success, 2 on bad arguments (with a one-line reason), 1 on other errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import torch

from gridconv import (
    __version__,
    data,
    experiments,
    kernels,
    models,
    plot,
    report,
)
from gridconv import train as training
from gridconv.allocator import keep_freed_memory
from gridconv.bench import conv as conv_bench
from gridconv.bench import local as local_bench
from gridconv.bench import models as models_bench
from gridconv.bench import tables
from gridconv.bench import train as train_bench
from gridconv.train import BatchReport


class ProgressBar:
    """A one-line progress bar on a terminal; one line per finished epoch elsewhere (CI logs)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.live = self.stream.isatty()

    def step(
        self, done: int, total: int, text: str, *, prefix: str = "", always: bool = True
    ) -> None:
        """Show ``done`` of ``total``; off a terminal, only lines marked ``always`` and the last."""
        if not self.live and not always and done != total:
            return
        filled = round(self.width * done / total)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"{prefix}[{bar}] {done}/{total}  {text}"
        end = "\n" if done == total or not self.live else ""
        self.stream.write(("\r\033[K" + line if self.live else line) + end)
        self.stream.flush()

    def __call__(self, r: BatchReport) -> None:
        text = f"loss {r.loss:.4f}  acc {r.accuracy:.3f}  {r.examples_per_second:,.0f} img/s"
        self.step(r.batch, r.batches, text, prefix=f"epoch {r.epoch} ", always=False)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _demo(args: argparse.Namespace) -> int:
    keep_freed_memory()
    only = None if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    names = experiments.select(only)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mode = "quick" if args.quick else "full"
    print(f"gridconv {__version__} demo ({mode}, seed {args.seed}): {len(names)} experiments")
    bar = ProgressBar()
    settings = experiments.Settings(out, quick=args.quick, seed=args.seed, on_batch=bar)

    def started(i: int, total: int, name: str) -> None:
        print(f"[{i}/{total}] {name}: {experiments.MODULES[name].TITLE}", flush=True)

    def done(i: int, total: int, result: experiments.Result) -> None:
        label, _ = report.verdict_label(result)
        detail = result.error if result.error else result.measured
        print(f"  {label} ({result.seconds:.1f} s): {detail}", flush=True)

    start = time.perf_counter()
    results = experiments.run_all(settings, names, on_start=started, on_done=done)
    meta = {
        "gridconv": __version__,
        "torch": torch.__version__,
        "mode": mode,
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "seconds": round(time.perf_counter() - start, 1),
    }
    page = report.write(results, out, meta)
    failed = [r.name for r in results if r.error is not None]
    supported = sum(bool(r.supported) for r in results if r.error is None)
    print(
        f"{supported} of {len(results)} claims supported, {len(failed)} failed; report: {page} "
        f"({meta['seconds']:.0f} s)"
    )
    return 1 if failed else 0


_SEPARATE = ("local", "train", "models")  # the suites that are not convolution suites


def _bench(args: argparse.Namespace) -> int:
    everything = (*conv_bench.SUITES, *_SEPARATE)
    suites = tuple(args.suite) if args.suite else everything[:-1]  # models: when asked
    unknown = [s for s in suites if s not in everything]
    if unknown:
        raise ValueError(f"unknown --suite {unknown[0]!r}; expected one of {', '.join(everything)}")
    kept = keep_freed_memory() if not args.default_malloc else False
    conv_suites = tuple(s for s in suites if s not in _SEPARATE)
    if args.plot and "crossover" not in conv_suites:
        conv_suites = (*conv_suites, "crossover")
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "kept": kept}
    result: dict = {"meta": meta}
    records = []
    bar = ProgressBar()
    start = time.perf_counter()
    for i, total, record in conv_bench.run(conv_suites, quick=args.quick, rounds=args.rounds):
        records.append(record)
        bar.step(i, total, f"{record.suite}: {record.case}  ({time.perf_counter() - start:.0f} s)")
    if records:
        result["records"] = [r.as_dict() for r in records]
        result["summary"] = conv_bench.summary(records)
    if "local" in suites:
        print("local suite: timing, then memory in a fresh process per candidate", file=sys.stderr)
        result["local"] = local_bench.run(quick=args.quick, rounds=args.rounds)
    if "train" in suites:
        print("train suite: forward + backward, then memory in a fresh process", file=sys.stderr)
        trained = train_bench.run(quick=args.quick, rounds=args.rounds)
        result["train"] = [r.as_dict() for r in trained]
        result["train_summary"] = train_bench.summary(trained)
    if "models" in suites:
        print("models suite: errors, train and inference, memory, layers", file=sys.stderr)
        modelled = models_bench.run(quick=args.quick, rounds=args.rounds)
        result["models"] = [r.as_dict() for r in modelled]
        result["models_summary"] = models_bench.summary(modelled)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        _print_bench(result, records)
    if args.plot:
        conv_bench.plot_crossover(records, args.plot)
        print(f"crossover plot written to {args.plot}", file=sys.stderr)
    return 0


def _print_bench(result: dict, records: list[conv_bench.Record]) -> None:
    meta = result["meta"]
    print(
        f"torch {meta['torch']}, {meta['threads']} threads, freed memory "
        f"{'kept' if meta['kept'] else 'returned to the OS'}; medians in ms; torch and gridconv "
        "each at its faster memory format (NCHW or channels_last, cl)"
    )
    if records:
        print("(ratio to gridconv auto); * = slow, timed once")
        print(tables.bench_table(records))
        print()
        for name, value in result["summary"].items():
            print(f"{name:<28} {value:.3f}")
    if "local" in result:
        print("\nforward + backward, (ratio to the convolution); memory: extra peak above the")
        print("inputs, and in brackets without the weight gradient (as large as the weight)")
        print(tables.local_table(result["local"]))
    if "train" in result:
        print("\nforward + backward (x and w want gradients), medians in ms, (ratio to auto);")
        print("auto chose: by the cost model (measured); peak: extra memory of one step")
        print(tables.train_table([train_bench.TrainRecord(**_fields(r)) for r in result["train"]]))
        for name, value in result["train_summary"].items():
            print(f"{name:<28} {value:.3f}")
    if "models" in result:
        print("\nwhole models converted by gc.nn.convert; errors in float64; times: torch at its")
        print("best / the converted model at its best, (torch / gridconv)")
        print(
            tables.models_table([models_bench.ModelRecord(**_fields(r)) for r in result["models"]])
        )
        for name, value in result["models_summary"].items():
            print(f"{name:<40} {value:.3f}")
        for r in result["models"]:
            print(f"\n{r['case']}: each convolution, auto's choice, modelled times")
            print(tables.layers_table(r["layers"]))


def _fields(record: dict) -> dict:
    """A record's ``as_dict()``, less the fields it derives."""
    derived = {"regret", "regret_measured", "torch_best", "auto_best", "torch_over_gridconv"}
    return {k: v for k, v in record.items() if k not in derived}


def _kernels(args: argparse.Namespace) -> int:
    images = None
    if args.source == "kmeans":
        if args.folder:
            images = data.read_images(args.folder, gray=not args.colour)
            where = f"the images in {args.folder}"
        else:
            names = args.image or list(data.NATURAL_IMAGES)
            images = data.natural_images(names, gray=not args.colour)
            where = f"scikit-image's {', '.join(names)}"
        print(f"learning {args.num_kernels} k-means kernels from {where}", file=sys.stderr)
    generator = torch.Generator().manual_seed(args.seed)
    bank = kernels.kernel_bank(
        args.source,
        images=images,
        num_kernels=args.num_kernels,
        size=args.size,
        num_patches=args.num_patches,
        generator=generator,
    )
    title = f"{args.source} kernels, {tuple(bank.shape)}"
    plot.kernel_grid(bank, title=title).savefig(args.output, dpi=100)
    print(f"{bank.shape[0]} {args.source} kernels of {tuple(bank.shape[1:])} -> {args.output}")
    return 0


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _train(args: argparse.Namespace) -> int:
    config = training.TrainConfig(
        model=args.model,
        data=args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        scheduler=args.scheduler,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        image_size=args.image_size,
    )
    procs = training.Processes.from_env()
    if procs.main:
        where = f" on {procs.world} processes" if procs.world > 1 else ""
        verb = "resuming" if args.resume else "training"
        print(f"gridconv train: {verb} {config.model} on {config.data}{where} -> {args.out}")

    def epoch_line(r: training.EpochReport) -> None:
        print(
            f"  epoch {r.epoch}: train loss {r.train_loss:.4f}, test accuracy "
            f"{r.test_accuracy:.4f}, {r.examples_per_second:,.0f} img/s"
        )

    result = training.run(
        config,
        args.out,
        resume=args.resume,
        on_batch=ProgressBar() if procs.main else None,
        on_epoch=epoch_line if procs.main else None,
    )
    if procs.main:
        print(f"test accuracy: {result['test_accuracy']:.4f}; result in {args.out}/result.json")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    accuracy, meta = training.evaluate_checkpoint(args.checkpoint, args.data)
    print(f"{meta['model']} on {args.data}: test accuracy {accuracy:.4f}")
    return 0


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="the main job: the chapter's claims, measured, as an HTML report"
    )
    demo.add_argument("--quick", action="store_true", help="tiny settings: a smoke run")
    demo.add_argument(
        "--only", metavar="NAME[,NAME]", help=f"some of {', '.join(experiments.NAMES)}"
    )
    demo.add_argument("--out", default="gridconv-report", help="the report's folder")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)


def _add_bench(commands: argparse._SubParsersAction) -> None:
    timing = commands.add_parser("bench", help="time every method against torch and scipy")
    timing.add_argument(
        "--suite",
        action="append",
        metavar="NAME",
        help=f"one of {', '.join((*conv_bench.SUITES, *_SEPARATE))}; repeat for several "
        "(default: all but models, which needs timm: pip install 'gridconv[models]')",
    )
    timing.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    timing.add_argument("--rounds", type=_positive_int, default=5, help="timed rounds per case")
    timing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    timing.add_argument(
        "--plot", metavar="PNG", help="also plot the direct/FFT/separable crossover"
    )
    timing.add_argument(
        "--default-malloc",
        action="store_true",
        help="let glibc return freed memory to the OS (by default the bench keeps it)",
    )
    timing.set_defaults(run=_bench)


def _add_train(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "train",
        help="train a model on a data set, with checkpoints; runs under torchrun for DDP",
    )
    run.add_argument(
        "--model",
        required=True,
        help=f"one of {', '.join(models.MODELS)}, or package.module:factory",
    )
    specs = f"{data.describe_specs()}, {', '.join(data.CANVASES)}"
    run.add_argument("--data", required=True, help=f"one of {specs}")
    run.add_argument("--epochs", type=_positive_int, default=10)
    run.add_argument("--batch-size", type=_positive_int, default=64, help="the global batch")
    run.add_argument("--lr", type=_positive_float, default=2e-3)
    run.add_argument("--optimizer", choices=training.OPTIMIZERS, default="adam")
    run.add_argument("--scheduler", choices=training.SCHEDULERS, default="constant")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="STEPS",
        help="also checkpoint every STEPS batches (always at the end of every epoch)",
    )
    run.add_argument("--image-size", type=_positive_int, default=32, help="for folder: data")
    run.add_argument("--out", default="gridconv-run", help="folder for checkpoints and metrics")
    run.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    run.set_defaults(run=_train)


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser("evaluate", help="test accuracy of a checkpoint")
    check.add_argument("--checkpoint", required=True)
    check.add_argument("--data", required=True, help=f"one of {data.describe_specs()}")
    check.set_defaults(run=_evaluate)


def _add_kernels(commands: argparse._SubParsersAction) -> None:
    bank = commands.add_parser("kernels", help="make or learn a kernel bank and save a picture")
    bank.add_argument("--source", choices=kernels.SOURCES, default="kmeans")
    bank.add_argument(
        "--image",
        action="append",
        choices=data.SAMPLE_IMAGES,
        help="k-means: learn from this scikit-image sample (repeat for several; default: "
        "all the bundled photographs and textures)",
    )
    bank.add_argument("--folder", help="k-means: learn from the images in this folder instead")
    bank.add_argument("--colour", action="store_true", help="k-means: keep RGB (default gray)")
    bank.add_argument("--num-kernels", type=_positive_int, default=64)
    bank.add_argument("--size", type=_positive_int, default=None, help="cells per side")
    bank.add_argument("--num-patches", type=_positive_int, default=100_000)
    bank.add_argument("--seed", type=int, default=0)
    bank.add_argument("-o", "--output", default="kernels.png", help="the picture (PNG)")
    bank.set_defaults(run=_kernels)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand (each added by its own ``_add_...``)."""
    parser = argparse.ArgumentParser(
        prog="gridconv", description="Convolutional networks for any grid-like data."
    )
    parser.add_argument("--version", action="version", version=f"gridconv {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_demo, _add_bench, _add_train, _add_evaluate, _add_kernels):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError) as err:
        print(f"gridconv {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError, ImportError) as err:
        print(f"gridconv {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
