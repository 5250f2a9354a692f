"""
Direct against FFT: where the crossover lies
============================================

Section 9.8: a convolution through the Fourier transform costs about the same whatever the
kernel's size, while the direct sum grows with the kernel's area. ``method="auto"`` picks
per shape. This times both, and auto, on one 256x256 image for growing kernels, on the
machine that builds these pages (medians of interleaved calls).
"""

import statistics
import time

import matplotlib.pyplot as plt
import torch

import gridconv as gc

torch.manual_seed(0)
x = torch.randn(1, 1, 256, 256)
sizes = (3, 5, 7, 11, 15, 21, 31)
methods = ("direct", "fft", "auto")


def seconds(w: torch.Tensor, method: str) -> float:
    gc.conv(x, w, padding="same", method=method)  # warm: plans, transforms
    start = time.perf_counter()
    gc.conv(x, w, padding="same", method=method)
    return time.perf_counter() - start


times: dict[str, list[float]] = {m: [] for m in methods}
for k in sizes:
    w = torch.randn(1, 1, k, k)
    rounds: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(5):  # interleaved rounds
        for m in methods:
            rounds[m].append(seconds(w, m))
    for m in methods:
        times[m].append(statistics.median(rounds[m]) * 1e3)
    chose = gc.functional.auto_method_for(x, w, padding="same")
    print(
        f"K{k:>2}: direct {times['direct'][-1]:6.2f} ms, fft {times['fft'][-1]:5.2f} ms,"
        f" auto ({chose}) {times['auto'][-1]:5.2f} ms"
    )

# %%
fig, ax = plt.subplots(figsize=(6, 3.6))
for m, style in zip(methods, ("o-", "s-", "x--")):
    ax.plot(sizes, times[m], style, label=m)
ax.set_xlabel("kernel size (K x K) on 256 x 256")
ax.set_ylabel("milliseconds")
ax.set_yscale("log")
ax.legend()
fig.tight_layout()
