"""gc.nn.convert / revert: any model's convolutions swapped for gridconv's, the same function
(float64 against the torch model), the same Parameters and state_dict keys, and back."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from torch import nn

import gridconv as gc


class Net(nn.Module):
    """Every torch convolution form: dims, paddings, modes, stride, dilation, groups, bias."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False)
        self.same = nn.Conv2d(8, 8, 4, padding="same", dilation=2, groups=8)
        self.reflect = nn.Conv2d(8, 6, (3, 5), padding=(1, 2), padding_mode="reflect")
        self.circular = nn.Conv2d(6, 6, 3, padding=1, padding_mode="circular", groups=2)
        self.valid = nn.Conv2d(6, 4, 3, stride=(1, 2), padding="valid")
        self.seq = nn.Conv1d(4, 5, 5, padding=2, padding_mode="replicate")
        self.vol = nn.Conv3d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.valid(self.circular(self.reflect(self.same(self.stem(x)).relu())))
        s = self.seq(y.mean(-1))  # (N, 5, L)
        v = self.vol(y[:, :1, None].expand(-1, -1, 3, -1, -1).contiguous())
        return s.sum() + v.sum() + (s**2).mean() * 3


def both(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    model = Net().double()
    return model, gc.nn.convert(model)


def test_every_torch_convolution_becomes_gridconv_and_computes_the_same_function():
    model, fast = both()
    assert not any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in fast.modules())
    assert sum(isinstance(m, gc.nn.Conv) for m in fast.modules()) == 7
    x = torch.randn(2, 3, 29, 34, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    model(x).backward()
    fast(x2).backward()
    assert torch.allclose(x.grad, x2.grad, rtol=1e-10, atol=1e-12)
    for (name, p), (name2, q) in zip(model.named_parameters(), fast.named_parameters()):
        assert name == name2
        assert torch.allclose(p.grad, q.grad, rtol=1e-10, atol=1e-12), name


def test_a_layer_per_method_agrees_in_float64():
    torch.manual_seed(1)
    layer = nn.Conv2d(3, 4, 11, padding=5).double()
    x = torch.randn(2, 3, 40, 40, dtype=torch.float64)
    for method in ("direct", "fft"):
        converted = gc.nn.convert(layer)
        converted.method = method
        assert torch.allclose(converted(x), layer(x), rtol=1e-9, atol=1e-11), method


def test_inplace_keeps_the_very_parameters_and_an_optimizer_built_before_steps_them():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv1d(3, 3, 1))
    model[2] = nn.Identity()
    weight, bias = model[0].weight, model[0].bias
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    out = gc.nn.convert(model, inplace=True)
    assert out is model and isinstance(model[0], gc.nn.Conv2d)
    assert model[0].weight is weight and model[0].bias is bias
    before = weight.detach().clone()
    model(torch.randn(4, 2, 8, 8)).square().sum().backward()
    optimizer.step()
    assert not torch.equal(model[0].weight.detach(), before)
    assert torch.allclose(model[0].weight.detach(), before - 0.1 * weight.grad, atol=1e-6)


def test_not_inplace_leaves_the_model_alone():
    model = nn.Sequential(nn.Conv2d(2, 3, 3))
    fast = gc.nn.convert(model)
    assert type(model[0]) is nn.Conv2d and type(fast[0]) is gc.nn.Conv2d
    assert fast[0].weight is not model[0].weight
    assert torch.equal(fast[0].weight, model[0].weight)


def test_state_dicts_load_strictly_both_ways_with_the_same_keys():
    model, fast = both()
    assert list(model.state_dict()) == list(fast.state_dict())
    other_model, other_fast = both(seed=5)
    other_fast.load_state_dict(model.state_dict(), strict=True)
    other_model.load_state_dict(fast.state_dict(), strict=True)
    for a, b in zip(other_fast.parameters(), model.parameters()):
        assert torch.equal(a, b)


def test_dtype_device_and_mode_are_kept():
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Conv2d(3, 3, 3)).double()
    model[1].eval()
    fast = gc.nn.convert(model)
    assert fast[0].training and not fast[1].training
    assert fast[0].weight.dtype == torch.float64 and fast[0].weight.device.type == "cpu"
    assert not any(p.is_meta for p in fast.parameters())


