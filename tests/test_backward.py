"""Backward passes: every method's forward and backward against torch's direct convolution,
the FFT method's own backward (gradcheck, gradgradcheck, tiles), and planning for the pass
that runs (forward, or forward + backward)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from torch.autograd import gradcheck, gradgradcheck

import gridconv as gc
from gridconv.functional.methods.base import Workload
from gridconv.functional.methods.fft import plan as fft_plan
from gridconv.functional.methods.fft import transforms as fft_module
from tests.strategies import configs


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    # against at least 1e-3: some gradients are exactly zero (a strided output that skips
    # every input cell), where the FFT leaves rounding of 1e-17
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-3))


@pytest.mark.parametrize("method", ["fft", "separable"])
@pytest.mark.parametrize("untied", [False, True])
@settings(max_examples=20, deadline=None)
@given(c=configs())
def test_every_method_trains_like_torchs_direct_convolution(method, untied, c):
    """Values and the gradients of x, w and the bias (tied or untied), every padding form
    and mode, stride, dilation, groups, 1-3 dims; "direct" is torch's convNd."""
    x, w = c.x().requires_grad_(), c.w().requires_grad_()
    out = gc.conv(x, w, method="direct", **c.kwargs)
    shape = out.shape[1:] if untied else out.shape[1:2]
    bias = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn_like(out)
    ref_out = gc.conv(x, w, bias, method="direct", **c.kwargs)
    ours_out = gc.conv(x, w, bias, method=method, **c.kwargs)
    assert relative_error(ours_out, ref_out) <= 1e-10
    ref = torch.autograd.grad(ref_out, (x, w, bias), g)
    ours = torch.autograd.grad(ours_out, (x, w, bias), g)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        assert relative_error(a, b) <= 1e-10


def test_the_fft_method_has_its_own_backward():
    """One node in the graph, not autograd stepping back through tiles and DFT matrices."""
    x = torch.randn(2, 3, 40, 40, requires_grad=True)
    w = torch.randn(4, 3, 9, 9, requires_grad=True)
    y = gc.conv(x, w, padding="same", method="fft")
    assert type(y.grad_fn).__name__ == "FFTConvBackward"
    assert [type(f).__name__ for f, _ in y.grad_fn.next_functions] == [
        "AccumulateGrad",
        "AccumulateGrad",
    ]


GRAD_CASES = [
    # (x shape, w shape, keywords)
    ((2, 2, 9, 8), (3, 2, 3, 4), dict(stride=2, padding="same", padding_mode="replicate")),
    ((1, 4, 7, 6), (4, 2, 2, 3), dict(padding="full", dilation=(2, 1), groups=2)),
    ((2, 3, 11), (3, 1, 4), dict(padding=[(3, 1)], groups=3, padding_mode="circular")),
    ((1, 2, 4, 5, 4), (2, 2, 2, 3, 2), dict(padding="same", stride=(1, 2, 1))),
    ((2, 2, 10, 9), (2, 2, 3, 3), dict(padding=2, padding_mode="reflect", dilation=2)),
]


