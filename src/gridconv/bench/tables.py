"""The tables ``gridconv bench`` prints: each suite's records as aligned text columns,
medians in ms with their ratios (the command line does the printing)."""

from __future__ import annotations

from gridconv.bench import conv as conv_bench
from gridconv.bench import local as local_bench
from gridconv.bench import models as models_bench
from gridconv.bench import train as train_bench
from gridconv.bench.harness import CHANNELS_LAST, best_format

_BENCH_COLUMNS = (
    "auto",
    "auto" + CHANNELS_LAST,
    "auto (measured)",
    "direct",
    "fft",
    "separable",
    "torch conv1d",
    "torch conv2d",
    "torch conv2d" + CHANNELS_LAST,
    "torch conv3d",
    "torch conv3d" + CHANNELS_LAST,
    "scipy fftconvolve",
    "scipy oaconvolve",
    "scipy correlate",
    "kornia fft_conv",
    "opencv filter2D",
)


def _render(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, under a header and a rule."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _best_pair(torch_best: tuple[float, str], ours: tuple[float, str]) -> str:
    """``"1.23x (NCHW / cl)"``: torch's best time over gridconv's, and their formats."""
    short = {"NCHW": "NCHW", "channels_last": "cl"}
    return f"{torch_best[0] / ours[0]:.2f}x ({short[torch_best[1]]} / {short[ours[1]]})"


def _timing_cells(
    seconds: dict[str, float], columns: list[str], digits: int, runs: dict[str, int] | None = None
) -> list[str]:
    """A cell per column: its median in ms with its ratio to ``auto``'s (``*``: timed once),
    ``-`` where the column does not apply."""
    auto = seconds["auto"]
    cells = []
    for c in columns:
        if c not in seconds:
            cells.append("-")
        elif c == "auto":
            cells.append(f"{auto * 1e3:.{digits}f}")
        else:
            once = "*" if runs is not None and runs.get(c) == 1 else ""
            cells.append(f"{seconds[c] * 1e3:.{digits}f}{once} ({seconds[c] / auto:.2f}x)")
    return cells


def bench_table(records: list[conv_bench.Record]) -> str:
    """Medians in ms, each with its ratio to gridconv auto; ``-`` where it does not apply."""
    columns = [c for c in _BENCH_COLUMNS if any(c in r.seconds for r in records)]
    header = ["suite", "case", "auto chose", "torch best / auto best", *columns]
    rows = []
    for r in records:
        cells = [r.suite, r.case, r.auto_method, _best_pair(r.best("torch"), r.best("auto"))]
        cells += _timing_cells(r.seconds, columns, 2, r.runs)
        rows.append(cells)
    return _render(header, rows)


def local_table(records: list[dict]) -> str:
    """Forward + backward medians in ms with their ratio to the convolution (torch at its
    faster memory format; local likewise), and memory."""
    header = ["case", *local_bench.CANDIDATES, "extra memory MB: conv / local / unfold+einsum"]
    header[1:3] = ["conv (best format)", "local (best format)"]
    rows = []
    for r in records:
        conv, conv_format = best_format(r["seconds"], "conv")
        local, local_format = best_format(r["seconds"], "local")
        cells = [r["case"], f"{conv * 1e3:.1f} {conv_format}"]
        cells.append(f"{local * 1e3:.1f} {local_format} ({local / conv:.2f}x)")
        cells += [
            f"{r['seconds'][c] * 1e3:.1f} ({r['seconds'][c] / conv:.2f}x)"
            for c in local_bench.CANDIDATES[2:]
        ]
        memory = []
        for name in ("conv", "local", "unfold+einsum"):
            m = r["memory"].get(name)
            if m is None:
                memory.append("?")
                continue
            grad_free = (
                "" if name == "conv" else f" ({(m['extra'] - m['weight_grad']) / 2**20:.1f})"
            )
            memory.append(f"{m['extra'] / 2**20:.1f}{grad_free}")
        rows.append([*cells, " / ".join(memory)])
    return _render(header, rows)


def train_table(records: list[train_bench.TrainRecord]) -> str:
    """Forward + backward medians in ms with their ratio to gridconv auto, memory."""
    columns = [c for c in train_bench.COLUMNS if any(c in r.seconds for r in records)]
    header = ["case", "auto chose", "torch best / auto best", *columns, "regret"]
    header.append("peak MB direct / fft")
    rows = []
    for r in records:
        best = _best_pair(r.best("torch"), r.best("auto"))
        cells = [r.case, f"{r.auto_method} ({r.measured_method})", best]
        cells += _timing_cells(r.seconds, columns, 1)
        cells.append(f"{r.regret():.2f}")
        peaks = [r.memory.get(m) for m in train_bench.METHODS]
        cells.append(" / ".join("?" if p is None else f"{p['extra'] / 2**20:.0f}" for p in peaks))
        rows.append(cells)
    return _render(header, rows)


def models_table(records: list[models_bench.ModelRecord]) -> str:
    """Per model: the errors in float64, torch at its best over the converted model at its
    best (train, inference; their formats), the medians, and peak memory of a step."""
    header = ["model", "rel. error out / grad", "train: torch / gridconv", "inference"]
    header.append("peak MB torch / gridconv")
    rows = []
    for r in records:
        cells = [r.case, f"{r.errors['output']:.1e} / {r.errors['gradient']:.1e}"]
        for seconds in (r.train, r.inference):
            t, t_fmt = models_bench.best(seconds, "torch")
            g, g_fmt = models_bench.best(seconds, "gridconv")
            cells.append(f"{t * 1e3:.1f} {t_fmt} / {g * 1e3:.1f} {g_fmt} ({t / g:.2f}x)")
        peaks = []
        for side in ("torch", "gridconv"):
            fmt = models_bench.best(r.train, side)[1]
            m = r.memory.get(f"{side} {fmt}")
            peaks.append("?" if m is None else f"{m['extra'] / 2**20:.0f}")
        rows.append([*cells, " / ".join(peaks)])
    return _render(header, rows)


def layers_table(rows: list[dict]) -> str:
    """The per-layer table of :func:`gridconv.analysis.layer_table` (as dicts)."""
    header = ["layer", "input", "format", "kernel", "groups", "auto: train / infer"]
    header += ["torch ms train / infer", "gridconv ms train / infer"]
    out = []
    for r in rows:
        shape = "x".join(map(str, r["input_shape"]))
        methods = f"{r['method_train']} / {r['method_infer']}"
        times = [
            f"{r[f'{side}_train'] * 1e3:.2f} / {r[f'{side}_infer'] * 1e3:.2f}"
            for side in ("torch", "gridconv")
        ]
        kernel = "x".join(map(str, r["kernel"]))
        out.append(
            [r["name"], shape, r["memory_format"], kernel, str(r["groups"]), methods, *times]
        )
    return _render(header, out)
