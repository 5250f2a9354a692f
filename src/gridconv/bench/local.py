"""The ``local`` benchmark suite: unshared and tiled convolution against a convolution.

Each case times forward + backward of: torch's convolution with the same N, C, O and K
(the same multiply-adds as the locally connected layer; at its best: given NCHW and
channels_last inputs, the faster counts), ``local_conv`` (likewise in both formats), the unfold +
einsum recipe people write by hand, and ``tiled_conv`` with 2-per-dim tiles. Peak memory
is measured in a fresh process per candidate (``/proc/self/status``, glibc told to return
every block to the system so that each allocation shows), as the extra above the inputs,
with and without the weight gradient (which is as large as the weight itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gridconv.bench.harness import (
    CHANNELS_LAST,
    Steps,
    case_name,
    channels_last,
    in_fresh_process,
    step_peak,
    time_steps,
)
from gridconv.functional._spec import TORCH_CONV
from gridconv.functional.local import local_conv
from gridconv.functional.tiled import tiled_conv

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
        return case_name(self)


SUITE = (
    LocalCase(32, 16, 32, (28, 28), 5),
    LocalCase(64, 32, 64, (16, 16), 3),
    LocalCase(16, 3, 64, (32, 32), 5),
    LocalCase(32, 16, 32, (256,), 7),
    LocalCase(16, 16, 32, (12, 12, 12), 3),
)
QUICK = (LocalCase(4, 3, 4, (10, 10), 3), LocalCase(2, 2, 3, (12,), 3))


def _steps(case: LocalCase) -> Steps:
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

    found: Steps = {
        "conv": (lambda: TORCH_CONV[d](x, w).sum().backward(), [x, w]),
        "local": (lambda: local_conv(x, w_local).sum().backward(), [x, w_local]),
        "unfold+einsum": (recipe, [x, w_flat]),
        "tiled 2": (lambda: tiled_conv(x, w_tiled).sum().backward(), [x, w_tiled]),
    }
    x_last, w_last = channels_last(x), channels_last(w)
    if x_last is not None and w_last is not None:  # torch at its best; gridconv likewise
        found["conv" + CHANNELS_LAST] = (
            lambda: TORCH_CONV[d](x_last, w_last).sum().backward(),
            [x_last, w_last],
        )
        found["local" + CHANNELS_LAST] = (
            lambda: local_conv(x_last, w_local).sum().backward(),
            [x_last, w_local],
        )
    return found


def time_case(
    case: LocalCase, rounds: int = 7, seed: int = 0, budget: float = 0.25
) -> dict[str, float]:
    """Median seconds of a forward + backward step per candidate, by the harness's protocol
    (:func:`gridconv.bench.harness.time_steps`)."""
    return time_steps(_steps(case), rounds, seed, budget)


def peak_extra(case: LocalCase, name: str) -> dict[str, int]:
    """In this process: peak bytes above the inputs during one step (after a warm-up)."""
    return step_peak(*_steps(case)[name])


def measure_memory(case: LocalCase, name: str) -> dict[str, int] | None:
    """:func:`peak_extra` in a fresh process; None where /proc cannot tell (not Linux)."""
    return in_fresh_process(
        "from gridconv.bench.local import LocalCase, peak_extra; "
        f"result = peak_extra(LocalCase{(*case.__dict__.values(),)!r}, {name!r})"
    )


def run(quick: bool = False, rounds: int = 7, memory: bool = True) -> list[dict]:
    """Times (and memory) of every candidate on every case of the suite."""
    records = []
    for case in QUICK if quick else SUITE:
        seconds = time_case(case, rounds)
        in_memory = {name: measure_memory(case, name) for name in (CANDIDATES if memory else ())}
        record = {"case": case.name, "seconds": seconds, "memory": in_memory}
        records.append(record)
    return records
