"""The ``train`` benchmark suite: one forward + backward step of a convolution layer.

Each case times, side by side in interleaved rounds (the protocol of
:func:`gridconv.bench.harness.time_steps`), a step whose input and kernel both want gradients
with: gridconv's ``auto`` (the cost model), ``auto`` under ``planning("measure")``, its
``direct`` and ``fft`` methods, torch's own convolution, fft-conv-pytorch where it is
installed (an optional peer: ``pip install fft-conv-pytorch``), and, for long depthwise
convolutions (kernels as long as the sequence, as long-convolution sequence models use),
the recipe people write by hand: ``irfft(rfft(x, n=2L) * rfft(k, n=2L))``. Peak memory of
direct and FFT is measured in a fresh process per candidate.
"""

from __future__ import annotations

import functools
import importlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gridconv.bench.harness import (
    CHANNELS_LAST,
    Steps,
    best_format,
    case_name,
    channels_last,
    checked_peers,
    in_fresh_process,
    time_steps,
)
from gridconv.functional._spec import TORCH_CONV, conv_spec
from gridconv.functional.conv import auto_method_for, conv
from gridconv.functional.methods import direct
from gridconv.functional.methods.base import Workload
from gridconv.plan import planning

METHODS = ("direct", "fft")
COLUMNS = (
    "auto",
    "auto" + CHANNELS_LAST,
    "auto (measured)",
    *METHODS,
    "torch conv1d",
    "torch conv2d",
    "torch conv2d" + CHANNELS_LAST,
    "torch conv3d",
    "torch conv3d" + CHANNELS_LAST,
    "fft-conv-pytorch",
    "rfft recipe (2L)",
)


@dataclass(frozen=True)
class TrainCase:
    """A layer's step: input ``(N, C, *size)``, ``O`` kernels of ``kernel`` per dim,
    ``padding="same"``."""

    batch: int
    in_channels: int
    out_channels: int
    size: tuple[int, ...]
    kernel: int
    groups: int = 1

    @property
    def name(self) -> str:
        return case_name(self)

    @property
    def long_depthwise(self) -> bool:
        """A depthwise 1-D kernel as long as the sequence (less one): the recipe's case."""
        return (
            len(self.size) == 1
            and self.groups == self.in_channels == self.out_channels
            and self.kernel == self.size[0] - 1
        )


SUITE = (
    TrainCase(4, 16, 16, (128, 128), 9),
    TrainCase(8, 64, 64, (56, 56), 31, 64),
    TrainCase(4, 64, 64, (4096,), 4095, 64),
    TrainCase(2, 128, 128, (16384,), 16383, 128),
    TrainCase(8, 32, 32, (64, 64), 3),
    TrainCase(16, 16, 32, (32, 32), 5),
    TrainCase(4, 16, 16, (128, 128), 7),
    TrainCase(8, 64, 64, (56, 56), 7, 64),
    TrainCase(4, 16, 16, (128, 128), 15),
    TrainCase(4, 8, 8, (16384,), 64),
    TrainCase(1, 4, 4, (32, 32, 32), 7),
)
QUICK = (
    TrainCase(2, 3, 4, (24, 24), 9),
    TrainCase(2, 4, 4, (64,), 63, 4),
)


def _fft_conv_pytorch() -> Callable | None:
    try:
        return importlib.import_module("fft_conv_pytorch").fft_conv
    except ImportError:
        return None


