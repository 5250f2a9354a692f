"""torch.compile(fullgraph=True) on every layer and functional op: forward and backward equal
eager's, bad input raises the eager error, auto's rule while tracing."""

from __future__ import annotations

import pytest
import torch

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
