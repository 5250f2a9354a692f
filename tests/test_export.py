"""torch.export and ONNX (torch.onnx.export(..., dynamo=True), run by onnxruntime) for every
layer; torch.jit.trace either works or says what to use instead."""

from __future__ import annotations

import dataclasses

import onnxruntime
import pytest
import torch

import gridconv as gc
from tests.layer_cases import LAYERS, LayerCase, built, inputs

pytestmark = pytest.mark.filterwarnings("ignore")


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "requires-grad"])
@pytest.mark.parametrize("case", LAYERS, ids=lambda c: c.name)
def test_every_layer_exports(case, train):
    layer = built(case).train(train)
    assert all(p.requires_grad for p in layer.parameters())
    x = inputs(case)
    program = torch.export.export(layer, (x,))
    with torch.no_grad():
        expected = layer(x)
    assert relative_error(program.module()(x), expected) <= 1e-5


def test_export_takes_the_direct_method_where_auto_takes_the_fft():
    layer = gc.nn.Conv2d(2, 2, 21, padding="same")
    x = torch.randn(2, 2, 64, 64)
    assert gc.functional.auto_method_for(x, layer.weight.detach(), padding="same") == "fft"
    graph = torch.export.export(layer, (x,)).graph
    targets = {str(node.target) for node in graph.nodes}
    assert any("convolution" in t or "conv2d" in t for t in targets)
    assert not any("fft" in t for t in targets)


def test_export_prices_no_method_it_cannot_take(monkeypatch):
    """Under torch.export auto weighs only the portable methods: the FFT's cost model (which
    asks whether the compiled kernel builds) is not even consulted."""
    from gridconv.functional.methods import REGISTRY
    from gridconv.functional.methods import planner as plan

    def refuse(work):
        raise AssertionError("the FFT was priced under export")

    portable = [name for name, m in REGISTRY.items() if m.portable]
    monkeypatch.setitem(REGISTRY, "fft", dataclasses.replace(REGISTRY["fft"], seconds=refuse))
    plan.clear()
    layer = gc.nn.Conv1d(4, 4, 33, padding="same")
    torch.export.export(layer, (torch.randn(2, 4, 500),))
    assert portable == ["direct"]


def run_onnx(layer: torch.nn.Module, x: torch.Tensor, tmp_path) -> torch.Tensor:
    program = torch.onnx.export(layer.eval(), (x,), dynamo=True, verbose=False)
    path = tmp_path / "model.onnx"
    program.save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(out)


@pytest.mark.parametrize("case", LAYERS, ids=lambda c: c.name)
def test_every_layer_runs_in_onnxruntime_as_in_eager(case, tmp_path):
    layer, x = built(case).eval(), inputs(case)
    with torch.no_grad():
        expected = layer(x)
    assert relative_error(run_onnx(layer, x, tmp_path), expected) <= 1e-3


CONV_FORMS = [
    LayerCase(
        f"{padding}-s{s}-{mode}-{bias}",
        lambda p=padding, m=mode, b=bias, st=s: gc.nn.Conv2d(
            3, 4, 4, stride=st, padding=p, padding_mode=m, bias=b, input_size=11
        ),
        (2, 3, 11, 11),
    )
    for padding, s in (("valid", 1), ("same", 2), ("full", 1), (2, 1), ([(0, 3), (2, 1)], 2))
    for mode in ("zeros", "reflect", "replicate", "circular")
    for bias in ("tied", "untied")
    if not (padding == "full" and mode == "reflect")  # reflect needs padding < input
]


@pytest.mark.parametrize("case", CONV_FORMS, ids=lambda c: c.name)
def test_conv_in_onnxruntime_every_padding_form_mode_and_bias(case, tmp_path):
    layer, x = built(case).eval(), inputs(case)
    with torch.no_grad():
        expected = layer(x)
    assert relative_error(run_onnx(layer, x, tmp_path), expected) <= 1e-3


def test_jit_trace_works_for_pooling_and_says_what_to_use_for_convolutions():
    pool = gc.nn.Pool2d(3, 2, method="gaussian")
    x = torch.randn(2, 3, 9, 9)
    assert torch.allclose(torch.jit.trace(pool, (x,))(x), pool(x))
    with pytest.raises(RuntimeError, match=r"Use torch\.compile, or torch\.export"):
        torch.jit.trace(gc.nn.Conv2d(3, 4, 3), (x,))