def forwards(
    case: TrainCase, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Callable[[], Any]]]:
    """The input and kernel (both wanting gradients), an output gradient, and each
    candidate's forward pass (every one computes the same convolution)."""
    g = torch.Generator().manual_seed(seed)
    d = len(case.size)
    N, C, O, K, G = case.batch, case.in_channels, case.out_channels, case.kernel, case.groups
    x = torch.randn(N, C, *case.size, generator=g).requires_grad_()
    w = (torch.randn(O, C // G, *[K] * d, generator=g) / math.sqrt(K**d)).requires_grad_()
    grad = torch.randn(N, O, *case.size, generator=g)
    kw: dict[str, Any] = {"padding": "same", "groups": G}

    def measured() -> torch.Tensor:
        with planning("measure"):
            return conv(x, w, **kw)

    found: dict[str, Callable[[], Any]] = {
        "auto": lambda: conv(x, w, **kw),
        "auto (measured)": measured,
        **{m: functools.partial(conv, x, w, method=m, **kw) for m in METHODS},
        f"torch conv{d}d": lambda: TORCH_CONV[d](x, w, **kw),
    }
    if _direct_estimate(case) > SKIP_DIRECT:
        del found["direct"]  # torch's own column runs the same kernel (minutes here): once
    peer = _fft_conv_pytorch()
    if peer is not None:
        before = (K - 1) // 2  # "same": any extra cell after, as torch and gridconv put it
        pad = [before, K - 1 - before] * d

        def fft_conv_pytorch() -> torch.Tensor:
            with warnings.catch_warnings():  # its list indexing, deprecated in torch 2.9
                warnings.simplefilter("ignore", UserWarning)
                return peer(F.pad(x, pad), w, groups=G)

        with torch.no_grad():  # checked against gridconv's FFT (torch's may take minutes)
            reference = conv(x, w, method="fft", **kw)
        found.update(checked_peers({"fft-conv-pytorch": fft_conv_pytorch}, reference))
    if case.long_depthwise:
        L = case.size[0]
        shift = (K - 1) // 2  # "same": output i is full-convolution index i + (K - 1) // 2

        def recipe() -> torch.Tensor:
            n = 2 * L
            k = w[:, 0].flip(-1)  # correlation with w is convolution with k
            y = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(k, n=n), n=n)
            return y[..., shift : shift + L]

        found["rfft recipe (2L)"] = recipe
    return x, w, grad, found


SKIP_DIRECT = 20.0  # seconds (estimated): gridconv's direct method is torch's kernel


def _direct_estimate(case: TrainCase) -> float:
    d = len(case.size)
    shape = (case.out_channels, case.in_channels // case.groups, *[case.kernel] * d)
    spec = conv_spec(
        shape,
        case.in_channels,
        case.size,
        stride=1,
        padding="same",
        dilation=1,
        groups=case.groups,
        padding_mode="zeros",
    )
    return direct.seconds(Workload(case.batch, case.out_channels, spec, grads=(True, True)))


def steps(case: TrainCase, seed: int = 0) -> Steps:
    """A forward + backward step per candidate, and the tensors whose gradients it fills;
    torch's convolution and gridconv's auto also on channels_last copies of the input,
    kernel and output gradient (2-d and 3-d cases with more than one channel)."""
    x, w, grad, found = forwards(case, seed)
    out: Steps = {
        name: (functools.partial(_backward, fn, grad), [x, w]) for name, fn in found.items()
    }
    x_last, grad_last = channels_last(x), channels_last(grad)
    w_last = channels_last(w)  # None for a depthwise (O, 1, *k) kernel: one layout for both
    w_last = w_last if w_last is not None else w.detach().clone().requires_grad_()
    if x_last is not None and grad_last is not None:
        d = len(case.size)
        kw: dict[str, Any] = {"padding": "same", "groups": case.groups}
        for name, fn in (("auto", conv), (f"torch conv{d}d", TORCH_CONV[d])):
            forward = functools.partial(fn, x_last, w_last, **kw)
            out[name + CHANNELS_LAST] = (
                functools.partial(_backward, forward, grad_last),
                [x_last, w_last],
            )
    return out


def _backward(forward: Callable[[], torch.Tensor], grad: torch.Tensor) -> None:
    forward().backward(grad)


@dataclass
class TrainRecord:
    case: str
    seconds: dict[str, float]
    auto_method: str
    measured_method: str
    memory: dict[str, dict[str, int] | None]

    def regret(self, column: str = "auto") -> float:
        """``t(column) / min(t_direct, t_fft)``."""
        return self.seconds[column] / min(self.seconds[m] for m in METHODS if m in self.seconds)

    def best(self, side: str) -> tuple[float, str]:
        """``(seconds, format)`` of ``side`` (``"torch"`` or ``"auto"``) at its faster
        memory format."""
        column = next(c for c in self.seconds if c.startswith(side) and "[" not in c)
        return best_format(self.seconds, column)

    def as_dict(self) -> dict:
        return {
            "case": self.case,
            "seconds": self.seconds,
            "auto_method": self.auto_method,
            "measured_method": self.measured_method,
            "regret": self.regret(),
            "regret_measured": self.regret("auto (measured)"),
            "torch_best": dict(zip(("seconds", "format"), self.best("torch"))),
            "auto_best": dict(zip(("seconds", "format"), self.best("auto"))),
            "memory": self.memory,
        }


def chosen(case: TrainCase) -> tuple[str, str]:
    """auto's choice for the training step, by the cost model and by measuring."""
    x, w, _, _ = forwards(case)
    kw: dict[str, Any] = {"padding": "same", "groups": case.groups}
    with torch.enable_grad():
        estimated = auto_method_for(x, w, **kw)
        with planning("measure"):
            measured = auto_method_for(x, w, **kw)
    return estimated, measured


def measure_memory(case: TrainCase, name: str) -> dict[str, int] | None:
    """Peak bytes of one step above what is held before it, in a fresh process; None where
    ``/proc`` cannot tell (not Linux)."""
    return in_fresh_process(
        "from gridconv.bench.train import TrainCase, steps; "
        "from gridconv.bench.harness import step_peak; "
        f"result = step_peak(*steps(TrainCase{(*case.__dict__.values(),)!r})[{name!r}])"
    )


SLOW = 3.0  # seconds: a candidate slower than this (direct on long kernels) is timed once


def run(quick: bool = False, rounds: int = 7, memory: bool = True) -> list[TrainRecord]:
    """Times, auto's choices and (where FFT and direct both run) memory, per case."""
    records = []
    for case in QUICK if quick else SUITE:
        found = steps(case)
        found["auto (measured)"][0]()  # plans: the measuring is not part of its time
        seconds = time_steps(found, rounds, slow=SLOW)
        auto, measured = chosen(case)
        # (a method too slow to time twice is not run twice more for its memory)
        mem = (
            {m: measure_memory(case, m) for m in METHODS if seconds.get(m, SLOW) < SLOW}
            if memory
            else {}
        )
        records.append(TrainRecord(case.name, seconds, auto, measured, mem))
    return records


def summary(records: list[TrainRecord]) -> dict[str, float]:
    """auto's regret (worst, geometric mean), and its time over torch's at the worst (each
    at its faster memory format)."""

    def gmean(values: list[float]) -> float:
        return float(np.exp(np.mean(np.log(values)))) if values else float("nan")

    regrets = [r.regret() for r in records]
    measured = [r.regret("auto (measured)") for r in records]
    torch_ratio = [r.best("auto")[0] / r.best("torch")[0] for r in records]
    return {
        "regret_max": max(regrets, default=float("nan")),
        "regret_gmean": gmean(regrets),
        "regret_measured_max": max(measured, default=float("nan")),
        "regret_measured_gmean": gmean(measured),
        "auto_over_torch_max": max(torch_ratio, default=float("nan")),
    }
