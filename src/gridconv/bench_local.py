"""The ``local`` benchmark suite: unshared and tiled convolution against a convolution.

Each case times forward + backward of: torch's convolution with the same N, C, O and K
(the same multiply-adds as the locally connected layer), ``local_conv``, the unfold +
einsum recipe people write by hand, and ``tiled_conv`` with 2-per-dim tiles. Peak memory
is measured in a fresh process per candidate (``/proc/self/status``, glibc told to return
every block to the system so that each allocation shows), as the extra above the inputs,
with and without the weight gradient (which is as large as the weight itself).
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gridconv.functional.local import local_conv
from gridconv.functional.methods.planner import WARM_BELOW
from gridconv.functional.tiled import tiled_conv

_TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CANDIDATES = ("conv", "local", "unfold+einsum", "tiled 2")


@dataclass(frozen=True)
class LocalCase:
    batch: int
    in_channels: int
    out_channels: int
    size: tuple[int, ...]
    kernel: int

    @property
    def name(self) -> str:
        dims = "x".join(map(str, self.size))
        return f"N{self.batch} C{self.in_channels} O{self.out_channels} {dims} K{self.kernel}"


SUITE = (
    LocalCase(32, 16, 32, (28, 28), 5),
    LocalCase(64, 32, 64, (16, 16), 3),
    LocalCase(16, 3, 64, (32, 32), 5),
    LocalCase(32, 16, 32, (256,), 7),
    LocalCase(16, 16, 32, (12, 12, 12), 3),
)
QUICK = (LocalCase(4, 3, 4, (10, 10), 3), LocalCase(2, 2, 3, (12,), 3))


def _steps(case: LocalCase) -> dict[str, tuple[Callable[[], None], list[torch.Tensor]]]:
    """A forward + backward step per candidate, and the tensors whose gradients it fills."""
    g = torch.Generator().manual_seed(0)
    d = len(case.size)
    N, C, O, K = case.batch, case.in_channels, case.out_channels, case.kernel
    out = tuple(n - K + 1 for n in case.size)
    x = torch.randn(N, C, *case.size, generator=g).requires_grad_()
    w = torch.randn(O, C, *([K] * d), generator=g).requires_grad_()
    w_local = torch.randn(*out, O, C, *([K] * d), generator=g).requires_grad_()
    w_tiled = torch.randn(*([2] * d), O, C, *([K] * d), generator=g).requires_grad_()
    w_flat = w_local.detach().reshape(math.prod(out), O, -1).requires_grad_()

    def recipe() -> None:
        cols = x
        for i in range(d):
            cols = cols.unfold(2 + i, K, 1)  # (N, C, *out, *k): the whole im2col, kept
        cols = cols.reshape(N, C, math.prod(out), K**d).transpose(1, 2).reshape(N, -1, C * K**d)
        torch.einsum("npj,poj->nop", cols, w_flat).sum().backward()

    return {
        "conv": (lambda: _TORCH_CONV[d](x, w).sum().backward(), [x, w]),
        "local": (lambda: local_conv(x, w_local).sum().backward(), [x, w_local]),
        "unfold+einsum": (recipe, [x, w_flat]),
        "tiled 2": (lambda: tiled_conv(x, w_tiled).sum().backward(), [x, w_tiled]),
    }


MAX_ROUNDS = 25


def time_case(
    case: LocalCase, rounds: int = 7, seed: int = 0, budget: float = 0.25
) -> dict[str, float]:
    """Median seconds of a forward + backward step per candidate, in interleaved rounds.

    The protocol of :func:`gridconv.bench.time_case`: each round runs the candidates in a
    fresh random order, and a candidate faster than ``WARM_BELOW`` is called twice in a row
    and timed on the second call, so that none pays for the caches another left (measured:
    ``tiled_conv`` timed right after the unfold + einsum recipe, as a fixed order had it,
    took 5-9 % longer than timed after itself). Cases get more rounds, up to ``MAX_ROUNDS``,
    until the quickest candidate has had about ``budget`` seconds.
    """
    return time_steps(_steps(case), rounds, seed, budget)


Steps = dict[str, tuple[Callable[[], None], list[torch.Tensor]]]


def time_steps(
    steps: Steps, rounds: int = 7, seed: int = 0, budget: float = 0.25, slow: float = math.inf
) -> dict[str, float]:
    """:func:`time_case`'s protocol on any ``{name: (step, tensors with gradients)}``; a
    candidate whose warm-up call takes over ``slow`` seconds is not run again (that call
    is its time)."""
    first = {}
    for name, (step, params) in steps.items():  # warm-up
        start = time.perf_counter()
        step()
        first[name] = time.perf_counter() - start
        for p in params:
            p.grad = None
    warm = {name: t < WARM_BELOW for name, t in first.items()}
    total = max(rounds, min(MAX_ROUNDS, int(budget / min(first.values()))))
    times: dict[str, list[float]] = {name: [first[name]] for name in steps if first[name] > slow}
    names = [name for name in steps if name not in times]
    times.update({name: [] for name in names})
    order = random.Random(seed)
    for _ in range(total):
        order.shuffle(names)
        for name in names:
            step, params = steps[name]
            for _ in range(1 + warm[name]):  # the last call is timed
                for p in params:
                    p.grad = None
                start = time.perf_counter()
                step()
                elapsed = time.perf_counter() - start
            times[name].append(elapsed)
    return {name: statistics.median(t) for name, t in times.items()}


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {key} in /proc/self/status")


def peak_extra(case: LocalCase, name: str) -> dict[str, int]:
    """In this process: peak bytes above the inputs during one step (after a warm-up)."""
    return step_peak(*_steps(case)[name])


def step_peak(step: Callable[[], None], params: list[torch.Tensor]) -> dict[str, int]:
    """In this process: peak bytes above what is held before one call of ``step`` (after a
    warm-up call), and the bytes of the second tensor's gradient (the weight's)."""
    step()
    for p in params:
        p.grad = None
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark
        f.write("5")
    base = _status("VmRSS")
    step()
    extra = _status("VmHWM") - base
    grad = params[1].grad
    weight_grad = 0 if grad is None else grad.numel() * grad.element_size()
    return {"extra": extra, "weight_grad": weight_grad}


def measure_memory(case: LocalCase, name: str) -> dict[str, int] | None:
    """:func:`peak_extra` in a fresh process; None where /proc cannot tell (not Linux)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    return in_fresh_process(
        "from gridconv.bench_local import LocalCase, peak_extra; "
        f"result = peak_extra(LocalCase{(*case.__dict__.values(),)!r}, {name!r})"
    )


def in_fresh_process(code: str) -> dict | None:
    """Run ``code``, which sets ``result``, in a fresh Python whose malloc returns every block
    to the system (so that each allocation shows in the high-water mark); ``result``, or
    None if the process failed."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "4096"}
    script = f"import json\n{code}\nprint(json.dumps(result))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False, rounds: int = 7, memory: bool = True) -> list[dict]:
    """Times (and memory) of every candidate on every case of the suite."""
    records = []
    for case in QUICK if quick else SUITE:
        seconds = time_case(case, rounds)
        in_memory = {name: measure_memory(case, name) for name in (CANDIDATES if memory else ())}
        record = {"case": case.name, "seconds": seconds, "memory": in_memory}
        records.append(record)
    return records