@pytest.mark.parametrize("x_shape, w_shape, kw", GRAD_CASES)
def test_fft_gradcheck_and_gradgradcheck(x_shape, w_shape, kw):
    x = torch.randn(x_shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(w_shape, dtype=torch.float64, requires_grad=True)

    def f(x, w):
        return gc.conv(x, w, method="fft", **kw)

    assert gradcheck(f, (x, w))
    assert gradgradcheck(f, (x, w))


@pytest.mark.parametrize(
    "x_shape, w_shape, plan, kw",
    [  # overlap-save tiles forced on small inputs: blocks and lengths per dim
        ((2, 2, 40), (3, 2, 5), ((9,), (16,)), dict(padding="same", stride=2)),
        ((1, 2, 30), (2, 1, 4), ((5,), (8,)), dict(padding="full", groups=2, dilation=1)),
        (
            (1, 2, 13, 12),
            (2, 2, 3, 2),
            ((4, 3), (8, 6)),
            dict(padding="same", padding_mode="reflect"),
        ),
    ],
)
def test_fft_backward_through_overlap_save_tiles(monkeypatch, x_shape, w_shape, plan, kw):
    monkeypatch.setattr(fft_module, "tile_plan", lambda *args: plan)
    x = torch.randn(x_shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(w_shape, dtype=torch.float64, requires_grad=True)

    def f(x, w):
        return gc.conv(x, w, method="fft", **kw)

    g = torch.randn_like(gc.conv(x, w, method="direct", **kw))
    ref = torch.autograd.grad(gc.conv(x, w, method="direct", **kw), (x, w), g)
    ours = torch.autograd.grad(f(x, w), (x, w), g)
    for a, b in zip(ours, ref):
        assert relative_error(a, b) <= 1e-10
    assert gradcheck(f, (x, w))
    assert gradgradcheck(f, (x, w))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fft_gradients_keep_half_precision_dtypes(dtype):
    x = torch.randn(2, 3, 20, 20).to(dtype).requires_grad_()
    w = torch.randn(4, 3, 9, 9).to(dtype).requires_grad_()
    gc.conv(x, w, padding="same", method="fft").float().sum().backward()
    assert x.grad.dtype == dtype and w.grad.dtype == dtype
    x32, w32 = x.detach().float().requires_grad_(), w.detach().float().requires_grad_()
    gc.conv(x32, w32, padding="same", method="direct").sum().backward()
    assert relative_error(w.grad.float(), w32.grad) < 2e-2


def test_one_gradient_at_a_time():
    x = torch.randn(2, 3, 20, 20, dtype=torch.float64)
    w = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    for wants in ((True, False), (False, True)):
        xs, ws = x.clone().requires_grad_(wants[0]), w.clone().requires_grad_(wants[1])
        gc.conv(xs, ws, padding="same", method="fft").sum().backward()
        xr, wr = x.clone().requires_grad_(wants[0]), w.clone().requires_grad_(wants[1])
        gc.conv(xr, wr, padding="same", method="direct").sum().backward()
        for ours, ref in ((xs, xr), (ws, wr)):
            assert (ours.grad is None) == (ref.grad is None)
            if ref.grad is not None:
                assert relative_error(ours.grad, ref.grad) <= 1e-10


# --- planning for the pass that will run ---------------------------------------------------
from gridconv.functional.methods import planner as plan  # noqa: E402


@pytest.fixture
def fresh_plans():
    plan.clear()
    yield
    plan.clear()


def test_the_planner_costs_forward_and_training_calls_differently(fresh_plans):
    """Depthwise 7 x 7: oneDNN's forward is fast and its backward 24-50x slower (measured),
    so auto takes the direct method for inference and the FFT for training."""
    x, w = torch.randn(8, 64, 56, 56), torch.randn(64, 1, 7, 7)
    _, spec, _ = gc.functional._spec.setup(
        x, w, None, stride=1, padding="same", dilation=1, groups=64, padding_mode="zeros"
    )
    forward = plan.estimates(Workload(8, 64, spec))
    training = plan.estimates(Workload(8, 64, spec, grads=(True, True)))
    w_only = plan.estimates(Workload(8, 64, spec, grads=(False, True)))
    for name in forward:
        assert forward[name] < w_only[name] < training[name]
    assert min(forward, key=forward.get) == "direct"
    assert min(training, key=training.get) == "fft"
    kw = dict(padding="same", groups=64)
    assert gc.functional.auto_method_for(x, w, **kw) == "direct"
    trained = w.clone().requires_grad_()
    assert gc.functional.auto_method_for(x, trained, **kw) == "fft"
    with torch.no_grad():  # no gradient will be computed: the forward's choice
        assert gc.functional.auto_method_for(x, trained, **kw) == "direct"


def test_measuring_times_the_pass_that_will_run(monkeypatch, fresh_plans):
    seen = {}
    real = plan._time

    def spy(candidates, device):
        for name, run in candidates.items():
            seen.setdefault(name, []).append(run().requires_grad)
        return real(candidates, device)

    monkeypatch.setattr(plan, "_time", spy)
    x, w = torch.randn(2, 3, 40, 40), torch.randn(4, 3, 9, 9)
    with gc.planning("measure"):
        gc.conv(x, w, padding="same")
        gc.conv(x, w.clone().requires_grad_(), padding="same")
    assert seen["direct"] == [False, True] and seen["fft"] == [False, True]
    keys = sorted(plan._measured)
    assert len(keys) == 2 and keys[0].endswith("|kept")  # functional, fixed: spectrum kept
    assert keys[1] == keys[0].removesuffix("|kept") + "|train-w"


def test_wisdom_of_version_1_is_read_as_forward_choices(tmp_path, fresh_plans):
    import json

    x, w = torch.randn(1, 1, 64, 64), torch.randn(1, 1, 9, 9)
    _, spec, _ = gc.functional._spec.setup(
        x, w, None, stride=1, padding="same", dilation=1, groups=1, padding_mode="zeros"
    )
    key = plan.plan_key(x, w, spec, False, kept=True)
    path = tmp_path / "old.json"
    entry = {"format": "gridconv-wisdom", "version": 1, "entries": {key: "direct"}}
    path.write_text(json.dumps(entry))
    with gc.planning("measure", wisdom=path):
        assert gc.functional.auto_method_for(x, w, padding="same") == "direct"
    saved = json.loads(path.read_text())
    assert saved["version"] == plan.WISDOM_VERSION and saved["entries"][key] == "direct"


# --- zero padding supplied by the circular transform ---------------------------------------
@pytest.mark.parametrize(
    "size, kernel, padding, dilation",
    [
        ((40,), 39, "same", 1),  # long "same": 1.5 L instead of 2 L
        ((30,), 5, [(7, 0)], 1),  # all before
        ((30,), 5, [(0, 9)], 2),  # all after, dilated
        ((12, 11), 3, 6, 1),  # padding wider than the kernel on both sides
        ((9, 10), 4, "full", (2, 1)),
        ((7, 8, 6), 3, [(1, 2), (0, 0), (3, 1)], 1),
    ],
)
def test_zero_padding_supplied_by_the_transform_is_exact(size, kernel, padding, dilation):
    d = len(size)
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, *[kernel] * d, dtype=torch.float64, requires_grad=True)
    kw = dict(padding=padding, dilation=dilation)
    _, spec, _ = gc.functional._spec.setup(
        x, w, None, stride=1, groups=1, padding_mode="zeros", **kw
    )
    prepared = fft_module.prepare_fft(w.detach(), spec)
    assert all(s == b for s, (b, _) in zip(prepared.shifts, spec.pairs))  # untiled: supplied
    out = gc.conv(x, w, method="fft", **kw)
    ref = gc.conv(x, w, method="direct", **kw)
    assert relative_error(out, ref) <= 1e-10
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, (x, w), g), torch.autograd.grad(ref, (x, w), g)):
        assert relative_error(a, b) <= 1e-10


def test_a_long_same_kernel_transforms_at_one_and_a_half_lengths():
    x, w = torch.randn(1, 4, 4096), torch.randn(4, 1, 4095)
    _, spec, _ = gc.functional._spec.setup(
        x, w, None, stride=1, padding="same", dilation=1, groups=4, padding_mode="zeros"
    )
    assert fft_plan.whole_extents(spec) == (4096 + 2047,)
    assert fft_module.prepare_fft(w, spec).lengths == (gc.functional.fast_length(6143),)
    _, spec, _ = gc.functional._spec.setup(
        x, w, None, stride=1, padding="same", dilation=1, groups=4, padding_mode="reflect"
    )
    assert fft_plan.whole_extents(spec) == spec.padded_size  # other modes pad explicitly
