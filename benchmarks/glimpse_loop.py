"""Glimpse extraction: gridconv's batched retina against a per-image loop.

  .venv/bin/python benchmarks/glimpse_loop.py     # ~20 s; prints medians and ratios

The reference is the retina of the usual PyTorch re-implementation of Mnih et al. 2014
(kevinzakka/recurrent-visual-attention), written afresh here: for every image and every
scale, the centre rounded to a pixel, a crop of ``g * 2**k`` pixels cut from a zero-padded
copy, and average pooling down to ``g``. Issue 18 asks for at least 10x its throughput at
N=256, 60x60, g=8, 3 scales; forward + backward (the gradient to the input) is timed too.
"""

from __future__ import annotations

import random
import statistics
import time

import torch
import torch.nn.functional as F

import gridconv as gc


def loop_retina(x: torch.Tensor, centers: torch.Tensor, g: int, scales: int) -> torch.Tensor:
    """``(N, C, H, W)``, ``(N, 2)`` in [-1, 1] -> ``(N, scales, C, g, g)``, one image at a time."""
    N, _, H, W = x.shape
    out = []
    for n in range(N):
        per_scale = []
        for k in range(scales):
            size = g * 2**k
            padded = F.pad(x[n : n + 1], (size, size, size, size))
            row = round((centers[n, 0].item() + 1) / 2 * (H - 1)) + size - size // 2
            col = round((centers[n, 1].item() + 1) / 2 * (W - 1)) + size - size // 2
            patch = padded[:, :, row : row + size, col : col + size]
            per_scale.append(F.avg_pool2d(patch, 2**k) if k else patch)
        out.append(torch.cat(per_scale).unsqueeze(0))
    return torch.cat(out)


def main(rounds: int = 9) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 1, 60, 60, generator=g).requires_grad_()
    centers = torch.rand(256, 2, generator=g) * 2 - 1
    runs = {
        "gridconv glimpse": lambda: gc.glimpse(x, centers, 8, scales=3),
        "per-image loop": lambda: loop_retina(x, centers, 8, 3),
    }
    times: dict[str, list[float]] = {f"{n} {p}": [] for n in runs for p in ("fwd", "fwd+bwd")}
    for fn in runs.values():
        fn().sum().backward()
    for _ in range(rounds):
        for name in random.sample(list(runs), len(runs)):
            fn = runs[name]
            with torch.no_grad():
                start = time.perf_counter()
                fn()
                times[f"{name} fwd"].append(time.perf_counter() - start)
            start = time.perf_counter()
            fn().sum().backward()
            times[f"{name} fwd+bwd"].append(time.perf_counter() - start)
            x.grad = None
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:<28} {v * 1e3:8.2f} ms")
    for p in ("fwd", "fwd+bwd"):
        ratio = med[f"per-image loop {p}"] / med[f"gridconv glimpse {p}"]
        print(f"loop / glimpse, {p}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
