"""method="auto" and planning: the cost model's choices, measuring, caching, wisdom files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings

import pytest
import torch

import gridconv as gc
import gridconv._atomic
from gridconv.functional._spec import setup
from gridconv.functional.methods import REGISTRY, base, direct
from gridconv.functional.methods import planner as plan
from gridconv.functional.methods.base import Workload
from gridconv.functional.methods.fft import plan as fft_plan
from gridconv.functional.methods.fft import transforms as fft_transforms


@pytest.fixture(autouse=True)
def fresh_plans():
    plan.clear()
    yield
    plan.clear()


def gaussian(k: int, channels: int = 1) -> torch.Tensor:
    t = torch.linspace(-2, 2, k)
    g = torch.exp(-(t**2))
    return torch.outer(g, g).expand(channels, 1, k, k).contiguous()


def favour(monkeypatch, method):
    """Make the cost model rate ``method`` free; returns the real ``plan.estimates``."""
    real = plan.estimates

    def estimates(*args):
        times = real(*args)
        times[method] = 0.0
        return times

    monkeypatch.setattr(plan, "estimates", estimates)
    return real


def test_cost_model_picks_direct_for_small_and_fft_for_large_kernels():
    small = gc.functional.auto_method_for(
        torch.randn(8, 16, 64, 64), torch.randn(32, 16, 3, 3), padding="same"
    )
    large = gc.functional.auto_method_for(
        torch.randn(1, 1, 512, 512), torch.randn(1, 1, 63, 63), padding="same"
    )
    assert (small, large) == ("direct", "fft")


@pytest.mark.parametrize(
    "x_shape, channels_out, groups, last_jit",
    [
        ((8, 16, 64, 64), 32, 1, 8),  # measured: 94 GMAC/s at 8 x 8, 42 at 9 x 9
        ((4, 8, 65536), 8, 1, 8),  # 32 at 8 taps, 17 at 9
        ((8, 32, 64, 64), 32, 32, 10),  # depthwise: 1.8-2.6 ms up to 10 x 10, 50 ms at 11
    ],
)
def test_direct_is_modelled_as_jit_up_to_the_widest_kernel_onednn_jits(
    x_shape, channels_out, groups, last_jit
):
    """Per multiply-add, direct's estimate stays flat up to the last JIT kernel size and
    jumps after it, as the measured times do (the model said 3x too slow at 8 x 8)."""
    x = torch.randn(x_shape)
    d = x.ndim - 2

    def per_mac(k: int) -> float:
        w = torch.randn(channels_out, x.shape[1] // groups, *[k] * d)
        kw = {"stride": 1, "dilation": 1, "padding_mode": "zeros"}
        _, spec, _ = setup(x, w, None, padding="same", groups=groups, **kw)
        return direct.seconds(Workload(x.shape[0], channels_out, spec)) / k**d

    assert per_mac(last_jit) < 1.3 * per_mac(last_jit - 1)
    assert per_mac(last_jit + 1) > 1.5 * per_mac(last_jit)


def test_cost_model_leaves_out_the_kernel_transform_when_the_spectrum_is_kept(monkeypatch):
    x, w = torch.randn(1, 1, 256, 256), torch.randn(1, 1, 31, 31)
    _, spec, _ = setup(
        x, w, None, stride=1, padding="same", dilation=1, groups=1, padding_mode="zeros"
    )
    anew = fft_plan.seconds(Workload(1, 1, spec))
    kept = fft_plan.seconds(Workload(1, 1, spec, kept=True))
    assert anew / 2 <= kept < anew
    assert plan.plan_key(x, w, spec, False) != plan.plan_key(x, w, spec, False, kept=True)
    seen = []
    real = plan.estimates

    def estimates(work, kept=()):  # what the planner prices the methods with
        seen.append("fft" in kept)
        return real(work, kept)

    def auto(w):
        plan._estimated.clear()  # each call prices afresh
        return gc.functional.auto_method_for(x, w, padding="same")

    monkeypatch.setattr(plan, "estimates", estimates)
    auto(w)  # functional, no gradient: kept
    auto(w.clone().requires_grad_())  # not kept
    with torch.inference_mode():  # no version counter: never kept
        auto(torch.randn(1, 1, 31, 31))
    monkeypatch.setattr(fft_plan, "SMALL_SPECTRUM_BYTES", 0)
    auto(w.clone())  # too large to keep
    assert seen == [True, False, False, False]
    assert REGISTRY["fft"].keeps_kernel is fft_plan.spectrum_kept


def test_auto_takes_the_separable_path_only_for_exactly_separable_kernels(monkeypatch):
    favour(monkeypatch, "separable")
    x = torch.randn(1, 3, 64, 64)
    assert (
        gc.functional.auto_method_for(x, gaussian(15, 3), padding="same", groups=3) == "separable"
    )
    rough = gaussian(15, 3) + 1e-3 * torch.randn(3, 1, 15, 15)
    assert gc.functional.auto_method_for(x, rough, padding="same", groups=3) != "separable"
    trained = gaussian(15, 3).requires_grad_()  # needs a gradient: never the separable path
    assert gc.functional.auto_method_for(x, trained, padding="same", groups=3) != "separable"


def test_what_auto_knows_of_a_kernel_dies_with_it(monkeypatch):
    """The per-kernel answer (separable or not) is kept while the tensor lives, is dropped
    when it dies, and never passes to a later tensor, even one at the same address."""
    favour(monkeypatch, "separable")
    x = torch.randn(1, 3, 32, 32)
    before = len(base.SMALL_CACHES)
    for _ in range(20):  # each blur dies at the end of its turn; its memory is reused
        blur = gaussian(7, 3)
        assert gc.functional.auto_method_for(x, blur, padding="same", groups=3) == "separable"
        assert len(base.SMALL_CACHES) == before + 1
        blur.add_(1e-3 * torch.randn_like(blur))  # no longer separable: the version changed
        assert gc.functional.auto_method_for(x, blur, padding="same", groups=3) != "separable"
        rough = gaussian(7, 3) + 1e-3 * torch.randn(3, 1, 7, 7)
        del blur
        assert gc.functional.auto_method_for(x, rough, padding="same", groups=3) != "separable"
        del rough
    assert len(base.SMALL_CACHES) == before


def test_a_kernels_remembered_choice_follows_the_planner(monkeypatch):
    """auto remembers its choice with the kernel tensor, until the planner is cleared, a
    wisdom file is read, or the kernel changes."""
    x, w = torch.randn(1, 1, 64, 64), torch.randn(1, 1, 9, 9)
    first = gc.functional.auto_method_for(x, w, padding="same")
    other = "fft" if first == "direct" else "direct"
    real = favour(monkeypatch, other)
    assert gc.functional.auto_method_for(x, w, padding="same") == first  # remembered
    plan.clear()
    assert gc.functional.auto_method_for(x, w, padding="same") == other
    monkeypatch.setattr(plan, "estimates", real)
    plan.clear()
    assert gc.functional.auto_method_for(x, w, padding="same") == first
    favour(monkeypatch, other)
    plan._estimated.clear()  # what a new process would estimate; the memo is per kernel
    w.mul_(2.0)  # an in-place change forgets the choice
    assert gc.functional.auto_method_for(x, w, padding="same") == other


def test_auto_never_changes_results_beyond_rounding():
    x = torch.randn(2, 3, 80, 80, dtype=torch.float64)
    for w, groups in [(gaussian(31, 3).double(), 3), (torch.randn(4, 3, 21, 21).double(), 1)]:
        ref = gc.conv(x, w, padding="same", groups=groups, method="direct")
        torch.testing.assert_close(gc.conv(x, w, padding="same", groups=groups), ref)


def test_measuring_is_not_fooled_by_what_the_previous_method_left():
    """A method that runs slowly right after another one (it finds the caches as that one
    left them) is timed on its second call in a row, as it runs in a loop."""
    last = [None]

    def method(name: str, alone: float, after_other: float):
        def run():
            busy = alone if last[0] == name else after_other
            end = time.perf_counter() + busy
            while time.perf_counter() < end:
                pass
            last[0] = name

        return run

    times = plan._time(
        {"a": method("a", 0.0005, 0.003), "b": method("b", 0.0015, 0.0015)},
        torch.device("cpu"),
    )
    assert times["a"] < 0.001 < times["b"]


def test_planning_blocks_nest_and_restore_the_mode():
    assert plan.state()[0] == "estimate"
    block = gc.planning("measure")
    with block:
        assert plan.state()[0] == "measure"
        with gc.planning("estimate"):
            assert plan.state()[0] == "estimate"
        with block:  # one block object, entered again inside itself
            assert plan.state()[0] == "measure"
        assert plan.state()[0] == "measure"
    assert plan.state()[0] == "estimate"
    with pytest.raises(ValueError, match="`mode` must be one of"):
        gc.planning("exhaustive")


def count_timings(monkeypatch) -> list:
    calls = []
    real = plan._time

    def counting(runners, device):
        calls.extend(runners)
        return real(runners, device)

    monkeypatch.setattr(plan, "_time", counting)
    return calls


def test_measure_times_once_per_shape_and_caches(monkeypatch):
    calls = count_timings(monkeypatch)
    x, w = torch.randn(1, 1, 64, 64), torch.randn(1, 1, 9, 9)
    with gc.planning("measure"):
        first = gc.conv(x, w, padding="same")
        timed = len(calls)
        second = gc.conv(x, w, padding="same")
    assert timed >= 2 and len(calls) == timed  # direct and fft timed once, then reused
    torch.testing.assert_close(first, second)
    with gc.planning("measure"):
        gc.conv(torch.randn(2, 1, 64, 64), w, padding="same")  # a new shape: timed again
    assert len(calls) > timed


def test_wisdom_round_trip(tmp_path, monkeypatch):
    path = tmp_path / "wisdom.json"
    x, w = torch.randn(1, 1, 64, 64), torch.randn(1, 1, 9, 9)
    with gc.planning("measure", wisdom=path):
        gc.conv(x, w, padding="same")
    data = json.loads(path.read_text())
    assert data["format"] == "gridconv-wisdom" and len(data["entries"]) == 1
    plan.clear()
    calls = count_timings(monkeypatch)
    with gc.planning("measure", wisdom=path):
        gc.conv(x, w, padding="same")
    assert calls == []  # the choice came from the file


@pytest.mark.parametrize("content", ["{not json", '{"some": "other tool"}', "\x00\xff binary"])
def test_corrupt_or_foreign_wisdom_warns_and_is_left_alone(tmp_path, content):
    path = tmp_path / "wisdom.json"
    path.write_text(content, errors="surrogateescape")
    x, w = torch.randn(1, 1, 32, 32), torch.randn(1, 1, 5, 5)
    with pytest.warns(UserWarning, match="gridconv"), gc.planning("measure", wisdom=path):
        out = gc.conv(x, w, padding="same")
    assert out.shape == (1, 1, 32, 32)
    assert path.read_text(errors="surrogateescape") == content


def test_wisdom_of_another_version_is_ignored_and_replaced(tmp_path):
    path = tmp_path / "wisdom.json"
    path.write_text(
        json.dumps({"format": "gridconv-wisdom", "version": 99, "entries": {"k": "fft"}})
    )
    with pytest.warns(UserWarning, match="another version"), gc.planning("measure", wisdom=path):
        gc.conv(torch.randn(1, 1, 32, 32), torch.randn(1, 1, 5, 5))
    data = json.loads(path.read_text())
    assert data["version"] == plan.WISDOM_VERSION and "k" not in data["entries"]


def test_unwritable_wisdom_path_warns(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = blocker / "wisdom.json"  # its parent is a file: nothing can be written there
    with (
        pytest.warns(UserWarning, match="could not save wisdom"),
        gc.planning("measure", wisdom=path),
    ):
        gc.conv(torch.randn(1, 1, 32, 32), torch.randn(1, 1, 5, 5))


def test_read_only_directory_warns(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(gridconv._atomic.tempfile, "mkstemp", refuse)
    with (
        pytest.warns(UserWarning, match="could not save wisdom"),
        gc.planning("measure", wisdom=tmp_path / "w.json"),
    ):
        gc.conv(torch.randn(1, 1, 32, 32), torch.randn(1, 1, 5, 5))
    assert not (tmp_path / "w.json").exists()


WRITER = """
import sys, warnings
from gridconv.functional.methods import REGISTRY, wisdom
warnings.simplefilter("error")
path, tag = sys.argv[1], sys.argv[2]
for i in range(40):
    wisdom.write(__import__("pathlib").Path(path), {f"{tag}-{i}": "fft"}, REGISTRY)
