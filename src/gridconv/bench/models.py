"""The ``models`` benchmark suite: whole networks that others wrote, converted in one call.

Each model (from timm, plus a long-convolution sequence block) is converted by
:func:`gridconv.nn.convert` and checked, then timed against torch *at its best*:
- the function: relative error of the outputs and of every gradient against the torch
  model, in float64;
- a training step (forward + backward) and an inference pass, float32, the torch model and
  the converted one each given the input in NCHW and in channels_last (the model converted
  to that memory format too, as a user would), interleaved rounds, medians; each side's
  figure is its faster format, and the record says which;
- peak memory of a training step, in a fresh process per candidate;
- auto's choice for every layer (:func:`gridconv.analysis.layer_table`).

timm is the ``models`` extra (``pip install 'gridconv[models]'``). Nothing is downloaded:
the models are built with random weights.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gridconv.analysis import layer_table
from gridconv.bench.harness import Steps, in_fresh_process, time_interleaved, time_steps
from gridconv.nn.convert import ConversionWarning, convert

FORMATS = ("NCHW", "channels_last")


class LongConvBlock(nn.Module):
    """A Hyena-style gated long convolution (Poli et al. 2023), for ``(N, L, d)`` sequences.

    ``u -> in_proj -> (v, g1, g2)``; ``y = g2 * causal_conv(g1 * v) + D * (g1 * v)``;
    ``-> out_proj``. The long, depthwise, causal filter has one tap per position (as long
    as the sequence). Hyena makes the filter from positions with a small network; here it
    is an explicit weight (as in Fu et al. 2023's long convolutions), so that it is a
    ``torch.nn.Conv1d`` that :func:`gridconv.nn.convert` can swap. ``recipe=True`` computes
    the same convolution the way these papers' code does, ``irfft(rfft(x, 2L) * rfft(k,
    2L))``: the peer.
    """

    def __init__(self, d: int, length: int, *, recipe: bool = False) -> None:
        super().__init__()
        self.length, self.recipe = length, recipe
        self.in_proj = nn.Linear(d, 3 * d)
        self.out_proj = nn.Linear(d, d)
        # causal: pad L - 1 on both sides and keep the first L outputs
        self.filter = nn.Conv1d(d, d, length, padding=length - 1, groups=d, bias=False)
        decay = torch.exp(-torch.linspace(0, 4, length))  # Hyena's exponential modulation
        with torch.no_grad():
            self.filter.weight.mul_(decay.flip(0))  # tap t-s weighs x[s] for output t
        self.D = nn.Parameter(torch.randn(d))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        v, g1, g2 = self.in_proj(u).transpose(1, 2).chunk(3, dim=1)  # each (N, d, L)
        x = g1 * v
        if self.recipe:
            n, L = 2 * self.length, x.shape[-1]
            k = self.filter.weight[:, 0].flip(-1)  # correlation with w = convolution with k
            y = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :L]
        else:
            y = self.filter(x)[..., : x.shape[-1]]
        return self.out_proj((g2 * y + self.D[:, None] * x).transpose(1, 2))


@dataclass(frozen=True)
class ModelCase:
    """A network and its input: a timm model name (with keyword arguments), or ``"long
    conv"`` (:class:`LongConvBlock`) with ``size`` ``(L, d)``."""

    model: str
    batch: int
    size: tuple[int, ...]
    kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.kwargs)
        return f"{self.model}{extra} N{self.batch} {'x'.join(map(str, self.size))}"

    @property
    def spatial(self) -> bool:
        return self.model != "long conv"

    def build(self, *, recipe: bool = False) -> nn.Module:
        """The model, with random weights (seeded), float32, train mode."""
        torch.manual_seed(0)
        if not self.spatial:
            return LongConvBlock(self.size[1], self.size[0], recipe=recipe)
        timm = _timm()
        return timm.create_model(self.model, pretrained=False, **dict(self.kwargs))

    def input(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        g = torch.Generator().manual_seed(1)
        shape = (self.batch, 3, *self.size) if self.spatial else (self.batch, *self.size)
        return torch.randn(shape, generator=g, dtype=dtype)


SUITE = (
    ModelCase("convnext_atto", 8, (128, 128)),
    ModelCase("convnext_atto", 8, (128, 128), (("kernel_sizes", 31),)),
    ModelCase("convmixer_768_32", 2, (112, 112)),
    ModelCase("inception_next_atto", 8, (128, 128)),
    ModelCase("resnet18", 8, (128, 128)),
    ModelCase("long conv", 4, (2048, 128)),
)
QUICK = (  # batch 2: BatchNorm in train mode needs two values per channel on 1x1 maps
    ModelCase("convnext_atto", 2, (32, 32), (("kernel_sizes", 31),)),
    ModelCase("inception_next_atto", 2, (32, 32)),
    ModelCase("resnet18", 2, (32, 32)),
    ModelCase("long conv", 2, (64, 8)),
)


def _timm() -> Any:
    try:
        import timm
    except ImportError as error:  # torchvision failing to load lands here too
        raise ImportError(
            "`gridconv bench --suite models` needs timm (and torchvision, which timm imports): "
            f"pip install 'gridconv[models]' ({error})"
        ) from error
    return timm


def _converted(model: nn.Module) -> nn.Module:
    with warnings.catch_warnings():  # a layer left as it is shows in the layer table
        warnings.simplefilter("ignore", ConversionWarning)
        return convert(model)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def errors(case: ModelCase) -> dict[str, float]:
    """Relative error (2-norm) of the converted model's output, and of its gradients taken
    together as one vector (the input's and every parameter's), against the torch model, in
    float64. (Together: a bias followed by a BatchNorm has a zero gradient, up to rounding,
    whose own relative error means nothing.)"""
    model = case.build().double()
    fast = _converted(model)
    x = case.input(torch.float64).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    out, out2 = model(x), fast(x2)
    out.square().sum().backward()
    out2.square().sum().backward()
    pairs = [(x2.grad, x.grad)]
    pairs += [(q.grad, p.grad) for p, q in zip(model.parameters(), fast.parameters())]
    got = torch.cat([a.reshape(-1) for a, b in pairs if a is not None and b is not None])
    expected = torch.cat([b.reshape(-1) for a, b in pairs if a is not None and b is not None])
    return {"output": _relative(out2, out), "gradient": _relative(got, expected)}


def _variants(case: ModelCase) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """``{candidate: (model, input)}``: torch and gridconv in each memory format (2-D
    models), plus the rfft recipe for the long-convolution block."""
    model = case.build()
    x = case.input()
    found = {"torch NCHW": (model, x), "gridconv NCHW": (_converted(model), x)}
    if case.spatial:
        last = torch.channels_last
        cl_model = case.build().to(memory_format=last)
        found["torch channels_last"] = (cl_model, x.to(memory_format=last))
        found["gridconv channels_last"] = (_converted(cl_model), x.to(memory_format=last))
    else:
        found["rfft recipe (2L)"] = (case.build(recipe=True), x)
    return found


def steps(case: ModelCase) -> Steps:
    """A training step (forward + backward, train mode) per candidate."""
    found: Steps = {}
    for name, (model, x) in _variants(case).items():
        model.train()
        xg = x.detach().clone().requires_grad_()
        found[name] = (functools.partial(_step, model, xg), [xg, *model.parameters()])
    return found


def _step(model: nn.Module, x: torch.Tensor) -> None:
    model(x).float().square().mean().backward()


def inferences(case: ModelCase) -> dict[str, Callable[[], object]]:
    """An inference pass (eval mode, no gradients) per candidate."""
    found: dict[str, Callable[[], object]] = {}
    for name, (model, x) in _variants(case).items():
        model.eval()
        found[name] = functools.partial(_infer, model, x)
    return found


def _infer(model: nn.Module, x: torch.Tensor) -> object:
    with torch.no_grad():
        return model(x)


def step_peak_of(case: ModelCase, name: str) -> dict[str, int]:
    """In this process: peak bytes above what is held before one training step."""
    from gridconv.bench.harness import step_peak

    step, tensors = steps(case)[name]
    return step_peak(step, tensors)


def measure_memory(case: ModelCase, name: str) -> dict[str, int] | None:
    """:func:`step_peak_of` in a fresh process (None where ``/proc`` cannot tell)."""
    return in_fresh_process(
        "from gridconv.bench.models import ModelCase, step_peak_of; "
        f"result = step_peak_of(ModelCase{(*case.__dict__.values(),)!r}, {name!r})"
    )


def best(seconds: dict[str, float], side: str) -> tuple[float, str]:
    """``(seconds, format)`` of ``side`` ("torch" or "gridconv") at its faster format."""
    times = {f: seconds[f"{side} {f}"] for f in FORMATS if f"{side} {f}" in seconds}
    fmt = min(times, key=times.__getitem__)
    return times[fmt], fmt


@dataclass
class ModelRecord:
    """The figures of one model (see the module's docstring)."""

    case: str
    errors: dict[str, float]
    train: dict[str, float]
    inference: dict[str, float]
    memory: dict[str, dict[str, int] | None] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)

    def ratio(self, which: str) -> tuple[float, str, str]:
        """torch's time at its best over gridconv's at its best, and the two formats."""
        seconds = self.train if which == "train" else self.inference
        t, t_fmt = best(seconds, "torch")
        g, g_fmt = best(seconds, "gridconv")
        return t / g, t_fmt, g_fmt

    def as_dict(self) -> dict[str, Any]:
        ratios = {w: dict(zip(("ratio", "torch", "gridconv"), self.ratio(w))) for w in
                  ("train", "inference")}  # fmt: skip
        return {
            "case": self.case,
            "errors": self.errors,
            "train": self.train,
            "inference": self.inference,
            "torch_over_gridconv": ratios,
            "memory": self.memory,
            "layers": self.layers,
        }


