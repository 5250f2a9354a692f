"""The inference suites of ``gridconv bench``: gridconv's methods against torch (at its
best: NCHW and channels_last), scipy, kornia and OpenCV, side by side, in one run.

Every case times all its candidates by the harness's protocol (:mod:`.harness`:
interleaved rounds, so that the machine's noise hits them alike) and reports medians and the
ratio of each to gridconv's ``auto``. Candidates slower than a few seconds are timed once.
Nothing here prints: the command line does.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gridconv.bench.harness import (
    CHANNELS_LAST,
    best_format,
    case_name,
    channels_last,
    checked_peers,
    time_interleaved,
)
from gridconv.functional._spec import TORCH_CONV, setup
from gridconv.functional.conv import auto_method_for, conv
from gridconv.functional.methods import direct
from gridconv.functional.methods.base import Workload
from gridconv.functional.separable import decompose, separable_conv
from gridconv.plan import planning

GRIDCONV_METHODS = ("auto", "auto (measured)", "direct", "fft", "separable")


@dataclass(frozen=True)
class Case:
    """One convolution to time: input ``(N, C, *size)``, ``C_out`` kernels of ``kernel``."""

    suite: str
    batch: int
    in_channels: int
    out_channels: int
    size: tuple[int, ...]
    kernel: int
    groups: int = 1
    gaussian: bool = False  # an exactly separable Gaussian instead of a random kernel

    @property
    def name(self) -> str:
        return case_name(self)

    def tensors(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(self.batch, self.in_channels, *self.size, generator=generator)
        d = len(self.size)
        shape = (self.out_channels, self.in_channels // self.groups, *([self.kernel] * d))
        if not self.gaussian:
            return x, torch.randn(shape, generator=generator) / self.kernel ** (d / 2)
        t = torch.linspace(-2.5, 2.5, self.kernel)
        g = torch.exp(-(t**2) / 2)
        g = g / g.sum()
        w = g
        for _ in range(d - 1):
            w = w.unsqueeze(-1) * g
        return x, w.expand(shape).contiguous()


def _suites(quick: bool) -> dict[str, list[Case]]:
    """The standard suites; ``quick`` shrinks every size so that a run takes seconds."""
    if quick:
        return {
            "large-kernel": [Case("large-kernel", 1, 1, 1, (64, 64), k) for k in (7, 15)],
            "multichannel": [Case("multichannel", 2, 4, 8, (16, 16), 3)],
            "1d": [Case("1d", 2, 2, 2, (1024,), 64)],
            "3d": [Case("3d", 1, 2, 2, (12, 12, 12), 3)],
            "separable": [Case("separable", 1, 3, 3, (64, 64), 15, 3, True)],
            "crossover": [Case("crossover", 1, 1, 1, (64, 64), k, 1, True) for k in (3, 9)],
        }
    return {
        "large-kernel": [
            Case("large-kernel", 1, 1, 1, (h, h), k)
            for h in (256, 512, 1024)
            for k in (7, 15, 31, 63)
        ],
        "multichannel": [
            Case("multichannel", 8, 16, 32, (64, 64), 3),
            Case("multichannel", 8, 32, 32, (128, 128), 7),
            Case("multichannel", 8, 32, 32, (128, 128), 15),
            Case("multichannel", 2, 8, 8, (512, 512), 31),
        ],
        "1d": [Case("1d", 4, 8, 8, (65536,), k) for k in (64, 256, 1024, 4096)],
        "3d": [Case("3d", 1, 4, 4, (64, 64, 64), k) for k in (3, 7, 15)],
        "separable": [Case("separable", 4, 3, 3, (512, 512), k, 3, True) for k in (15, 31, 63)],
        "crossover": [
            Case("crossover", 1, 1, 1, (256, 256), k, 1, True)
            for k in (3, 5, 7, 9, 11, 15, 21, 31, 45, 63)
        ],
    }


SUITES = tuple(_suites(False))


def cases(suites: tuple[str, ...] = SUITES, quick: bool = False) -> list[Case]:
    """The cases of the named suites, in order."""
    table = _suites(quick)
    return [case for name in suites for case in table[name]]


def _scipy_candidates(case: Case, x: torch.Tensor, w: torch.Tensor) -> dict[str, Callable]:
    """scipy.signal's fftconvolve and oaconvolve, broadcasting over batch and channels (the
    way a scipy user would vectorise), and correlate for single-channel inputs."""
    try:
        import scipy.signal as signal
    except ImportError:
        return {}
    d = len(case.size)
    xs, ws = x.numpy(), w.flip(tuple(range(2, 2 + d))).numpy()  # convolution = flipped kernel
    axes = tuple(range(-d, 0))
    group_in = case.in_channels // case.groups
    maps = case.batch * case.out_channels * group_in
    padded = math.prod(n + case.kernel for n in case.size)
    if maps * padded * 16 > 2**30:  # the broadcast spectra would not fit in 1 GiB
        return {}
    if case.groups == case.in_channels and case.out_channels == case.in_channels:
        a, b = xs, ws[:, 0][None]  # depthwise: (N, C, *n) with (1, C, *k)
        reduce = None
    else:  # (N, 1, C, *n) with (1, O, C, *k), then sum over C
        a, b = xs[:, None], ws[None]
        reduce = 2
    # scipy 1.17's mode="same" crops broadcast inputs wrongly: take "full" and centre it.
    # (torch's "same" pads (K - 1) // 2 before: output i is full-convolution index i + K // 2)
    start = case.kernel // 2
    centre = (..., *(slice(start, start + n) for n in case.size))
    out: dict[str, Callable] = {}
    for name in ("fftconvolve", "oaconvolve"):
        fn = getattr(signal, name)

        def run(fn: Callable = fn) -> object:
            y = fn(a, b, mode="full", axes=axes)[centre]
            return y.sum(reduce) if reduce is not None else y

        out[f"scipy {name}"] = run
    if maps == 1:
        x0, w0 = xs.reshape(case.size), w.numpy().reshape((case.kernel,) * d)
        out["scipy correlate"] = lambda: signal.correlate(x0, w0, mode="same", method="auto")
    return out


def _kornia_candidate(case: Case, x: torch.Tensor, w: torch.Tensor) -> dict[str, Callable]:
    """kornia's FFT convolution, when kornia is installed and has one, for what it
    computes: one 2-d kernel for every channel (``filter2d``'s convention), correlation
    with zero ("constant") borders."""
    shared = case.groups == case.in_channels == case.out_channels and bool((w == w[:1]).all())
    if len(case.size) != 2 or not shared:
        return {}
    try:
        filters = importlib.import_module("kornia.filters")
    except ImportError:
        return {}
    fn = getattr(filters, "fft_conv", None)
    if fn is None:
        return {}
    kernel = w[:1, 0]  # (1, kH, kW)
    return {"kornia fft_conv": lambda: fn(x, kernel, border_type="constant", padding="same")}


def _opencv_candidate(case: Case, x: torch.Tensor, w: torch.Tensor) -> dict[str, Callable]:
    """OpenCV's ``filter2D`` (a correlation; a DFT for kernels from 11 x 11), when
    opencv-python is installed, for what it computes: one 2-d kernel for every channel,
    zero borders; each image of the batch is one call on its ``(H, W, C)`` array."""
    shared = case.groups == case.in_channels == case.out_channels and bool((w == w[:1]).all())
    if len(case.size) != 2 or not shared or case.in_channels > 512:
        return {}
    try:
        cv2 = importlib.import_module("cv2")
    except ImportError:
        return {}
    images = [np.ascontiguousarray(im.permute(1, 2, 0).numpy()) for im in x]
    kernel = np.ascontiguousarray(w[0, 0].numpy())

    def run() -> np.ndarray:
        out = [cv2.filter2D(im, -1, kernel, borderType=cv2.BORDER_CONSTANT) for im in images]
        return np.stack([o.reshape(*o.shape[:2], -1) for o in out]).transpose(0, 3, 1, 2)

    return {"opencv filter2D": run}


@dataclass
class Record:
    """The timings of one case: median seconds per candidate, and auto's choice."""

    suite: str
    case: str
    seconds: dict[str, float] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    auto_method: str = ""
    measured_method: str = ""
    kernel: int = 0

    def ratios(self) -> dict[str, float]:
        """Each candidate's time over gridconv auto's (above 1: slower than auto)."""
        auto = self.seconds.get("auto")
        return {k: v / auto for k, v in self.seconds.items()} if auto else {}

    def best(self, side: str) -> tuple[float, str]:
        """``(seconds, format)`` of ``side`` (``"torch"`` or ``"auto"``) at its faster
        memory format."""
        column = next(c for c in self.seconds if c.startswith(side) and "[" not in c)
        return best_format(self.seconds, column)

    def torch_over_auto(self) -> float:
        """torch's time at its best over gridconv auto's at its best."""
        return self.best("torch")[0] / self.best("auto")[0]

    def regret(self, column: str = "auto") -> float:
        """``t(column) / min(t_direct, t_fft, t_separable)``."""
        best = min(self.seconds[m] for m in ("direct", "fft", "separable") if m in self.seconds)
        return self.seconds[column] / best

    def as_dict(self) -> dict:
        return {
            "suite": self.suite,
            "case": self.case,
            "kernel": self.kernel,
            "seconds": self.seconds,
            "runs": self.runs,
            "ratios_to_auto": self.ratios(),
            "auto_method": self.auto_method,
            "measured_method": self.measured_method,
            "regret": self.regret(),
            "regret_measured": self.regret("auto (measured)"),
            "torch_best": dict(zip(("seconds", "format"), self.best("torch"))),
            "auto_best": dict(zip(("seconds", "format"), self.best("auto"))),
            "torch_over_auto": self.torch_over_auto(),
        }


SKIP_DIRECT = 20.0  # seconds: gridconv's direct method is torch's kernel; time it once only
# Rounds for the fastest cases: a regret compares one median with the least of three, which
# the noise of a 0.7 ms call (3-5 % here) biases upwards unless the medians are tight.
MAX_ROUNDS = 100


def _direct_estimate(x: torch.Tensor, w: torch.Tensor, case: Case) -> float:
    xb, spec, _ = setup(
        x, w, None, stride=1, padding="same", dilation=1, groups=case.groups, padding_mode="zeros"
    )
    return direct.seconds(Workload(xb.shape[0], w.shape[0], spec, xb.device.type))


def _candidates(
    case: Case, x: torch.Tensor, w: torch.Tensor, peers: bool = True
) -> dict[str, Callable]:
    d = len(case.size)
    kw: dict[str, Any] = {"padding": "same", "groups": case.groups}
    found: dict[str, Callable[[], object]] = {
        "auto": lambda: conv(x, w, **kw),
        "direct": lambda: conv(x, w, method="direct", **kw),
        "fft": lambda: conv(x, w, method="fft", **kw),
    }
    if _direct_estimate(x, w, case) > SKIP_DIRECT:
        del found["direct"]  # torch's own column times the same kernel once: enough

    def measured() -> torch.Tensor:
        with planning("measure"):
            return conv(x, w, **kw)

    found["auto (measured)"] = measured
    if d > 1:
        kernel = decompose(w)
        if kernel.rank == 1:  # only exactly separable kernels: the others would be slower
            found["separable"] = lambda: separable_conv(x, kernel, **kw)
    torch_conv = f"torch conv{d}d"
    found[torch_conv] = lambda: TORCH_CONV[d](x, w, padding="same", groups=case.groups)
    x_last, w_last = channels_last(x), channels_last(w)
    if x_last is not None:  # torch at its best: given channels_last too; gridconv likewise
        w_last = w if w_last is None else w_last
        found["auto" + CHANNELS_LAST] = lambda: conv(x_last, w_last, **kw)
        found[torch_conv + CHANNELS_LAST] = lambda: TORCH_CONV[d](
            x_last, w_last, padding="same", groups=case.groups
        )
    if peers:
        reference = conv(x, w, method="fft", **kw)  # quick where torch's takes minutes
        others = {
            **_scipy_candidates(case, x, w),
            **_kornia_candidate(case, x, w),
            **_opencv_candidate(case, x, w),
        }
        found.update(checked_peers(others, reference))
    return found


def time_case(
    case: Case,
    rounds: int = 5,
    slow: float = 3.0,
    seed: int = 0,
    budget: float = 0.5,
    peers: bool = True,
) -> Record:
    """Median time of every candidate of ``case``, in at least ``rounds`` interleaved rounds
    (the protocol of :func:`gridconv.bench.harness.time_interleaved`), up to ``MAX_ROUNDS``
    for fast cases (candidates 50 times slower than the fastest sit the extra ones out).
    ``peers=False`` leaves out the other libraries (scipy, kornia): gridconv and torch only.
    """
    generator = torch.Generator().manual_seed(seed)
    x, w = case.tensors(generator)
    found = _candidates(case, x, w, peers)
    kw: dict[str, Any] = {"padding": "same", "groups": case.groups}
    with torch.no_grad():
        found["auto (measured)"]()  # plans: the measuring is not part of its time
        timings = time_interleaved(
            found, rounds=rounds, max_rounds=MAX_ROUNDS, budget=budget, seed=seed, slow=slow,
            near=50,
        )  # fmt: skip
        auto_method = auto_method_for(x, w, **kw)
        with planning("measure"):
            measured_method = auto_method_for(x, w, **kw)
    return Record(
        suite=case.suite,
        case=case.name,
        seconds=timings.seconds,
        runs=timings.runs,
        auto_method=auto_method,
        measured_method=measured_method,
        kernel=case.kernel,
    )


def run(
    suites: tuple[str, ...] = SUITES, *, quick: bool = False, rounds: int = 5
) -> Iterator[tuple[int, int, Record]]:
    """Time every case of ``suites``; yields ``(index, total, record)`` as each finishes."""
    todo = cases(suites, quick)
    for i, case in enumerate(todo):
        yield i + 1, len(todo), time_case(case, rounds=rounds)


def summary(records: list[Record]) -> dict[str, float]:
    """The issue's figures: worst and geometric-mean regret, auto against torch (each at its
    faster memory format) and scipy, over the standard suites (``crossover``, the sweep
    behind ``--plot``, is left out)."""

    def gmean(values: list[float]) -> float:
        return float(np.exp(np.mean(np.log(values)))) if values else float("nan")

    records = [r for r in records if r.suite != "crossover"]

    regrets = [r.regret() for r in records]
    measured = [r.regret("auto (measured)") for r in records]
    vs_torch = [r.torch_over_auto() for r in records]
    vs_scipy = [
        min(r.seconds[k] for k in ("scipy fftconvolve", "scipy oaconvolve")) / r.seconds["auto"]
        for r in records
        if r.suite in ("large-kernel", "1d") and r.kernel >= 15 and "scipy fftconvolve" in r.seconds
    ]
    return {
        "regret_max": max(regrets, default=float("nan")),
        "regret_gmean": gmean(regrets),
        "regret_measured_max": max(measured, default=float("nan")),
        "regret_measured_gmean": gmean(measured),
        "torch_over_auto_min": min(vs_torch, default=float("nan")),
        "best_scipy_over_auto_min": min(vs_scipy, default=float("nan")),
        "best_scipy_over_auto_gmean": gmean(vs_scipy),
    }


def plot_crossover(records: list[Record], path: str) -> None:
    """Time against kernel size for direct, FFT and separable (the ``crossover`` suite)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    rows = [r for r in records if r.suite == "crossover"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, style in (("direct", "o-"), ("fft", "s-"), ("separable", "^-"), ("auto", "k--")):
        points = [(r.kernel, r.seconds[method] * 1e3) for r in rows if method in r.seconds]
        if points:
            ax.plot(*zip(*points), style, label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    kernels = sorted({r.kernel for r in rows})
    ax.set_xticks(kernels, [str(k) for k in kernels])
    ax.xaxis.set_minor_locator(NullLocator())
    image = rows[0].case.split()[3] if rows else ""
    ax.set_xlabel(f"kernel size k (k x k Gaussian, {image} image)")
    ax.set_ylabel("time (ms, median)")
    ax.set_title("gridconv: where each method wins")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
