"""MNIST's IDX files (also Fashion-MNIST, KMNIST, EMNIST): ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
plain or gzipped (``.gz``).

The format: two zero bytes, a type code (``0x08``: unsigned bytes), the number of dims,
then each dim as a big-endian int32, then the values.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from gridconv.data.embedded import Split

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"mnist-idx: {folder} has no {name} (or {name}.gz); an IDX folder holds "
        f"{', '.join(n for pair in FILES.values() for n in pair)}, plain or gzipped."
    )


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The unsigned-byte array of one IDX file with ``ndim`` dims, checked against its header.

    Shape:
        Output: the header's sizes, e.g. ``(N, 28, 28)`` for images, ``(N,)`` for labels.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"mnist-idx: cannot read {path}: {err}.") from err
    expected_magic = bytes([0, 0, 0x08, ndim])
    if raw[:4] != expected_magic:
        raise ValueError(
            f"mnist-idx: {path} does not start with the IDX magic number "
            f"0x{expected_magic.hex()} (unsigned bytes, {ndim} dims); it starts with "
            f"0x{raw[:4].hex() or 'nothing'}."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"mnist-idx: {path} ends inside its header ({len(raw)} bytes).")
    shape = tuple(int(v) for v in np.frombuffer(raw[4:header], dtype=">i4"))
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise ValueError(
            f"mnist-idx: {path} has {len(raw) - header} bytes of data but its header says "
            f"{' x '.join(map(str, shape))} = {size}."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_idx(folder: str | Path) -> Split:
    """The train and test sets of an IDX folder, images scaled to [0, 1].

    Shape:
        images ``(N, 1, H, W)`` float32, labels ``(N,)`` int64.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"mnist-idx: {root} is not a directory.")
    sets = []
    for images_name, labels_name in FILES.values():
        images_path, labels_path = _find(root, images_name), _find(root, labels_name)
        images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
        if len(images) != len(labels):
            raise ValueError(
                f"mnist-idx: {images_path} has {len(images)} images but {labels_path} has "
                f"{len(labels)} labels."
            )
        x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
        sets.append(TensorDataset(x, torch.from_numpy(labels.astype(np.int64))))
    return Split(*sets)
