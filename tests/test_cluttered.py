"""Translated and cluttered canvases (Mnih et al. 2014): placement, clutter, determinism,
the data specs, and bad input."""

from __future__ import annotations

import pytest
import torch

import gridconv as gc
from gridconv.cli import main


def digits(n: int = 12, size: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return 0.1 + 0.9 * torch.rand(n, 1, size, size, generator=g)  # no zero pixel


def test_a_translated_canvas_holds_the_digit_fully_inside_at_its_position():
    images = digits()
    x, y, where = gc.data.cluttered(
        images, torch.arange(12), canvas=30, pieces=0, generator=torch.Generator().manual_seed(0)
    )
    assert x.shape == (12, 1, 30, 30) and torch.equal(y, torch.arange(12))
    assert ((where >= 0) & (where <= 20)).all()
    assert len({tuple(p) for p in where.tolist()}) > 6  # the places vary
    for n, (r, c) in enumerate(where.tolist()):
        torch.testing.assert_close(x[n, :, r : r + 10, c : c + 10], images[n])
        rest = x[n].clone()
        rest[:, r : r + 10, c : c + 10] = 0
        assert rest.abs().max() == 0


def test_clutter_adds_pieces_of_other_digits_clipped_to_one():
    images = digits()
    g = torch.Generator().manual_seed(1)
    x, _, where = gc.data.cluttered(images, torch.arange(12), canvas=40, pieces=4, generator=g)
    assert x.min() >= 0 and x.max() <= 1
    for n, (r, c) in enumerate(where.tolist()):
        outside = x[n].clone()
        outside[:, r : r + 10, c : c + 10] = 0
        lit = int((outside > 0).sum())
        assert 0 < lit <= 4 * 8 * 8  # some clutter outside the digit, at most 4 pieces' worth


def test_the_same_generator_gives_the_same_canvases():
    images, labels = digits(), torch.arange(12)

    def make(seed: int):
        return gc.data.cluttered(images, labels, generator=torch.Generator().manual_seed(seed))

    a, b, c = make(3), make(3), make(4)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_canvas_specs_load_and_train_from_the_command_line(tmp_path):
    split = gc.data.load("translated:mnist5k")
    x, y = split.train.tensors
    assert x.shape == (4000, 1, 60, 60) and y.shape == (4000,)
    # a translated digit keeps all its ink: the canvases are the digits moved
    mnist = gc.data.load("mnist5k").train.tensors[0]
    torch.testing.assert_close(x.sum((1, 2, 3)), mnist.sum((1, 2, 3)))
    again = gc.data.load("cluttered:mnist5k").test.tensors[0]
    assert torch.equal(again, gc.data.load("cluttered:mnist5k").test.tensors[0])
    with pytest.raises(ValueError, match="cluttered:mnist5k, translated:mnist5k"):
        gc.data.load("cluttered:digits")  # the message names the canvases there are


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(canvas=8), ValueError, "canvas"),
        (dict(pieces=-1), ValueError, "pieces"),
        (dict(piece_size=11), ValueError, "piece_size"),
        (dict(piece_size=0), ValueError, "piece_size"),
        (dict(labels=torch.arange(3)), ValueError, "labels"),
        (dict(images=[1, 2]), TypeError, "images"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    args = {"images": digits(), "labels": torch.arange(12), **kwargs}
    images, labels = args.pop("images"), args.pop("labels")
    with pytest.raises(error, match=match):
        gc.data.cluttered(images, labels, **args)


def test_the_train_command_accepts_the_canvas_specs(tmp_path, capsys):
    code = main(
        ["train", "--model", "mlp", "--data", "translated:mnist5k", "--epochs", "1",
         "--batch-size", "256", "--out", str(tmp_path / "run")]
    )  # fmt: skip
    assert code == 0 and (tmp_path / "run" / "result.json").exists()
