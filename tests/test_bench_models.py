"""The models suite (whole networks others wrote, converted by gc.nn.convert) and the
per-layer table gc.analysis.layer_table."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import gridconv as gc
from gridconv.bench import models as bench_models
from gridconv.bench import tables
from gridconv.cli import main
from gridconv.functional.conv import method_names

timm = pytest.importorskip("timm", reason="timm is in the `models` extra (dev)")

TINY = {
    "convnext 7x7": bench_models.ModelCase("convnext_atto", 2, (32, 32)),
    "convnext 31x31": bench_models.ModelCase("convnext_atto", 2, (32, 32), (("kernel_sizes", 31),)),
    "convmixer": bench_models.ModelCase("convmixer_768_32", 2, (28, 28)),
    "inception_next": bench_models.ModelCase("inception_next_atto", 2, (32, 32)),
    "resnet18": bench_models.ModelCase("resnet18", 2, (32, 32)),
    "long conv": bench_models.ModelCase("long conv", 2, (48, 6)),
}


@pytest.mark.parametrize("case", TINY.values(), ids=TINY.keys())
def test_every_model_computes_the_same_function_in_float64(case):
    found = bench_models.errors(case)
    assert found["output"] < 1e-10 and found["gradient"] < 1e-9, found


def test_the_long_convolution_block_and_its_rfft_recipe_agree():
    case = TINY["long conv"]
    x = case.input(torch.float64)
    direct = case.build().double()
    recipe = case.build(recipe=True).double()
    torch.testing.assert_close(recipe(x), direct(x), rtol=1e-10, atol=1e-12)
    converted = gc.nn.convert(direct)
    assert isinstance(converted.filter, gc.nn.Conv1d)
    # causal: an output never depends on a later input
    x2 = x.clone()
    x2[:, 30:] += 1.0
    assert torch.equal(direct(x2)[:, :30], direct(x)[:, :30])


def test_a_run_records_errors_both_formats_memory_and_layers():
    (record,) = bench_models.run(rounds=1, memory=False, cases=(TINY["convnext 31x31"],))
    for seconds in (record.train, record.inference):
        assert set(seconds) == {
            "torch NCHW", "torch channels_last", "gridconv NCHW", "gridconv channels_last"
        }  # fmt: skip
        assert all(t > 0 for t in seconds.values())
    ratio, torch_format, ours = record.ratio("train")
    t = min(record.train["torch NCHW"], record.train["torch channels_last"])
    g = min(record.train["gridconv NCHW"], record.train["gridconv channels_last"])
    assert ratio == pytest.approx(t / g) and {torch_format, ours} <= {"NCHW", "channels_last"}
    kernels = {tuple(r["kernel"]) for r in record.layers}
    assert (31, 31) in kernels and all(r["converted"] for r in record.layers)
    assert record.as_dict()["torch_over_gridconv"]["train"]["ratio"] == pytest.approx(ratio)
    summary = bench_models.summary([record])
    assert summary["train_torch_over_gridconv_min"] == pytest.approx(ratio)


def test_the_sequence_block_has_the_recipe_as_its_peer():
    (record,) = bench_models.run(rounds=1, memory=False, cases=(TINY["long conv"],))
    assert set(record.inference) == {"torch NCHW", "gridconv NCHW", "rfft recipe (2L)"}


@pytest.mark.slow
def test_cli_models_suite_prints_the_models_and_their_layers(capsys):
    assert main(["bench", "--quick", "--suite", "models", "--rounds", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["case"] for m in data["models"]] == [c.name for c in bench_models.QUICK]
    for m in data["models"]:
        assert m["errors"]["output"] < 1e-10 and m["errors"]["gradient"] < 1e-9
        assert all(v is None or v["extra"] >= 0 for v in m["memory"].values())
    records = [
        bench_models.ModelRecord(
            **{k: m[k] for k in ("case", "errors", "train", "inference", "memory", "layers")}
        )
        for m in data["models"]
    ]
    text = tables.models_table(records) + tables.layers_table(records[0].layers)
    assert "train: torch / gridconv" in text and "auto: train / infer" in text


# --- gc.analysis.layer_table ------------------------------------------------------------


class Scaled(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 2


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Conv2d(8, 8, 31, padding=15, groups=8),
        Scaled(8, 4, 1),
    )


def test_layer_table_lists_every_convolution_call_with_its_input_and_choices():
    model = net().train()
    x = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    rows = gc.analysis.layer_table(model, x)
    assert [r.name for r in rows] == ["0", "1", "2"]
    assert model.training and type(model[0]) is nn.Conv2d  # the model itself is untouched
    first, large, left = rows
    assert first.input_shape == (2, 3, 64, 64) and first.memory_format == "channels_last"
    assert large.kernel == (31, 31) and large.groups == 8 and large.stride == (1, 1)
    for r in (first, large):
        assert r.converted and not r.measured
        assert r.method_train in method_names() and r.method_infer != "auto"
        assert r.torch_train > r.torch_infer > 0 and r.gridconv_train > 0
    assert large.method_infer == gc.functional.auto_method_for(
        torch.randn(2, 8, 64, 64), model[1].weight.detach(), padding=15, groups=8
    )
    assert not left.converted and left.method_train == "torch" and "forward" in left.note


def test_layer_table_measures_under_planning_measure():
    model = net()
    with gc.planning("measure"):
        rows = gc.analysis.layer_table(model, torch.randn(1, 3, 24, 24), rounds=1)
    assert all(r.measured for r in rows)
    assert all(r.torch_infer > 0 and r.gridconv_train > 0 for r in rows)
    assert rows[0].as_dict()["name"] == "0"


def test_memory_format_names():
    x = torch.randn(2, 3, 4, 5)
    assert gc.analysis.memory_format(x) == "contiguous"
    assert gc.analysis.memory_format(x.to(memory_format=torch.channels_last)) == "channels_last"
    volume = torch.randn(1, 2, 3, 4, 5).to(memory_format=torch.channels_last_3d)
    assert gc.analysis.memory_format(volume) == "channels_last_3d"
    assert gc.analysis.memory_format(x[:, :, :, ::2]) == "strided"


def test_layer_table_bad_input():
    with pytest.raises(TypeError, match="`model`"):
        gc.analysis.layer_table("resnet18", torch.randn(1, 3, 8, 8))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`x`"):
        gc.analysis.layer_table(net(), (1, 3, 8, 8))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["convnext_atto", "inception_next_atto", "resnet18"])
def test_converted_timm_models_export_and_compile_with_fullgraph(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    fast = gc.nn.convert(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        program = torch.export.export(fast, (x,))
        torch.testing.assert_close(program.module()(x), expected, rtol=1e-4, atol=1e-4)
        compiled = torch.compile(fast, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(x), expected, rtol=1e-4, atol=1e-4)