"""


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "wisdom.json"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag]) for tag in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    entries = json.loads(path.read_text())["entries"]
    assert set(entries) == {f"{tag}-{i}" for tag in "ab" for i in range(40)}


def test_bad_planning_arguments():
    with (
        pytest.raises(ValueError, match=r"`mode` must be one of 'estimate', 'measure'"),
        gc.planning("exhaustive"),
    ):
        pass
    with (
        pytest.raises(TypeError, match=r"`wisdom` must be a path"),
        gc.planning("measure", wisdom=3),
    ):
        pass


def test_eval_layers_cache_the_transformed_kernel_until_the_weight_changes(monkeypatch):
    prepared = []
    real = fft_transforms.prepare_fft

    def spy(w, spec):
        prepared.append(spec)
        return real(w, spec)

    monkeypatch.setattr(fft_transforms, "prepare_fft", spy)
    layer = gc.nn.Conv2d(2, 3, 15, padding="same", method="fft", bias=False).eval()
    x = torch.randn(1, 2, 40, 40)
    with torch.no_grad():
        first = layer(x)
        layer(x)
        assert len(prepared) == 1
        layer.weight.mul_(2)  # an in-place update, as an optimizer step does
        second = layer(x)
    assert len(prepared) == 2
    torch.testing.assert_close(second, 2 * first, rtol=1e-4, atol=1e-4)
    layer.load_state_dict({"weight": torch.zeros_like(layer.weight)})
    with torch.no_grad():
        assert layer(x).abs().max() == 0
    layer.train()
    layer(x)
    layer(x)
    assert len(prepared) == 5  # training mode never caches


def test_functional_calls_keep_the_last_small_spectrum_with_the_kernel(monkeypatch):
    prepared = []
    real = fft_transforms.prepare_fft
    monkeypatch.setattr(
        fft_transforms, "prepare_fft", lambda w, spec: prepared.append(1) or real(w, spec)
    )

    def fft(x, w):
        return gc.conv(x, w, padding="same", method="fft")

    x, w = torch.randn(1, 2, 40, 40), torch.randn(3, 2, 15, 15)
    first = fft(x, w)
    fft(x, w)
    assert len(prepared) == 1
    w.mul_(2)  # changed in place: transformed again
    torch.testing.assert_close(fft(x, w), 2 * first, rtol=1e-4, atol=1e-4)
    assert len(prepared) == 2
    other = torch.randn(1, 2, 50, 50)
    fft(other, w)
    fft(other, w)
    fft(x, w)  # only the last input size's spectrum is kept
    assert len(prepared) == 4
    needs_grad = w.clone().requires_grad_()
    fft(x, needs_grad)
    fft(x, needs_grad).sum().backward()  # never kept: the gradient flows through the transform
    assert len(prepared) == 6 and needs_grad.grad.abs().sum() > 0
    monkeypatch.setattr(fft_plan, "SMALL_SPECTRUM_BYTES", 0)  # too large to keep
    w2 = torch.randn(3, 2, 15, 15)
    fft(x, w2)
    fft(x, w2)
    assert len(prepared) == 8


def test_kernels_made_under_inference_mode_are_never_kept():
    """Inference tensors have no version counter, so an in-place change could not be seen:
    nothing is kept for them, and every method still runs."""
    g = torch.exp(-(torch.linspace(-2, 2, 15) ** 2))
    with torch.inference_mode():
        x, w = torch.randn(1, 1, 64, 64), torch.outer(g, g)[None, None].clone()
        ref = gc.conv(x, w, padding="same", method="direct")
        for method in ("auto", "fft", "separable"):
            torch.testing.assert_close(gc.conv(x, w, padding="same", method=method), ref)
        w.mul_(2)
        torch.testing.assert_close(gc.conv(x, w, padding="same", method="fft"), 2 * ref)


def test_eval_cache_is_skipped_when_the_weight_needs_a_gradient():
    layer = gc.nn.Conv2d(1, 1, 11, padding="same", method="fft").eval()
    loss = layer(torch.randn(1, 1, 30, 30)).square().sum()
    loss.backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_a_layer_with_a_cache_still_pickles_and_copies(tmp_path):
    import copy

    layer = gc.nn.Conv2d(1, 2, 9, padding="same").eval()
    with torch.no_grad():
        layer(torch.randn(1, 1, 20, 20))
    clone = copy.deepcopy(layer)
    torch.save(layer, tmp_path / "layer.pt")
    x = torch.randn(1, 1, 20, 20)
    torch.testing.assert_close(clone(x), layer(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.load(tmp_path / "layer.pt", weights_only=False)
    torch.testing.assert_close(loaded(x), layer(x))
