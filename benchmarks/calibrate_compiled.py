"""Fit the cost model of the compiled 1-D overlap-save path (gridconv.plan's
``fft_compiled_*`` constants) to timings taken on this machine.

  .venv/bin/python benchmarks/calibrate_compiled.py      # ~1 min; prints constants and fit

Time = unit * overlap_save.work + per_point * padded input elements + overhead, with the
kernel's transform kept (the planner adds it where it is not). Each shape is timed in 15
rounds, medians; the fit minimises relative error. Also prints torch's direct time beside
it for K <= 64, to show where the two cross.
"""

from __future__ import annotations

import time

import numpy as np
import torch

import gridconv as gc
from gridconv.functional._spec import setup
from gridconv.functional.methods.fft import overlap_save

SHAPES = [(4, 8, 8, 65536, k) for k in (3, 7, 9, 15, 31, 64, 256, 1024, 4096)] + [
    (1, 1, 1, 65536, 64),
    (1, 1, 1, 65536, 7),
    (8, 32, 32, 8192, 31),
    (16, 64, 64, 2048, 9),
    (2, 3, 16, 100000, 15),
    (1, 1, 1, 1000, 5),
    (8, 16, 16, 4096, 3),
    (32, 64, 64, 256, 3),
]


def median_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        fn()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def main() -> None:
    gc.keep_freed_memory()
    rows = []
    with torch.no_grad():
        for N, C, O, n, k in SHAPES:
            x, w = torch.randn(N, C, n), torch.randn(O, C, k)
            xb, spec, _ = setup(x, w, None, padding="same")
            kernel = overlap_save.prepare(w, spec)
            ms = median_ms(lambda: overlap_save.apply(xb, kernel, spec), 15)  # noqa: B023
            direct = "-"
            if k <= 64:
                conv = lambda: gc.conv(x, w, padding="same", method="direct")  # noqa: B023, E731
                direct = f"{median_ms(conv, 5):.3f} ms"
            work = overlap_save.work(spec, N, O)
            rows.append((work, N * C * (n + k - 1), ms / 1e3))
            print(f"{(N, C, O, n, k)}  L{kernel.length}  {ms:.3f} ms  direct {direct}")
    a = np.array([[w, p, 1.0] for w, p, _ in rows])
    t = np.array([s for *_, s in rows])
    coef, *_ = np.linalg.lstsq(a / t[:, None], np.ones(len(t)), rcond=None)
    print(f"fft_compiled_unit {coef[0]:.3g}, per_point {coef[1]:.3g}, overhead {coef[2]:.3g}")
    print("predicted / measured:", np.round(a @ coef / t, 2))


if __name__ == "__main__":
    main()
