"""torch.compile(fullgraph=True) on every layer and functional op: forward and backward equal
eager's, bad input raises the eager error, auto's rule while tracing."""

from __future__ import annotations

import pytest
import torch

import gridconv as gc
from tests.layer_cases import LAYERS, built, inputs

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> bool:
    return bool((a - b).abs().max() <= rtol * max(b.abs().max().item(), 1e-6))


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("case", LAYERS, ids=lambda c: c.name)
def test_every_layer_compiles_whole_and_trains_as_in_eager(case):
    layer = built(case)
    x = inputs(case).requires_grad_()
    compiled = torch.compile(layer, fullgraph=True)
    for module in (layer, compiled):  # eager first, then compiled; same parameters
        module.zero_grad()
        x.grad = None
        out = module(x)
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        out.backward(grad)
        if module is layer:
            expected = out.detach(), x.grad.clone(), [p.grad.clone() for p in layer.parameters()]
    assert close(out.detach(), expected[0])
    assert close(x.grad, expected[1])
    for p, ref in zip(layer.parameters(), expected[2]):
        assert close(p.grad, ref)


@pytest.mark.parametrize("case", LAYERS, ids=lambda c: c.name)
def test_every_layer_compiles_in_eval_mode_without_grad(case):
    layer = built(case).eval()
    x = inputs(case)
    with torch.no_grad():
        expected = layer(x)  # fills the layer's caches: the traced call must not use them
        out = torch.compile(layer, fullgraph=True)(x)
    assert close(out, expected)


TRAIN_SCRIPT = """
import json, sys, torch
import gridconv as gc

def losses(compiled):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        gc.nn.Conv2d(3, 8, 9, padding="same"), torch.nn.ReLU(),
        gc.nn.Conv2d(8, 8, 11, padding="same"), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10),
    )
    x, y = torch.randn(8, 3, 48, 48), torch.randint(0, 10, (8,))
    model = torch.compile(net) if compiled else net
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    out = []
    for _ in range(3):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out

x = torch.randn(8, 3, 48, 48, requires_grad=True)
methods = [gc.functional.auto_method_for(x, torch.randn(8, 3, k, k, requires_grad=True),
           padding="same") for k in (9, 11)]
print(json.dumps({"methods": methods, "eager": losses(False), "compiled": losses(True)}))
"""


def test_a_network_of_fft_layers_trains_under_inductor_as_in_eager():
    """Issue 17's abort (``double free or corruption``): inductor's vectorised backward of
    ``unfold`` writes out of bounds (benchmarks/repro/inductor_unfold_backward.py). In a
    child process, so that an abort fails this test instead of killing the run."""
    import json
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", TRAIN_SCRIPT], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["methods"] == ["fft", "fft"]  # the layers the abort came from
    for eager, compiled in zip(found["eager"], found["compiled"]):
        assert abs(eager - compiled) <= 1e-4 * abs(eager)


def _ops():
    """Every functional op, as (name, fn(*tensors), tensors wanting gradients)."""
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(shape, generator=g)

    x2, w2 = r(2, 3, 14, 14), r(4, 3, 3, 3)
    kernel = gc.decompose(r(4, 3, 5, 1) * r(1, 1, 1, 5))
    return [
        *(
            (f"conv-{m}", lambda x, w, m=m: gc.conv(x, w, padding="same", method=m), (x2, w2))
            for m in ("direct", "fft", "separable", "auto")
        ),
        (
            "conv-1d-compiled",
            lambda x, w: gc.conv(x, w, padding="same", method="fft"),
            (r(2, 4, 1500), r(4, 4, 40)),
        ),
        ("fft_conv", lambda x, w: gc.fft_conv(x, w, stride=2, padding="full"), (x2, w2)),
        ("separable_conv", lambda x: gc.separable_conv(x, kernel, padding="same"), (x2,)),
        (
            "conv_transpose",
            lambda y, w: gc.conv_transpose(y, w, input_size=14, stride=2, padding="same"),
            (r(2, 4, 7, 7), w2),
        ),
        ("local_conv", lambda x, w: gc.local_conv(x, w), (r(2, 3, 8, 8), r(6, 6, 4, 3, 3, 3))),
        (
            "tiled_conv",
            lambda x, w: gc.tiled_conv(x, w, padding="same"),
            (r(2, 3, 9, 9), r(2, 2, 4, 3, 3, 3)),
        ),
        *(
            (f"pool-{m}", lambda x, m=m: gc.pool(x, 3, stride=2, method=m), (x2,))
            for m in ("max", "avg", "lp", "gaussian")
        ),
        ("channel_pool", lambda x: gc.channel_pool(x, 2, method="lp"), (r(2, 4, 5, 5),)),
        ("global_pool", lambda x: gc.global_pool(x), (x2,)),
        ("pyramid_pool", lambda x: gc.pyramid_pool(x, (1, 2)), (x2,)),
        (
            "glimpse",
            lambda x: gc.glimpse(x, torch.tensor([[0.1, -0.2], [0.0, 0.3]]), 4, scales=2),
            (x2,),
        ),
        (
            "log_polar",
            lambda x: gc.log_polar(
                x, torch.zeros(2, 2), rings=3, wedges=4, min_radius=0.1, max_radius=0.8
            ),
            (x2,),
        ),
    ]