def test_filter_picks_layers_and_converting_twice_changes_nothing():
    model = Net()
    seen = []

    def only_2d(name: str, module: nn.Module) -> bool:
        seen.append(name)
        return isinstance(module, nn.Conv2d) and name != "stem"

    fast = gc.nn.convert(model, filter=only_2d)
    assert "stem" in seen and "seq" in seen
    assert type(fast.stem) is nn.Conv2d and type(fast.seq) is nn.Conv1d
    assert type(fast.same) is gc.nn.Conv2d
    again = gc.nn.convert(fast, inplace=True, filter=only_2d)
    assert again is fast and type(fast.same) is gc.nn.Conv2d
    assert type(fast.same.__dict__["_gridconv_original"]) is nn.Conv2d  # not converted twice
    twice = gc.nn.convert(gc.nn.convert(model))
    assert [type(m) for m in twice.modules()] == [type(m) for m in gc.nn.convert(model).modules()]


def test_revert_gives_back_the_original_classes_with_the_converted_weights():
    model, fast = both()
    with torch.no_grad():
        fast.stem.weight.add_(1.0)  # trained after converting
    back = gc.nn.revert(fast)
    assert [type(m) for m in back.modules()] == [type(m) for m in model.modules()]
    assert torch.equal(back.stem.weight, fast.stem.weight)
    x = torch.randn(1, 3, 20, 20, dtype=torch.float64)
    assert torch.allclose(back(x), fast(x), rtol=1e-10)
    inplace = gc.nn.revert(fast, inplace=True)
    assert inplace is fast
    assert type(fast.stem) is nn.Conv2d


def test_a_subclass_with_torch_forward_converts_and_reverts_to_its_class():
    class Tagged(nn.Conv2d):
        tag = "mine"

    model = nn.Sequential(Tagged(2, 2, 3, padding=1))
    fast = gc.nn.convert(model)
    assert type(fast[0]) is gc.nn.Conv2d
    back = gc.nn.revert(fast)
    assert type(back[0]) is Tagged and back[0].tag == "mine"


class Scaled(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


def test_a_subclass_with_its_own_forward_is_left_and_listed_with_its_reason():
    model = nn.Sequential(Scaled(2, 2, 3), nn.Conv2d(2, 2, 3))
    with pytest.warns(gc.nn.ConversionWarning, match=r"0 \(.*Scaled\): left, overrides forward"):
        fast = gc.nn.convert(model)
    assert type(fast[0]) is Scaled and type(fast[1]) is gc.nn.Conv2d
    plan = gc.nn.conversion_plan(model)
    assert [(v.name, v.converted) for v in plan] == [("0", False), ("1", True)]
    assert "overrides forward" in plan[0].reason
    after = gc.nn.conversion_plan(fast)
    assert [(v.name, v.converted) for v in after] == [("0", False), ("1", True)]
    x = torch.randn(1, 2, 9, 9)
    assert torch.allclose(fast(x), model(x), atol=1e-6)


def test_parametrized_lazy_and_extra_parameter_layers_are_left():
    weight_normed = nn.utils.parametrizations.weight_norm(nn.Conv2d(2, 2, 3))
    lazy = nn.LazyConv2d(2, 3)
    model = nn.Sequential(weight_normed, lazy)
    reasons = {v.name: v.reason for v in gc.nn.conversion_plan(model) if not v.converted}
    assert "parametrized" in reasons["0"]
    assert "lazy" in reasons["1"]
    with pytest.warns(gc.nn.ConversionWarning):
        fast = gc.nn.convert(model)
    assert fast[0].__class__.__name__.startswith("Parametrized")
    with warnings.catch_warnings():  # torch deprecates it; models written with it remain
        warnings.simplefilter("ignore", FutureWarning)
        old_style = nn.utils.weight_norm(nn.Conv2d(2, 2, 3))  # weight_g, weight_v and a hook
    (verdict,) = gc.nn.conversion_plan(old_style)
    assert not verdict.converted and "weight_g" in verdict.reason


def test_a_layer_shared_in_two_places_stays_shared():
    shared = nn.Conv2d(2, 2, 3, padding=1)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    fast = gc.nn.convert(model)
    assert isinstance(fast[0], gc.nn.Conv2d) and fast[0] is fast[2]
    back = gc.nn.revert(fast)
    assert type(back[0]) is nn.Conv2d and back[0] is back[2]


def test_hooks_keep_firing_after_conversion():
    conv = nn.Conv2d(2, 2, 3)
    calls = []
    conv.register_forward_hook(lambda m, i, o: calls.append(o.shape))
    model = nn.Sequential(conv)
    gc.nn.convert(model, inplace=True)(torch.randn(1, 2, 6, 6))
    assert calls == [torch.Size([1, 2, 4, 4])]


def test_a_convolution_itself_converts():
    conv = nn.Conv1d(2, 3, 5, padding=2)
    layer = gc.nn.convert(conv)
    assert type(layer) is gc.nn.Conv1d
    x = torch.randn(2, 2, 17)
    assert torch.allclose(layer(x), conv(x), atol=1e-6)
    assert type(gc.nn.revert(layer)) is nn.Conv1d


def test_transposed_convolutions_are_not_touched():
    model = nn.Sequential(nn.ConvTranspose2d(2, 2, 3))
    fast = gc.nn.convert(model)
    assert type(fast[0]) is nn.ConvTranspose2d and gc.nn.conversion_plan(model) == []


def test_bad_input_names_the_argument():
    with pytest.raises(TypeError, match=r"`module`.*torch\.nn\.Module.*got"):
        gc.nn.convert("resnet18")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`filter`.*callable"):
        gc.nn.convert(nn.Conv2d(1, 1, 1), filter="stem")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`module`"):
        gc.nn.revert(42)  # type: ignore[arg-type]


# --- timm's subclasses: TensorFlow "SAME" converts; its export variant is left -----------


def test_timm_conv2d_same_converts_exactly_and_reverts():
    layers = pytest.importorskip("timm.layers", reason="timm is in the `models` extra (dev)")
    torch.manual_seed(0)
    model = nn.Sequential(
        layers.Conv2dSame(3, 4, 3, stride=2), layers.Conv2dSame(4, 4, 4, stride=3, dilation=2)
    ).double()
    fast = gc.nn.convert(model)
    assert [type(m) for m in fast] == [gc.nn.Conv2d, gc.nn.Conv2d]
    assert fast[0].padding == "same"
    for size in ((17, 17), (16, 21), (9, 30)):
        x = torch.randn(2, 3, *size, dtype=torch.float64)
        assert torch.allclose(fast(x), model(x), rtol=1e-10, atol=1e-12), size
    assert [type(m) for m in gc.nn.revert(fast)] == [layers.Conv2dSame] * 2


def test_timm_conv2d_same_export_is_left():
    conv2d_same = pytest.importorskip("timm.layers.conv2d_same", reason="timm: `models` extra")
    model = nn.Sequential(conv2d_same.Conv2dSameExport(3, 4, 3, stride=2))
    with pytest.warns(gc.nn.ConversionWarning, match="Conv2dSameExport"):
        fast = gc.nn.convert(model)
    assert type(fast[0]) is conv2d_same.Conv2dSameExport


# --- compile, export, DDP, autocast -----------------------------------------------------


def small() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 7, padding=3, groups=8)
    )


