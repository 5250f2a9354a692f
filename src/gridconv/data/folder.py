"""An image-classification folder: one subfolder per class (``DIR/cat/*.png``,
``DIR/dog/*.jpg``), or ``DIR/train/<class>/`` and ``DIR/test/<class>/`` for a given split.
Images are read with Pillow and resized to one size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from gridconv.data.embedded import Split, stratified_split
from gridconv.data.images import IMAGE_SUFFIXES


def _classes(root: Path) -> list[str]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise FileNotFoundError(
            f"folder: {root} has no class subfolders; expected one folder of images per class."
        )
    return classes


def _read(root: Path, classes: list[str], size: int, gray: bool) -> tuple[np.ndarray, np.ndarray]:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as err:
        raise ImportError(
            "folder: reading images needs Pillow; install it with `pip install pillow` "
            "(or `pip install gridconv[data]`)."
        ) from err
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise FileNotFoundError(f"folder: {root} lacks the class folder {name!r}.")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            try:
                with Image.open(path) as opened:
                    image = opened.convert("L" if gray else "RGB")
                    image = image.resize((size, size), Image.Resampling.BILINEAR)
                    array = np.asarray(image, dtype=np.float32) / 255.0
            except (UnidentifiedImageError, OSError) as err:
                raise ValueError(f"folder: cannot read the image {path}: {err}.") from err
            images.append(array[None] if gray else array.transpose(2, 0, 1))
            labels.append(label)
    if not images:
        raise FileNotFoundError(
            f"folder: no image files ({', '.join(IMAGE_SUFFIXES)}) in the class folders of {root}."
        )
    return np.stack(images), np.array(labels, dtype=np.int64)


def load_folder(folder: str | Path, *, image_size: int = 32, gray: bool = False) -> Split:
    """Images from class folders, resized to ``image_size`` squared, scaled to [0, 1].

    With ``train/`` and ``test/`` subfolders they are the split; otherwise a fixed, seeded,
    stratified 80 % / 20 % split. Classes are the sorted folder names.

    Shape:
        images ``(N, 3, image_size, image_size)`` (``(N, 1, ...)`` with ``gray``), labels
        ``(N,)`` int64.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"folder: {root} is not a directory.")
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = _classes(root / "train")
        parts = [_read(root / part, classes, image_size, gray) for part in ("train", "test")]
        return Split(*(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)) for x, y in parts))
    classes = _classes(root)
    images, labels = _read(root, classes, image_size, gray)
    return stratified_split(images, labels, test_fraction=0.2)
