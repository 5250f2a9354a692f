"""What gridconv.conv costs on top of torch's own convolution, side by side in one run.

For each shape: the median time of torch.nn.functional.conv2d with the same (symmetric)
padding, of gridconv.conv, and, for padding torch cannot take directly ("same" with a
stride, asymmetric pairs, reflect), of the recipe users write by hand (F.pad, then conv2d).
Interleaved repeats, medians, ratios. Run: .venv/bin/python benchmarks/conv_overhead.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import gridconv as gc


def median_seconds(fns: list[Callable[[], object]], repeats: int = 25) -> list[float]:
    """Median wall time of each function, the functions interleaved so noise hits all alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    torch.manual_seed(0)
    cases = [
        # name, x shape, w shape, gridconv kwargs, hand-written recipe
        ("valid 3x3", (32, 16, 32, 32), (32, 16, 3, 3), {}, None),
        ("pad 1 3x3", (32, 16, 32, 32), (32, 16, 3, 3), {"padding": 1}, None),
        ("valid 1x1 tiny", (1, 4, 8, 8), (4, 4, 1, 1), {}, None),
        (
            "same stride 2, 4x4",
            (32, 16, 32, 32),
            (32, 16, 4, 4),
            {"padding": "same", "stride": 2},
            lambda x, w: F.conv2d(F.pad(x, (1, 1, 1, 1)), w, stride=2),
        ),
        (
            "pairs ((0,2),(1,1)) 3x3",
            (32, 16, 32, 32),
            (32, 16, 3, 3),
            {"padding": [(0, 2), (1, 1)]},
            lambda x, w: F.conv2d(F.pad(x, (0, 0, 0, 2)), w, padding=(0, 1)),
        ),
        (
            "reflect 2, 5x5",
            (32, 16, 32, 32),
            (32, 16, 5, 5),
            {"padding": 2, "padding_mode": "reflect"},
            lambda x, w: F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), w),
        ),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of 25")
    header = f"{'case':<26}{'torch ms':>10}{'gridconv ms':>13}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for name, xs, ws, kwargs, recipe in cases:
        x, w = torch.randn(xs), torch.randn(ws)
        if recipe is None:
            ref = lambda x=x, w=w, kw=kwargs: F.conv2d(x, w, padding=kw.get("padding", 0))  # noqa: E731
        else:
            ref = lambda x=x, w=w, r=recipe: r(x, w)  # noqa: E731
        torch.testing.assert_close(gc.conv(x, w, **kwargs), ref(), rtol=1e-4, atol=1e-4)
        t_ref, t_ours = median_seconds([ref, lambda x=x, w=w, kw=kwargs: gc.conv(x, w, **kw)])
        print(f"{name:<26}{t_ref * 1e3:>10.3f}{t_ours * 1e3:>13.3f}{t_ours / t_ref:>8.2f}")


if __name__ == "__main__":
    main()
