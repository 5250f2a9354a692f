"""Data: the embedded sets (nothing is downloaded) and loaders for real formats.

``load(spec)`` takes ``"mnist5k"``, ``"digits"``, ``"cluttered:mnist5k"``,
``"translated:mnist5k"``, ``"mnist-idx:DIR"``, ``"cifar10:DIR"`` or ``"folder:DIR"`` and
returns ``Split(train, test)`` of ``TensorDataset`` s: float images in [0, 1]
``(N, C, H, W)`` and int64 labels ``(N,)``. Loaders never execute data.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from gridconv._checks import check_int, describe
from gridconv.data.cifar import load_cifar10
from gridconv.data.cluttered import TEST_SEED, TRAIN_SEED, cluttered
from gridconv.data.embedded import EMBEDDED, Split, load_digits, load_mnist5k, mnist5k_path
from gridconv.data.folder import load_folder
from gridconv.data.idx import load_idx
from gridconv.data.images import (
    IMAGE_SUFFIXES,
    NATURAL_IMAGES,
    SAMPLE_IMAGES,
    natural_images,
    read_images,
)

FORMATS = ("mnist-idx", "cifar10", "folder")
# canvases made from an embedded set (Mnih et al. 2014): 60 x 60, with 4 pieces of clutter
# of 8 x 8, or none (translated); the same canvases every time (seeded per split)
CANVASES = ("cluttered:mnist5k", "translated:mnist5k")
NAMES = (*EMBEDDED, *CANVASES)  # the data sets that need no path


def describe_specs() -> str:
    """The valid specs, for error messages and ``--help`` (the canvases made from them,
    :data:`CANVASES`, are named apart)."""
    return ", ".join([*EMBEDDED, *(f"{f}:DIR" for f in FORMATS)])


def check_spec(spec: object) -> str:
    """``spec`` names a data set: an embedded name or ``FORMAT:DIR``."""
    if not isinstance(spec, str):
        raise TypeError(f"`spec` must be a data set name (str), got {describe(spec)}.")
    kind, _, path = spec.partition(":")
    if spec not in NAMES and (kind not in FORMATS or not path):
        raise ValueError(
            f"`spec` must be one of {describe_specs()}; got {spec!r}. Canvases made from "
            f"them: {', '.join(CANVASES)}."
        )
    return spec


def load(spec: str, *, image_size: int = 32, gray: bool = False) -> Split:
    """Load a data set by spec.

    Args:
        spec: ``"mnist5k"`` (the embedded 5,000 MNIST digits, 4,000 / 1,000), ``"digits"``
            (scikit-learn's 8x8 digits), ``"cluttered:mnist5k"`` and
            ``"translated:mnist5k"`` (those digits on 60 x 60 canvases, with 4 pieces of
            8 x 8 clutter or none; see :func:`cluttered`), ``"mnist-idx:DIR"`` (the four
            IDX files, gzipped or not; also Fashion-MNIST), ``"cifar10:DIR"`` (the python
            batches) or ``"folder:DIR"`` (a folder per class).
        image_size, gray: for ``folder:``: the side images are resized to, and whether to
            keep only their luminance.

    Returns:
        ``Split(train, test)``.

    Shape:
        images ``(N, C, H, W)`` float32 in [0, 1], labels ``(N,)`` int64.

    Raises:
        TypeError: ``spec`` is not a string.
        ValueError: an unknown spec (the message lists the valid ones), a corrupt file.
        FileNotFoundError: a missing folder or file, or the package that ships the data.
    """
    check_spec(spec)
    if spec == "mnist5k":
        return load_mnist5k()
    if spec == "digits":
        return load_digits()
    if spec in CANVASES:
        kind, _, source = spec.partition(":")
        pieces = 4 if kind == "cluttered" else 0
        splits = []
        for part, seed in zip(load(source), (TRAIN_SEED, TEST_SEED)):
            generator = torch.Generator().manual_seed(seed)
            x, y, _ = cluttered(*part.tensors, pieces=pieces, generator=generator)
            splits.append(TensorDataset(x, y))
        return Split(*splits)
    kind, _, path = spec.partition(":")
    if kind == "mnist-idx":
        return load_idx(Path(path))
    if kind == "cifar10":
        return load_cifar10(Path(path))
    return load_folder(
        Path(path), image_size=check_int("image_size", image_size, minimum=1), gray=gray
    )


__all__ = [
    "CANVASES",
    "EMBEDDED",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "NAMES",
    "NATURAL_IMAGES",
    "SAMPLE_IMAGES",
    "Split",
    "check_spec",
    "cluttered",
    "describe_specs",
    "load",
    "load_cifar10",
    "load_digits",
    "load_folder",
    "load_idx",
    "load_mnist5k",
    "mnist5k_path",
    "natural_images",
    "read_images",
]
