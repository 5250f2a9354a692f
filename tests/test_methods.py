"""The method objects, the registry of process-wide memos, and ConvSpec's derived sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import gridconv as gc
from gridconv import _memo, plan
from gridconv.functional._spec import setup
from gridconv.functional.methods import REGISTRY, base


def test_every_method_is_registered_once_in_its_order():
    assert list(REGISTRY) == ["direct", "fft", "separable"]
    assert ("auto", *REGISTRY) == gc.functional.METHODS
    assert [m.order for m in REGISTRY.values()] == sorted(m.order for m in REGISTRY.values())


@pytest.mark.parametrize("name", ["direct", "fft", "separable"])
def test_each_method_object_runs_a_convolution(name):
    x, w = torch.randn(2, 3, 20, 17, dtype=torch.float64), torch.randn(4, 3, 5, 3).double()
    xb, spec, _ = setup(
        x, w, None, stride=2, padding="same", dilation=1, groups=1, padding_mode="reflect"
    )
    out = REGISTRY[name].run(xb, w, spec, None)
    ref = F.conv2d(F.pad(x, (1, 1, 1, 2), mode="reflect"), w, stride=2)  # TF-style "same"
    torch.testing.assert_close(out, ref)


def test_conv_spec_carries_the_padded_size_and_the_dilated_span():
    x, w = torch.randn(1, 2, 30, 11), torch.randn(3, 2, 4, 3)
    _, spec, _ = setup(
        x, w, None, stride=1, padding=[(1, 2), (0, 5)], dilation=(3, 2), groups=1,
        padding_mode="zeros",
    )  # fmt: skip
    assert spec.padded_size == (33, 16)
    assert spec.span == (10, 5)


def test_one_clear_forgets_every_memo_and_the_planners_choices():
    x, w = torch.randn(1, 1, 64, 64), torch.randn(1, 1, 9, 9)
    gc.conv(x, w, padding="same")
    gc.fft_conv(x, w, padding="same")
    with gc.planning("measure"):
        gc.conv(x, torch.randn(1, 1, 11, 11), padding="same")
    assert base.SMALL_CACHES and plan._measured
    generation = plan.state()[1]
    names = _memo.names()
    for expected in (
        "specs",
        "valid calls",
        "per-tensor kernel caches",
        "planner: measured choices",
    ):
        assert expected in names
    assert any(n.endswith("tile_plan") for n in names)
    gc.functional.clear_caches()
    assert not base.SMALL_CACHES and not plan._measured and not plan._estimated
    assert plan.state()[1] != generation
    from gridconv.functional.methods.fft import tile_plan

    assert tile_plan.cache_info().currsize == 0
    # and everything works again from cold
    torch.testing.assert_close(
        gc.conv(x, w, padding="same"), gc.conv(x, w, padding="same", method="direct"),
        rtol=1e-4, atol=1e-4,
    )  # fmt: skip


def test_a_new_method_is_one_file(tmp_path, monkeypatch):
    """A module with a METHOD is registered by itself: what adding Winograd would take."""
    from gridconv.functional.methods import discover

    package = tmp_path / "more_methods"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("X = 1\n")  # no METHOD: not a method
    (package / "winograd.py").write_text(
        "from gridconv.functional.methods import direct\n"
        "from gridconv.functional.methods.base import Method\n"
        "METHOD = Method(name='winograd', run=direct.run, seconds=direct.seconds, order=5)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = discover([str(package)], "more_methods")
    assert list(found) == ["winograd"]
    x, w = torch.randn(1, 2, 8, 8), torch.randn(3, 2, 3, 3)
    xb, spec, _ = setup(
        x, w, None, stride=1, padding="same", dilation=1, groups=1, padding_mode="zeros"
    )
    torch.testing.assert_close(found["winograd"].run(xb, w, spec, None), F.conv2d(x, w, padding=1))
