"""The one timing core of ``gridconv bench``: candidates timed side by side in interleaved
rounds, medians reported; and the peak memory of one step, measured in a fresh process.

Each round runs the candidates in a fresh random order, so that machine noise falls on all
alike. A candidate faster than ``WARM_BELOW`` is called twice in a row and timed on the
second call: otherwise it pays for the caches the previous candidate left (measured: 30-50
us on a 0.7 ms case, whichever candidate comes after torch's or scipy's; ``tiled_conv`` timed
right after the unfold + einsum recipe took 5-9 % longer than timed after itself). Fast cases
get more rounds until the quickest candidate has had about ``budget`` seconds. A candidate
whose first (warm-up) call takes more than ``slow`` seconds is not run again: that call is
its time.
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
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gridconv.functional.methods.planner import WARM_BELOW

__all__ = [
    "CHANNELS_LAST",
    "WARM_BELOW",
    "Steps",
    "Timings",
    "best_format",
    "case_name",
    "channels_last",
    "checked_peers",
    "in_fresh_process",
    "step_peak",
    "time_interleaved",
    "time_steps",
]


def case_name(case: Any) -> str:
    """A case's name in tables and JSON, from its ``batch``, ``in_channels``,
    ``out_channels``, ``size``, ``kernel`` and (where above one) ``groups``:
    ``"N8 C64 O64 56x56 K31 g64"``."""
    dims = "x".join(map(str, case.size))
    groups = getattr(case, "groups", 1)
    g = f" g{groups}" if groups > 1 else ""
    return f"N{case.batch} C{case.in_channels} O{case.out_channels} {dims} K{case.kernel}{g}"


# Torch is timed at its best: each candidate that takes an image or volume runs on the input
# as given (NCHW) and, under this suffix, on a channels_last copy, where oneDNN's depthwise
# path is up to 70 times faster; a side's figure is its faster format.
CHANNELS_LAST = " [channels_last]"


def channels_last(t: torch.Tensor) -> torch.Tensor | None:
    """A channels_last (``channels_last_3d``) copy of a 4-d (5-d) ``t`` whose two formats
    differ (more than one channel), keeping ``requires_grad``; None otherwise."""
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    if t.ndim not in formats or t.shape[1] == 1:
        return None
    out = t.detach().to(memory_format=formats[t.ndim])
    return out.requires_grad_() if t.requires_grad else out


def best_format(seconds: Mapping[str, float], column: str) -> tuple[float, str]:
    """``(seconds, format)`` of ``column`` at its faster memory format: ``"NCHW"`` (the
    column itself) or ``"channels_last"`` (``column + CHANNELS_LAST``)."""
    times = {"NCHW": seconds.get(column), "channels_last": seconds.get(column + CHANNELS_LAST)}
    known = {fmt: t for fmt, t in times.items() if t is not None}
    fmt = min(known, key=known.__getitem__)
    return known[fmt], fmt


def checked_peers(
    peers: Mapping[str, Callable[[], object]], reference: torch.Tensor, rtol: float = 1e-3
) -> dict[str, Callable[[], object]]:
    """The ``peers`` (other libraries' calls, returning a tensor or an array) whose result,
    computed once here, matches ``reference`` (the same values, any layout of the same
    size); each other one is left out with a one-line warning, never a crash: its API may
    have changed since this was written."""
    kept = {}
    expected = reference.detach().reshape(-1).double()
    scale = float(expected.abs().max().clamp_min(1e-12))
    for name, call in peers.items():
        try:
            got = torch.as_tensor(np.asarray(_detached(call()))).reshape(-1).double()
            error = (
                float((got - expected).abs().max()) / scale
                if got.shape == expected.shape
                else math.inf
            )
        except Exception as failure:  # any failure of a peer is its own
            reason = (
                f"{type(failure).__name__}: {str(failure).splitlines()[0] if str(failure) else ''}"
            )
        else:
            if error <= rtol:
                kept[name] = call
                continue
            reason = "its result differs from torch's"
        warnings.warn(f"gridconv bench: peer {name!r} left out ({reason})", stacklevel=2)
    return kept


def _detached(value: object) -> object:
    return value.detach() if isinstance(value, torch.Tensor) else value


@dataclass
class Timings:
    """Median seconds per candidate, and how many calls each median is of."""

    seconds: dict[str, float] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)


def time_interleaved(
    calls: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    max_rounds: int,
    budget: float,
    seed: int = 0,
    slow: float = math.inf,
    near: float = math.inf,
    reset: Callable[[str], None] | None = None,
) -> Timings:
    """Time every candidate of ``calls`` by the protocol above: at least ``rounds``
    interleaved rounds, up to ``max_rounds`` while the quickest has had less than
    ``budget`` seconds; the extra rounds only for the candidates within ``near`` times the
    quickest. ``reset(name)``, if given, runs untimed before each call (clearing gradients,
    say)."""

    def timed(name: str) -> float:
        if reset is not None:
            reset(name)
        start = time.perf_counter()
        calls[name]()
        return time.perf_counter() - start

    first = {name: timed(name) for name in calls}  # warm-up
    fast = [name for name, t in first.items() if t <= slow]
    quickest = min((first[name] for name in fast), default=slow)
    close = [name for name in fast if first[name] <= near * quickest]
    warm = {name: first[name] < WARM_BELOW for name in fast}
    times: dict[str, list[float]] = {name: [t] for name, t in first.items() if t > slow}
    times.update({name: [] for name in fast})
    order = random.Random(seed)
    total = max(rounds, min(max_rounds, int(budget / max(quickest, 1e-6))))
    for i in range(total):
        names = fast if i < rounds else close
        order.shuffle(names)
        for name in names:
            if warm[name]:  # untimed: the timed call finds the caches as it left them
                timed(name)
            times[name].append(timed(name))
    return Timings(
        {name: statistics.median(t) for name, t in times.items()},
        {name: len(t) for name, t in times.items()},
    )


# Rounds at most for training steps (each takes milliseconds to seconds).
STEP_ROUNDS = 25
Steps = dict[str, tuple[Callable[[], None], list[torch.Tensor]]]


def time_steps(
    steps: Steps, rounds: int = 7, seed: int = 0, budget: float = 0.25, slow: float = math.inf
) -> dict[str, float]:
    """Median seconds of each ``{name: (step, tensors with gradients)}``, the gradients
    cleared (untimed) before each call; a candidate whose warm-up call takes over ``slow``
    seconds is not run again (that call is its time)."""

    def reset(name: str) -> None:
        for p in steps[name][1]:
            p.grad = None

    calls = {name: step for name, (step, _) in steps.items()}
    timings = time_interleaved(
        calls, rounds=rounds, max_rounds=STEP_ROUNDS, budget=budget, seed=seed, slow=slow,
        reset=reset,
    )  # fmt: skip
    return timings.seconds


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {key} in /proc/self/status")


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


def in_fresh_process(code: str) -> dict | None:
    """Run ``code``, which sets ``result``, in a fresh Python whose malloc returns every block
    to the system (so that each allocation shows in the high-water mark); ``result``, or
    None if the process failed or ``/proc`` cannot tell peaks (not Linux)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "4096"}
    script = f"import json\n{code}\nprint(json.dumps(result))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])