@pytest.mark.parametrize("op", _ops(), ids=lambda op: op[0])
def test_every_functional_op_compiles_whole_forward_and_backward(op):
    _, fn, tensors = op
    grads = []
    for f in (fn, torch.compile(fn, fullgraph=True)):
        leaves = [t.clone().requires_grad_() for t in tensors]
        out = f(*leaves)
        out.backward(torch.ones_like(out))
        grads.append((out.detach(), [t.grad for t in leaves]))
    (eager, eager_grads), (traced, traced_grads) = grads
    assert close(traced, eager)
    for a, b in zip(traced_grads, eager_grads):
        assert close(a, b)


def _graph_ops(fn, *args) -> set[str]:
    """The names of the ops dynamo puts in the graph of ``fn(*args)``."""
    found: set[str] = set()

    def backend(gm, example_inputs):
        found.update(str(node.target) for node in gm.graph.nodes)
        return gm.forward

    torch.compile(fn, backend=backend, fullgraph=True)(*args)
    return found


def test_auto_decides_at_trace_time_by_the_cost_model():
    """A 2 x 2 x 21 x 21 kernel on 64 x 64: auto picks the FFT, eager and traced; a 3 x 3
    kernel, the direct method. Nothing is measured or cached while tracing."""
    x, big, small = torch.randn(2, 2, 64, 64), torch.randn(2, 2, 21, 21), torch.randn(2, 2, 3, 3)
    assert gc.functional.auto_method_for(x, big, padding="same") == "fft"
    ops = _graph_ops(lambda x, w: gc.conv(x, w, padding="same"), x, big)
    assert any("fft" in op for op in ops) and not any("conv2d" in op for op in ops)
    ops = _graph_ops(lambda x, w: gc.conv(x, w, padding="same"), x, small)
    assert any("conv2d" in op for op in ops) and not any("fft" in op for op in ops)


def test_the_compiled_1d_kernel_is_one_custom_op_in_the_graph():
    x, w = torch.randn(2, 4, 2048), torch.randn(4, 4, 64)
    ops = _graph_ops(lambda x, w: gc.conv(x, w, padding="same"), x, w)
    assert "gridconv.fft_conv1d.default" in ops


def test_the_custom_ops_pass_torch_library_opcheck():
    """The compiled 1-D kernel's op and the FFT method's op (what torch.compile calls)."""
    from gridconv.functional.methods.fft import ops, overlap_save_ops

    x = torch.randn(2, 4, 300, requires_grad=True)
    w = torch.randn(6, 2, 20, requires_grad=True)
    torch.library.opcheck(overlap_save_ops.fft_conv1d, (x, w, 9, 10, 1, 1, 2, "zeros"))
    torch.library.opcheck(overlap_save_ops.fft_conv1d, (x, w, 5, 5, 3, 2, 2, "reflect"))
    x2, w2 = torch.randn(2, 4, 20, 18, requires_grad=True), torch.randn(6, 2, 5, 4)
    args = ([2, 2, 0, 3], [2, 1], [1, 2], 2, "circular")
    for keep in ((True, True), (True, False), (False, False)):
        torch.library.opcheck(ops.fft_conv_op, (x2, w2.requires_grad_(), *args, *keep))
    # depthwise (a spectrum of another layout), in float64
    xd, wd = torch.randn(2, 4, 30, dtype=torch.float64), torch.randn(4, 1, 7, dtype=torch.float64)
    torch.library.opcheck(ops.fft_conv_op, (xd, wd, [3, 3], [1], [1], 4, "zeros", True, True))


def _fft_counts(step) -> dict[str, int]:
    """How many forward and inverse FFTs (ATen's) one call of ``step`` runs."""
    with torch.profiler.profile() as prof:
        step()
    names = [event.name for event in prof.events()]
    return {op: names.count(op) for op in ("aten::_fft_r2c", "aten::_fft_c2r")}


@pytest.mark.parametrize("x_grad", [True, False])
def test_a_compiled_fft_layer_transforms_no_more_than_eager(x_grad):
    """The forward op hands its spectra (the kernel's, the input's) to the backward op, as
    eager mode keeps them: a compiled training step runs the very transforms of an eager one
    (it ran half again as many forward FFTs when the backward made its own)."""
    layer = gc.nn.Conv2d(4, 6, 11, padding="same")
    x = torch.randn(2, 4, 48, 48, requires_grad=x_grad)
    compiled = torch.compile(layer, fullgraph=True)
    compiled(x).sum().backward()  # compile first
    counts = {
        name: _fft_counts(lambda m=module: m(x).sum().backward())
        for name, module in (("eager", layer), ("compiled", compiled))
    }
    assert counts["compiled"] == counts["eager"]
    assert counts["eager"]["aten::_fft_r2c"] >= 2  # the input's, the kernel's at least