def run(
    quick: bool = False, rounds: int = 7, memory: bool = True, cases: tuple[ModelCase, ...] = ()
) -> list[ModelRecord]:
    """Errors, times, memory and the layer table of every model of the suite."""
    records = []
    for case in cases or (QUICK if quick else SUITE):
        train = time_steps(steps(case), rounds, budget=0.0)
        calls = inferences(case)
        inference = time_interleaved(calls, rounds=rounds, max_rounds=rounds, budget=0.0).seconds
        model = case.build()
        rows = layer_table(model, case.input())
        record = ModelRecord(
            case.name,
            errors(case),
            train,
            inference,
            {name: measure_memory(case, name) for name in train} if memory else {},
            [r.as_dict() for r in rows],
        )
        records.append(record)
    return records


def summary(records: list[ModelRecord]) -> dict[str, float]:
    """The worst and geometric-mean ratio (torch at its best over gridconv at its best)."""

    def gmean(values: list[float]) -> float:
        return math.exp(sum(map(math.log, values)) / len(values)) if values else math.nan

    out = {}
    for which in ("train", "inference"):
        values = [r.ratio(which)[0] for r in records]
        out[f"{which}_torch_over_gridconv_min"] = min(values, default=math.nan)
        out[f"{which}_torch_over_gridconv_gmean"] = gmean(values)
    return out
