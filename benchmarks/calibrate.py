"""Fit the constants of gridconv.plan's cost model to timings taken on this machine.

  .venv/bin/python benchmarks/calibrate.py measure   # ~15 min; writes results/calibration.json
  .venv/bin/python benchmarks/calibrate.py fit       # least squares on log-times

The fit minimises the log-ratio of predicted to measured time (so a 2x miss costs the same
at 1 ms as at 1 s). The printed constants go into the `CPU` table of each
method's module in gridconv/functional/methods/ (gridconv.plan.set_constants puts them there
while fitting); `fit` also prints how far each
measurement is from the model, and the worst misses.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import gridconv as gc
from gridconv import plan
from gridconv.functional._spec import setup
from gridconv.functional.methods import REGISTRY
from gridconv.functional.methods.base import Workload

OUT = Path(__file__).parent / "results" / "calibration.json"


def grid() -> list[tuple[int, int, int, int, tuple[int, ...], int]]:
    """(N, C_in, C_out, groups, size, K) covering the suites and their neighbourhoods."""
    g = []
    for n in (64, 128, 256, 512, 1024):
        for k in (3, 5, 7, 9, 11, 15, 21, 31, 45, 63):
            if k < n // 2:
                g.append((1, 1, 1, 1, (n, n), k))
    for n, k in [(512, 3), (512, 7), (256, 15), (128, 31), (512, 15), (512, 31), (256, 63)]:
        g.append((4, 3, 3, 3, (n, n), k))
    for N, C, O, n in [
        (8, 16, 32, 64),
        (8, 32, 32, 128),
        (2, 8, 8, 256),
        (8, 64, 64, 32),
        (1, 3, 16, 128),
        (2, 8, 8, 512),
    ]:
        for k in (1, 3, 5, 7, 9, 15, 31):
            if k < n // 2:
                g.append((N, C, O, 1, (n, n), k))
    for L in (4096, 16384, 65536):
        for k in (16, 64, 256, 1024, 4096):
            if k < L // 4:
                g.append((4, 8, 8, 1, (L,), k))
                g.append((1, 1, 1, 1, (L,), k))
    for n in (16, 32, 48, 64):
        for k in (3, 5, 7, 15):
            if k < n // 2:
                g.append((1, 4, 4, 1, (n, n, n), k))
                g.append((2, 8, 8, 1, (n, n, n), k))
    return g


def time_method(x, w, groups, method, budget=1.0):
    run = lambda: gc.conv(x, w, padding="same", groups=groups, method=method)  # noqa: E731
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    if first > budget:
        return first, 1
    times = []
    while len(times) < 3 or (sum(times) < budget and len(times) < 9):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(times)


def measure(methods: tuple[str, ...] = ("direct", "fft", "separable")) -> None:
    """Time ``methods`` on the grid; other methods' timings already on file are kept."""
    gc.keep_freed_memory()  # as `gridconv bench` does: no page faults in the timings
    torch.set_grad_enabled(False)
    warnings.filterwarnings("ignore")
    old = {}
    if OUT.exists():
        old = {json.dumps(r["key"]): r["seconds"] for r in json.loads(OUT.read_text())["rows"]}
    rows = []
    g = grid()
    for i, (N, C, O, G, size, k) in enumerate(g):
        x = torch.randn(N, C, *size)
        w = torch.randn(O, C // G, *([k] * len(size)))
        _, spec, _ = setup(
            x, w, None, stride=1, padding="same", dilation=1, groups=G, padding_mode="zeros"
        )
        key = [N, C, O, G, list(size), k]
        row = {"key": key, "N": N, "C": C, "O": O, "G": G, "size": size, "k": k}
        row["seconds"] = {m: t for m, t in old.get(json.dumps(key), {}).items() if m not in methods}
        for method in methods:
            if method == "separable":
                if len(size) == 1 or G != C:
                    continue  # the passes matter for depthwise kernels; the rest fan out
                w_sep = gc.decompose(w, rank=1).to_dense()
                t, _ = time_method(x, w_sep, G, "separable")
            else:
                guess = REGISTRY[method].seconds(Workload(N, O, spec, x.device.type))
                if method == "direct" and guess > 20:
                    continue
                t, _ = time_method(x, w, G, method)
            row["seconds"][method] = t
        rows.append(row)
        print(f"[{i + 1}/{len(g)}] {row}", file=sys.stderr, flush=True)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(
        json.dumps(
            {"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}, indent=1
        )
    )


def _spec(row):
    x = torch.empty(row["N"], row["C"], *row["size"], device="meta")
    w = torch.empty(row["O"], row["C"] // row["G"], *([row["k"]] * len(row["size"])), device="meta")
    _, spec, _ = setup(
        x, w, None, stride=1, padding="same", dilation=1, groups=row["G"], padding_mode="zeros"
    )
    return spec


FITTED = {
    "direct": [
        "direct_jit_gmacs",
        "direct_jit_half",
        "direct_jit_3d",
        "direct_small3d_gmacs",
        "direct_depthwise_gmacs",
        "direct_gemm_gmacs",
        "direct_gemm_half",
        "direct_ref_gmacs",
        "direct_per_point",
        "direct_overhead",
    ],
    "fft": [
        "fft_unit_1d",
        "fft_unit_2d",
        "fft_unit_3d",
        "fft_mix",
        "fft_copy",
        "fft_kernel",
        "fft_overhead",
    ],
    "separable": [
        "separable_gmacs",
        "separable_per_point",
        "separable_per_moved_point",
        "separable_overhead",
    ],
}


def fit() -> None:
    from scipy.optimize import least_squares

    rows = json.loads(OUT.read_text())["rows"]
    specs = [_spec(r) for r in rows]
    fitted = {}
    for method, names in FITTED.items():
        model = REGISTRY[method].seconds
        data = [(r, s) for r, s in zip(rows, specs) if method in r["seconds"] and r["k"] > 1]
        p0 = np.log([max(plan.constants()[n], 1e-12) for n in names])

        def residuals(p, data=data, model=model, names=names, method=method):
            plan.set_constants(dict(zip(names, np.exp(p))))
            # priced as torch's FFT path (float64: the compiled 1-D path, which has a fit of
            # its own in calibrate_compiled.py, never applies)
            work = [Workload(r["N"], r["O"], s, dtype=torch.float64) for r, s in data]
            return [math.log(model(p) / r["seconds"][method]) for p, (r, _) in zip(work, data)]

        result = least_squares(residuals, p0)
        res = np.array(residuals(result.x))
        fitted.update(zip(names, np.exp(result.x)))
        print(f"\n{method}: {len(data)} points, rms log-error {np.sqrt(np.mean(res**2)):.3f}")
        for i in np.argsort(-np.abs(res))[:5]:
            r = data[i][0]
            print(
                f"  off x{math.exp(res[i]):.2f}: N{r['N']} C{r['C']} O{r['O']} g{r['G']} "
                f"{r['size']} K{r['k']}  measured {r['seconds'][method] * 1e3:.2f} ms"
            )
    print("\nCPU constants:")
    for name, value in fitted.items():
        print(f'    "{name}": {value:.3g},')


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "fit"
    if command == "measure":
        measure(tuple(sys.argv[2:]) or ("direct", "fft", "separable"))
    else:
        fit()
