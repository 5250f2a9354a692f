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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from gridconv.functional.methods.planner import WARM_BELOW

__all__ = [
    "WARM_BELOW",
    "Steps",
    "Timings",
    "case_name",
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
