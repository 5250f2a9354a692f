"""The method objects, the registry of process-wide memos, and ConvSpec's derived sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import gridconv as gc
from gridconv import _memo
from gridconv.functional._spec import setup
from gridconv.functional.conv import method_names
from gridconv.functional.methods import REGISTRY, base, direct, register, unregister
from gridconv.functional.methods import planner as plan
from gridconv.functional.methods.base import Method, Workload


def test_every_method_is_registered_once_in_its_order():
    assert list(REGISTRY) == ["direct", "fft", "separable"]  # ties go to the earlier
    assert ("auto", *REGISTRY) == gc.functional.METHODS
    assert all(name == method.name for name, method in REGISTRY.items())


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
    from gridconv.functional.methods.fft.plan import tile_plan

    assert tile_plan.cache_info().currsize == 0
    # and everything works again from cold
    torch.testing.assert_close(
        gc.conv(x, w, padding="same"), gc.conv(x, w, padding="same", method="direct"),
        rtol=1e-4, atol=1e-4,
    )  # fmt: skip


@pytest.fixture
def winograd():
    """A stand-in method, registered for the test: direct's run under another name, whose
    cost the test sets (``winograd.cost``) and whose runs it counts (``winograd.runs``)."""

    class StandIn:
        cost = 1.0
        runs = 0

    def run(x, w, spec, cache):
        StandIn.runs += 1
        return direct.run(x, w, spec, cache)

    def seconds(work: Workload) -> float:
        return StandIn.cost

    register(Method(name="winograd", run=run, seconds=seconds))
    yield StandIn
    unregister("winograd")


def test_a_new_method_is_one_record(winograd):
    """A registered method is a choice of conv(method=...), of auto when its cost is lowest,
    and a candidate that planning("measure") times: what adding Winograd would take."""
    x, w = torch.randn(1, 2, 16, 16), torch.randn(3, 2, 3, 3)
    ref = F.conv2d(x, w, padding=1)
    torch.testing.assert_close(gc.conv(x, w, padding="same", method="winograd"), ref)
    assert "winograd" in method_names()
    assert gc.nn.Conv2d(2, 3, 3, method="winograd").method == "winograd"
    winograd.cost = 1.0  # a second: the others are far cheaper
    assert gc.functional.auto_method_for(x, w, padding="same") != "winograd"
    winograd.cost = 0.0
    plan.clear()
    assert gc.functional.auto_method_for(x, w, padding="same") == "winograd"
    winograd.runs = 0
    timed = []
    real = plan._time

    def spy(candidates, device):
        timed.extend(candidates)
        return real(candidates, device)

    plan._time = spy
    try:
        with gc.planning("measure"):
            torch.testing.assert_close(gc.conv(x, w, padding="same"), ref)
    finally:
        plan._time = real
    assert "winograd" in timed and winograd.runs >= 5  # measured in rounds, then run


def test_the_registry_refuses_what_is_not_a_method():
    with pytest.raises(TypeError, match="method"):
        register("winograd")
    with pytest.raises(ValueError, match="winograd"):
        unregister("winograd")
    with pytest.raises(ValueError, match="winograd"):
        gc.conv(torch.randn(1, 1, 8), torch.randn(1, 1, 3), method="winograd")


def test_constants_are_read_and_set_through_the_registry(winograd):
    """plan.constants() gathers every registered method's tables; set_constants writes into
    the table that holds the name (and a method registered later takes part)."""
    from gridconv.functional.methods.fft import overlap_save
    from gridconv.functional.methods.fft import plan as fft_plan

    found = gc.plan.constants()
    assert found["direct_overhead"] == direct.CPU["direct_overhead"]
    assert found["fft_unit_2d"] == fft_plan.CPU["fft_unit_2d"]
    assert found["fft_compiled_unit"] == overlap_save.CPU["fft_compiled_unit"]
    assert "fft_compiled_unit" not in gc.plan.constants("cuda")  # the compiled path: CPU only
    table = {"winograd_gmacs": 10.0}
    register(Method(name="winograd", run=direct.run, seconds=lambda work: 1.0,
                    constants={"cpu": (table,)}))  # fmt: skip
    old = direct.CPU["direct_overhead"]
    try:
        gc.plan.set_constants({"winograd_gmacs": 20.0, "direct_overhead": 1.0})
        assert table["winograd_gmacs"] == 20.0 and direct.CPU["direct_overhead"] == 1.0
        assert gc.plan.constants()["winograd_gmacs"] == 20.0
    finally:
        direct.CPU["direct_overhead"] = old
    with pytest.raises(ValueError, match="no method has a constant 'nonsense'"):
        gc.plan.set_constants({"nonsense": 1.0})
