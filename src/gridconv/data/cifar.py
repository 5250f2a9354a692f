"""CIFAR-10's python batches (``data_batch_1`` ... ``data_batch_5``, ``test_batch``), read
with an unpickler that builds only the plain containers and NumPy arrays of that format:
a crafted file that would run code is refused, never executed."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from gridconv.data.embedded import Split

TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST = ("test_batch",)
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol 2 writes bytes from Python 3; builds bytes only
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Dicts, lists, strings, bytes, numbers and NumPy arrays; no other global."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refused to load {module}.{name}: a CIFAR-10 batch holds only dicts, lists and "
            "NumPy arrays"
        )


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one batch file, checked.

    Shape:
        Output: images ``(N, 3, 32, 32)`` uint8, labels ``(N,)`` int64.
    """
    try:
        with open(path, "rb") as f:
            batch = _RestrictedUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"cifar10: {path} is not a CIFAR-10 python batch: {err}.") from err
    if not isinstance(batch, dict):
        raise ValueError(f"cifar10: {path} holds a {type(batch).__name__}, expected a dict.")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise ValueError(f"cifar10: {path}: 'data' must be a uint8 array (N, 3072).")
    if data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"cifar10: {path}: 'data' rows must be 3072 bytes (3 x 32 x 32), got {data.shape[1]}."
        )
    if not isinstance(labels, list | np.ndarray) or len(labels) != len(data):
        raise ValueError(f"cifar10: {path}: 'labels' must be a list of {len(data)} ints.")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise ValueError(f"cifar10: {path}: 'labels' must be ints in 0..9.")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _load(root: Path, names: tuple[str, ...]) -> TensorDataset:
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"cifar10: {root} lacks {', '.join(missing)}; a CIFAR-10 folder holds "
            f"{', '.join(TRAIN + TEST)} (the python version, cifar-10-batches-py)."
        )
    parts = [read_batch(root / n) for n in names]
    images = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
    labels = np.concatenate([p[1] for p in parts])
    return TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))


def load_cifar10(folder: str | Path) -> Split:
    """CIFAR-10's 50,000 training and 10,000 test images, scaled to [0, 1].

    Shape:
        images ``(N, 3, 32, 32)`` float32, labels ``(N,)`` int64.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"cifar10: {root} is not a directory.")
    return Split(_load(root, TRAIN), _load(root, TEST))
