"""Sec. 9.8: the same convolution, three algorithms. The direct sum costs k^2 per output
cell, the FFT about log n whatever the kernel, and a separable kernel 2k. Which one wins
depends on the kernel's size; gridconv's ``method="auto"`` picks it."""

from __future__ import annotations

from gridconv.bench import conv as conv_bench
from gridconv.experiments._base import Figures, Result, Settings

NAME = "algorithms"
TITLE = "Direct, FFT and separable convolution: where each wins"
CLAIM = (
    "The direct method is fastest for small kernels; FFT or separable passes win for large "
    "ones, by a margin that grows with the kernel; method='auto' stays near the fastest."
)


def verdict(records: list[dict]) -> tuple[bool, str]:
    """Supported when direct is the fastest method at the smallest kernel (within 20 %), FFT
    or separable is at least 2x faster than direct at the largest, and auto is within 1.5x
    of the fastest everywhere."""
    small, large = records[0], records[-1]

    def best(r: dict) -> float:
        return min(r["direct_ms"], r["fft_ms"], r["separable_ms"])

    direct_small = small["direct_ms"] <= 1.2 * best(small)
    fast_large = min(large["fft_ms"], large["separable_ms"]) * 2 <= large["direct_ms"]
    auto_close = all(r["auto_ms"] <= 1.5 * best(r) for r in records)
    measured = (
        f"{small['kernel']}x{small['kernel']}: direct {small['direct_ms']:.2f} ms, FFT "
        f"{small['fft_ms']:.2f} ms, separable {small['separable_ms']:.2f} ms; "
        f"{large['kernel']}x{large['kernel']}: direct {large['direct_ms']:.1f} ms, FFT "
        f"{large['fft_ms']:.2f} ms, separable {large['separable_ms']:.2f} ms. auto is within "
        f"{max(r['auto_ms'] / best(r) for r in records):.2f}x of the fastest."
    )
    return direct_small and fast_large and auto_close, measured


def run(settings: Settings) -> Result:
    size, ks = ((64, 64), (3, 9, 21)) if settings.quick else ((256, 256), (3, 7, 15, 31, 63))
    rounds = 3 if settings.quick else 5
    cases = [conv_bench.Case("crossover", 1, 1, 1, size, k, 1, True) for k in ks]
    timed = [
        conv_bench.time_case(case, rounds=rounds, seed=settings.seed, peers=False) for case in cases
    ]
    records = [
        {
            "case": r.case,
            "kernel": r.kernel,
            "auto_chose": r.auto_method,
            **{f"{m}_ms": r.seconds[m] * 1e3 for m in ("direct", "fft", "separable", "auto")},
        }
        for r in timed
    ]
    figures = Figures(settings.out, NAME)
    path = settings.out / f"{NAME}-crossover.png"
    conv_bench.plot_crossover(timed, str(path))
    figures.saved.append(
        {
            "file": path.name,
            "caption": f"Time against kernel size for a "
            f"k x k Gaussian on a {size[0]}x{size[1]} image (medians).",
        }
    )
    return Result.judged(NAME, TITLE, CLAIM, verdict(records), records, figures)