def test_bad_input_under_tracing_raises_the_eager_error():
    """torch.compile (graph breaks allowed) and torch.export raise the very error eager mode
    raises. Under fullgraph=True dynamo reports any exception a traced function raises as
    ``Unsupported`` ("Observed exception"), for every library; it carries our message."""
    layer = gc.nn.Conv2d(3, 4, 3)
    bad = torch.randn(1, 5, 8, 8)
    with pytest.raises(ValueError, match="channel mismatch: `x` has 5 channels") as eager:
        layer(bad)
    with pytest.raises(ValueError) as compiled:
        torch.compile(layer)(bad)
    assert str(compiled.value) == str(eager.value)
    with pytest.raises(ValueError) as exported:
        torch.export.export(layer, (bad,))
    assert str(exported.value) == str(eager.value)
    torch._dynamo.reset()  # else dynamo may run the frame that raised before eagerly
    unsupported = torch._dynamo.exc.Unsupported
    with pytest.raises((unsupported, ValueError), match="channel mismatch: `x` has 5"):
        torch.compile(layer, fullgraph=True)(bad)
    with pytest.raises(ValueError, match="`padding_mode` must be one of"):
        torch.compile(lambda x: gc.conv(x, torch.randn(2, 1, 3), padding_mode="mirror"))(
            torch.randn(1, 1, 9)
        )


@pytest.mark.parametrize("dynamic", [None, True])
def test_dynamic_shapes_are_specialised_one_compile_per_shape(dynamic):
    """gridconv's decisions depend on shapes: under dynamic shapes (dynamic=True, or
    dynamo's automatic dynamic after a second shape) they are specialised, so each new shape
    compiles anew and every result equals eager."""
    for layer, size in (
        (gc.nn.Conv2d(3, 4, 5, padding="same", padding_mode="reflect"), 16),
        (gc.nn.Conv2d(3, 4, 21, padding="same"), 64),  # the FFT's custom op
        (gc.nn.Conv1d(3, 4, 64, padding="same"), 2048),  # the compiled kernel's
    ):
        torch._dynamo.reset()
        compiled = torch.compile(layer, fullgraph=True, dynamic=dynamic)
        for batch, n in ((2, size), (3, size), (3, size + 5)):
            x = torch.randn(batch, 3, *(n,) * (layer.weight.ndim - 2))
            assert close(compiled(x), layer(x))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_max_pooling_is_atens_kernel_under_compile_and_torchs_op_under_export(d):
    """inductor's own max-pool kernels ran 3x slower than ATen's on this CPU: compiled, max
    pooling is the opaque op gridconv::max_pool, with its gradients; exported, torch's."""
    from gridconv.functional import _pool_op

    x = torch.randn(2, 3, *(9,) * d)
    fn = lambda x: gc.pool(x, 3, stride=2, padding="same", method="max")  # noqa: E731
    assert "gridconv.max_pool.default" in _graph_ops(fn, x)
    as_nd = x.unsqueeze(2) if d == 1 else x  # 1-D runs as 2-D of height 1
    k, s = [3] * max(d, 2), [2] * max(d, 2)
    if d == 1:
        k[0] = s[0] = 1
    torch.library.opcheck(_pool_op._max_pool, (as_nd.clone().requires_grad_(), k, s))
    layer = gc.nn.Pool(d, 3, stride=2, padding="same")
    graph = torch.export.export(layer, (x.detach(),)).graph
    assert not any("gridconv" in str(node.target) for node in graph.nodes)


def test_the_custom_ops_double_backward_matches_direct():
    """The ops' autograd (base.register_conv_autograd): under create_graph the gradients go
    through autograd (the compiled kernel's op: the direct method's; the FFT's: its own)."""
    from gridconv.functional.methods.fft import ops, overlap_save_ops

    x = torch.randn(2, 4, 300, requires_grad=True)
    w = torch.randn(6, 2, 20, requires_grad=True)
    xr, wr = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    out = gc.conv(xr, wr, padding=[(9, 10)], groups=2, method="direct").square().sum()
    (gxr,) = torch.autograd.grad(out, xr, create_graph=True)
    (expected,) = torch.autograd.grad(gxr.sum(), wr)
    for op, params in (
        (overlap_save_ops.fft_conv1d, (9, 10, 1, 1, 2, "zeros")),
        (lambda *a: ops.fft_conv_op(*a)[0], ([9, 10], [1], [1], 2, "zeros", True, True)),
    ):
        (gx,) = torch.autograd.grad(op(x, w, *params).square().sum(), x, create_graph=True)
        (gw,) = torch.autograd.grad(gx.sum(), w)
        assert close(gw.double(), expected, rtol=1e-5)