def test_a_converted_model_compiles_with_fullgraph():
    model = small()
    fast = gc.nn.convert(model)
    x = torch.randn(2, 3, 16, 16)
    compiled = torch.compile(fast, fullgraph=True, backend="eager")
    assert torch.allclose(compiled(x), model(x), atol=1e-5)


def test_a_converted_model_trains_under_inductor_as_in_eager():
    model = small()
    fast = gc.nn.convert(model)
    compiled = torch.compile(fast, fullgraph=True)  # inductor
    x = torch.randn(2, 3, 16, 16)
    compiled(x).square().mean().backward()
    model(x).square().mean().backward()
    for p, q in zip(model.parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5)


def test_a_converted_model_exports():
    model = small().eval()
    fast = gc.nn.convert(model)
    x = torch.randn(2, 3, 16, 16)
    program = torch.export.export(fast, (x,))
    assert torch.allclose(program.module()(x), model(x), atol=1e-5)


def test_a_converted_model_trains_under_ddp(tmp_path):
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"file://{tmp_path}/pg")
    try:
        model = small()
        ddp = nn.parallel.DistributedDataParallel(gc.nn.convert(model))
        x = torch.randn(2, 3, 12, 12)
        ddp(x).square().mean().backward()
        model(x).square().mean().backward()
        for p, q in zip(model.parameters(), ddp.module.parameters()):
            assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
def test_autocast_gives_torchs_dtype_and_values(method):
    model = small()
    fast = gc.nn.convert(model)
    for m in fast.modules():
        if isinstance(m, gc.nn.Conv):
            m.method = method
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model(x)
        got = fast(x)
        single = fast[2](x.new_ones(1, 8, 9, 9))
    assert got.dtype == expected.dtype == single.dtype == torch.bfloat16
    assert (got.float() - expected.float()).abs().max() <= 0.05 * expected.float().abs().max()
    got.float().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32
    assert fast[0].weight.grad.dtype == torch.float32


def test_autocast_leaves_float64_alone():
    layer = gc.nn.convert(nn.Conv2d(2, 2, 3).double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(1, 2, 5, 5, dtype=torch.float64)).dtype == torch.float64


def test_no_warning_when_everything_converts():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gc.nn.convert(Net())
