"""Images from disk or from scikit-image's wheel, as float tensors in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gridconv._checks import describe

NATURAL_IMAGES = (
    "camera",
    "astronaut",
    "grass",
    "gravel",
    "brick",
    "coffee",
    "chelsea",
    "rocket",
    "moon",
    "coins",
    "clock",
)
# every scikit-image sample that ships in its wheel (others would be downloaded)
SAMPLE_IMAGES = (
    *NATURAL_IMAGES,
    "cat",
    "page",
    "text",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "colorwheel",
    "retina",
)
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
