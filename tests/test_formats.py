"""Loaders for real data formats, tested on small files the tests write themselves."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

import gridconv as gc


def write_idx(path, array: np.ndarray, *, magic: bytes | None = None, gz: bool = False) -> None:
    header = magic or bytes([0, 0, 0x08, array.ndim])
    header += b"".join(struct.pack(">i", n) for n in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def idx_folder(root, *, gz: bool):
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", 12), ("t10k", 5)):
        images = rng.integers(0, 256, (n, 6, 7))
        labels = rng.integers(0, 10, n)
        write_idx(root / f"{prefix}-images-idx3-ubyte", images, gz=gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, gz=gz)
        arrays[prefix] = (images, labels)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_plain_or_gzipped(tmp_path, gz):
    arrays = idx_folder(tmp_path, gz=gz)
    train, test = gc.data.load(f"mnist-idx:{tmp_path}")
    images, labels = train.tensors
    assert images.shape == (12, 1, 6, 7) and images.dtype == torch.float32
    np.testing.assert_allclose(images[:, 0].numpy(), arrays["train"][0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), arrays["train"][1])
    assert test.tensors[0].shape == (5, 1, 6, 7)


def test_mnist_idx_errors_name_the_file_and_what_was_expected(tmp_path):
    idx_folder(tmp_path, gz=False)
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    write_idx(bad, np.zeros(5), magic=bytes([0, 0, 0x0D, 1]))
    with pytest.raises(
        ValueError, match=r"t10k-labels-idx1-ubyte does not start with the IDX magic"
    ):
        gc.data.load(f"mnist-idx:{tmp_path}")
    write_idx(bad, np.zeros(5))
    bad.write_bytes(bad.read_bytes()[:-2])
    with pytest.raises(ValueError, match=r"has 3 bytes of data but its header says 5"):
        gc.data.load(f"mnist-idx:{tmp_path}")
    write_idx(bad, np.zeros(4))
    with pytest.raises(ValueError, match=r"has 5 images but .*t10k-labels-idx1-ubyte has 4 labels"):
        gc.data.load(f"mnist-idx:{tmp_path}")
    bad.unlink()
    with pytest.raises(FileNotFoundError, match=r"no t10k-labels-idx1-ubyte \(or .*\.gz\)"):
        gc.data.load(f"mnist-idx:{tmp_path}")


def cifar_folder(root, n=4):
    rng = np.random.default_rng(1)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
            b"labels": rng.integers(0, 10, n).tolist(),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
        }
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))


def test_cifar10_batches(tmp_path):
    cifar_folder(tmp_path)
    train, test = gc.data.load(f"cifar10:{tmp_path}")
    assert train.tensors[0].shape == (20, 3, 32, 32) and test.tensors[0].shape == (4, 3, 32, 32)
    raw = pickle.loads((tmp_path / "data_batch_2").read_bytes())
    np.testing.assert_allclose(
        train.tensors[0][4:8].numpy(), raw[b"data"].reshape(4, 3, 32, 32) / 255.0, rtol=1e-6
    )
    assert train.tensors[1][4:8].tolist() == raw[b"labels"]


class Exploit:
    """Unpickling this would create a file (if the loader executed data)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_cifar10_refuses_a_pickle_that_would_run_code(tmp_path):
    cifar_folder(tmp_path)
    target = tmp_path / "pwned"
    crafted = {b"data": Exploit(target), b"labels": [0]}
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps(crafted, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_3 is not a CIFAR-10 python batch: refused"):
        gc.data.load(f"cifar10:{tmp_path}")
    assert not target.exists()
    os_call = b"cos\nsystem\n(S'touch " + str(target).encode() + b"'\ntR."
    (tmp_path / "data_batch_3").write_bytes(os_call)
    with pytest.raises(ValueError, match=r"refused to load os.system"):
        gc.data.load(f"cifar10:{tmp_path}")
    assert not target.exists()


def test_cifar10_errors(tmp_path):
    cifar_folder(tmp_path)
    (tmp_path / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks test_batch; a CIFAR-10 folder holds"):
        gc.data.load(f"cifar10:{tmp_path}")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8)}))
    with pytest.raises(ValueError, match=r"rows must be 3072 bytes"):
        gc.data.load(f"cifar10:{tmp_path}")
    (tmp_path / "test_batch").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"test_batch is not a CIFAR-10 python batch"):
        gc.data.load(f"cifar10:{tmp_path}")


def write_png(path, size, colour):
    from PIL import Image

    Image.new("RGB", size, colour).save(path)


def test_class_folders_resized_and_split(tmp_path):
    for label, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / label).mkdir()
        for i in range(5):
            write_png(tmp_path / label / f"{i}.png", (20 + i, 15), colour)
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    train, test = gc.data.load(f"folder:{tmp_path}", image_size=12)
    assert train.tensors[0].shape == (8, 3, 12, 12) and test.tensors[0].shape == (2, 3, 12, 12)
    images, labels = train.tensors
    cats = images[labels == 0]
    torch.testing.assert_close(cats[:, 0], torch.ones_like(cats[:, 0]))  # red, resized
    assert sorted(test.tensors[1].tolist()) == [0, 1]  # stratified
    gray, _ = gc.data.load(f"folder:{tmp_path}", image_size=8, gray=True)
    assert gray.tensors[0].shape == (8, 1, 8, 8)


def test_class_folders_with_a_given_split_and_errors(tmp_path):
    for part, count in (("train", 3), ("test", 2)):
        for label in ("a", "b"):
            (tmp_path / part / label).mkdir(parents=True)
            for i in range(count):
                write_png(tmp_path / part / label / f"{i}.png", (9, 9), (i * 40, 0, 0))
    train, test = gc.data.load(f"folder:{tmp_path}", image_size=9)
    assert len(train) == 6 and len(test) == 4
    (tmp_path / "test" / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read the image .*broken.png"):
        gc.data.load(f"folder:{tmp_path}")
    with pytest.raises(FileNotFoundError, match=r"no class subfolders"):
        gc.data.load(f"folder:{tmp_path / 'train' / 'a'}")
    with pytest.raises(FileNotFoundError, match=r"is not a directory"):
        gc.data.load(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(ValueError, match=r"`spec` must be one of .*folder:DIR; got 'folder:'"):
        gc.data.load("folder:")
