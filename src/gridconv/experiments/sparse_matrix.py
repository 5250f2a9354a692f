"""Sec. 9.1-9.2: a convolution is a multiplication by a sparse matrix whose rows all hold
the same few kernel weights, shifted (a doubly block circulant matrix in 2-D). It is far
smaller and cheaper than the dense matrix of a fully connected layer of the same shape."""

from __future__ import annotations

from typing import Any

import torch

from gridconv import conv, conv_matrix
from gridconv.experiments._base import Figures, Result, Settings

NAME = "sparse_matrix"
TITLE = "Convolution as a sparse matrix"
CLAIM = (
    "Convolution equals multiplication by a sparse matrix in which every row holds the same "
    "kernel weights, shifted; the kernel takes a tiny fraction of the dense matrix's memory "
    "and multiply-adds."
)


def verdict(records: list[dict]) -> tuple[bool, str]:
    """Supported when the matrix reproduces the convolution, every row holds the kernel's
    weights, and for the larger example the dense matrix has at least 100 times the kernel's
    weights and 10 times its multiply-adds."""
    small, large = records
    measured = (
        f"{small['input']} input, {small['kernel']} kernel: a {small['rows']} x "
        f"{small['columns']} matrix with {small['nonzeros']} nonzeros "
        f"({small['density']:.1%}); matrix times input equals the convolution to "
        f"{small['max_error']:.1e}. For {large['input']} with {large['kernel']}: the kernel "
        f"has {large['kernel_weights']:,} weights against {large['dense_entries']:,} dense "
        f"entries ({large['dense_entries'] / large['kernel_weights']:,.0f}x), and "
        f"{large['conv_multiply_adds']:,} multiply-adds against "
        f"{large['dense_multiply_adds']:,}."
    )
    exact = small["max_error"] < 1e-5 and small["rows_are_the_kernel"]
    smaller = large["dense_entries"] >= 100 * large["kernel_weights"]
    cheaper = large["dense_multiply_adds"] >= 10 * large["conv_multiply_adds"]
    return exact and smaller and cheaper, measured


def _example(
    channels: int, out_channels: int, size: int, k: int, seed: int
) -> tuple[dict[str, Any], torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(out_channels, channels, k, k, generator=generator, dtype=torch.float64)
    x = torch.randn(1, channels, size, size, generator=generator, dtype=torch.float64)
    matrix = conv_matrix(w, (size, size))
    y = conv(x, w, method="direct")
    product = (matrix @ x.flatten().unsqueeze(1)).squeeze(1)
    dense = matrix.to_dense()
    rows_are_kernel = all(
        sorted(row[row != 0].tolist()) == sorted(w[o].flatten()[w[o].flatten() != 0].tolist())
        for o, row in zip(range(out_channels), dense[:: dense.shape[0] // out_channels])
    )
    nnz = int((dense != 0).sum())
    return {
        "input": f"{channels}x{size}x{size}",
        "kernel": f"{out_channels}x{channels}x{k}x{k}",
        "rows": dense.shape[0],
        "columns": dense.shape[1],
        "nonzeros": nnz,
        "density": nnz / dense.numel(),
        "max_error": (product - y.flatten()).abs().max().item(),
        "rows_are_the_kernel": rows_are_kernel,
        "kernel_weights": w.numel(),
        "dense_entries": dense.numel(),
        "conv_multiply_adds": y.numel() * channels * k * k,
        "dense_multiply_adds": dense.numel(),
    }, dense


def run(settings: Settings) -> Result:
    small, dense = _example(1, 1, 6, 3, settings.seed)
    large, _ = _example(3, 16, 16 if settings.quick else 28, 5, settings.seed + 1)
    records = [small, large]
    figures = Figures(settings.out, NAME)
    figure = figures.new(9, 3.6)
    left, right = figure.subplots(1, 2, width_ratios=[2, 1])
    left.imshow(dense.numpy(), cmap="coolwarm", vmin=-3, vmax=3, interpolation="nearest")
    left.set_title("conv_matrix: 3x3 kernel on a 6x6 input (16 x 36)")
    left.set_xlabel("input cell")
    left.set_ylabel("output cell")
    labels = ["kernel", "dense matrix"]
    right.bar(
        labels, [large["conv_multiply_adds"], large["dense_multiply_adds"]], color=["#6a8", "#c64"]
    )
    right.set_yscale("log")
    right.set_title("multiply-adds")
    right.set_xlabel(f"{large['input']} -> 16 maps")
    figures.save(
        figure,
        "pattern",
        "Left: every row of the matrix holds the same nine "
        "weights, shifted (colour: weight; grey: zero). Right: the cost of the "
        "kernel against a dense layer of the same shape.",
    )
    return Result.judged(NAME, TITLE, CLAIM, verdict(records), records, figures)
