"""The FFT method's backward against its forward, on the train suite's shapes.

  .venv/bin/python benchmarks/fft_backward.py        # ~1 min; prints a table

For each shape: the forward alone (input and kernel wanting gradients, so the forward the
training step runs, keeping what its backward needs) and forward + backward, interleaved
rounds in random order, each timed on its second call in a row; medians. Issue 16 asked for
forward + backward at most 3x the forward (it was 8-9x when autograd stepped back through
tiles and DFT matrices).
"""

from __future__ import annotations

import random
import statistics
import time

import gridconv as gc
from gridconv.bench.train import SUITE, forwards


def main(rounds: int = 9) -> None:
    gc.keep_freed_memory()
    print(f"{'case':<32} {'forward ms':>10} {'fwd+bwd ms':>10} {'ratio':>6}")
    for case in SUITE:
        if case.kernel > 8192:
            continue  # the 16384-long case alone takes as long as all the others
        x, w, grad, found = forwards(case)
        fft = found["fft"]

        def forward(fft=fft) -> None:
            fft()

        def step(fft=fft, grad=grad, params=(x, w)) -> None:
            fft().backward(grad)
            for p in params:
                p.grad = None

        runs = {"forward": forward, "step": step}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for run in runs.values():
            run()
        for _ in range(rounds):
            for name in random.sample(list(runs), len(runs)):
                runs[name]()
                start = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - start)
        f, s = (statistics.median(times[n]) for n in ("forward", "step"))
        print(f"{case.name:<32} {f * 1e3:>10.1f} {s * 1e3:>10.1f} {s / f:>6.2f}")


if __name__ == "__main__":
    main()
