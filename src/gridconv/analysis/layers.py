"""A model's convolutions, layer by layer: what each gets as input, what gridconv's auto
picks for it (for training and for inference), and what it costs in torch and in gridconv.

:func:`layer_table` runs the model once on an example input (converted by
:func:`gridconv.nn.convert`, on a copy), records each convolution's input, and either prices
each layer with the methods' cost models or, under ``planning("measure")`` (or with
``measure=True``), times it: torch's own layer against the converted one, on that very
input, in interleaved rounds.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gridconv._checks import describe
from gridconv.functional._spec import setup
from gridconv.functional.conv import auto_method_for
from gridconv.functional.methods.base import Workload
from gridconv.functional.methods.planner import current_mode, estimates
from gridconv.nn.conv import Conv
from gridconv.nn.convert import ConversionWarning, conversion_plan, convert

__all__ = ["LayerRow", "layer_table", "memory_format"]

_TORCH_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def memory_format(x: Tensor) -> str:
    """``"contiguous"`` (NCHW), ``"channels_last"``, ``"channels_last_3d"`` or ``"strided"``
    (anything else); a tensor that is both (one channel, say) counts as contiguous."""
    if x.is_contiguous():
        return "contiguous"
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return "channels_last"
    if x.ndim == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return "channels_last_3d"
    return "strided"


@dataclass(frozen=True)
class LayerRow:
    """One convolution call of a model, for one example input.

    Attributes:
        name: the layer's qualified name in the model.
        input_shape, memory_format: of the layer's input in this forward pass.
        kernel, stride, groups: the layer's.
        converted: whether :func:`gridconv.nn.convert` swaps it (``note`` says why not).
        method_train, method_infer: what auto runs in a training step (input and weight
            want gradients) and in inference; ``"torch"`` for a layer left unconverted.
        torch_train, torch_infer: seconds of torch's layer (forward + backward; forward).
        gridconv_train, gridconv_infer: the same for the converted layer.
        measured: the times were measured (else: the cost models' estimates, which
            ignore the memory format).
        note: why a layer is left as it is; empty otherwise.
    """

    name: str
    input_shape: tuple[int, ...]
    memory_format: str
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    groups: int
    converted: bool
    method_train: str
    method_infer: str
    torch_train: float
    torch_infer: float
    gridconv_train: float
    gridconv_infer: float
    measured: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _recorded_inputs(model: nn.Module, x: Tensor) -> list[tuple[str, Any, Tensor]]:
    """``(name, layer, input)`` of each convolution call of one forward pass, in order."""
    calls: list[tuple[str, Any, Tensor]] = []
    handles = []
    for name, sub in model.named_modules():
        if isinstance(sub, (Conv, *_TORCH_CONV)):

            def hook(m: nn.Module, args: tuple, name: str = name) -> None:
                if args and isinstance(args[0], Tensor):
                    calls.append((name, m, args[0].detach()))

            handles.append(sub.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _methods(layer: Conv, x: Tensor) -> tuple[tuple[str, float, float], tuple[str, float, float]]:
    """For training, then inference: ``(auto's method, torch's seconds, its seconds)`` by
    the cost models (torch's convolution is gridconv's direct method)."""
    kw: dict[str, Any] = {
        "stride": layer.stride,
        "padding": layer.padding,
        "dilation": layer.dilation,
        "groups": layer.groups,
        "padding_mode": layer.padding_mode,
    }
    w = layer.weight.detach()
    rows = []
    for grads in ((True, True), (False, False)):
        xg, wg = x.requires_grad_(grads[0]), w.requires_grad_(grads[1])
        with torch.set_grad_enabled(any(grads)):
            method = layer.method if layer.method != "auto" else auto_method_for(xg, wg, **kw)
        xb, spec, _ = setup(xg, wg, None, *kw.values())
        work = Workload(xb.shape[0], w.shape[0], spec, x.device.type, x.dtype, grads)
        cost = estimates(work)
        rows.append((method, cost.get("direct", float("nan")), cost.get(method, float("nan"))))
    x.requires_grad_(False)
    return rows[0], rows[1]


def _timed(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each call, in ``rounds`` interleaved rounds after a warm-up; every
    other round in the reverse order, so that neither always runs in the other's wake."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()
    for i in range(rounds):
        for name, call in list(calls.items())[:: 1 if i % 2 == 0 else -1]:
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _measure(layer: nn.Module, reference: nn.Module, x: Tensor, rounds: int) -> list[float]:
    """Seconds of ``reference`` (torch) and ``layer`` (gridconv): training step, inference."""
    xg = x.detach().requires_grad_()
    params = [*layer.parameters(), *reference.parameters(), xg]

    def step(module: nn.Module) -> Callable[[], None]:
        def run() -> None:
            for p in params:
                p.grad = None
            module(xg).sum().backward()

        return run

    def infer(module: nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return module(x)

        return run

    trained = _timed({"torch": step(reference), "gridconv": step(layer)}, rounds)
    inferred = _timed({"torch": infer(reference), "gridconv": infer(layer)}, rounds)
    return [trained["torch"], inferred["torch"], trained["gridconv"], inferred["gridconv"]]


def layer_table(
    model: nn.Module, x: Tensor, *, measure: bool | None = None, rounds: int = 5
) -> list[LayerRow]:
    """One :class:`LayerRow` per convolution call of ``model`` on the example input ``x``.

    The model is converted on a copy (``model`` itself is not changed) and run once on
    ``x``. Each layer is priced by the methods' cost models, or, with ``measure=True`` (by
    default: inside ``gridconv.planning("measure")``), timed on its recorded input: torch's
    own layer against the converted one, medians of ``rounds`` interleaved rounds, both for a
    training step (forward + backward) and for inference. Layers that cannot be converted
    are listed with the reason, their gridconv columns torch's.

    Args:
        model: any ``torch.nn.Module`` taking one tensor.
        x: an example input.
        measure: time the layers (True), price them (False); None follows the planning mode.
        rounds: interleaved rounds per measured layer.

    Example:
        >>> import torch, gridconv as gc
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 31))
        >>> rows = gc.analysis.layer_table(model, torch.randn(1, 3, 128, 128))
        >>> [(r.name, r.kernel, r.method_infer) for r in rows]
        [('0', (3, 3), 'direct'), ('1', (31, 31), 'fft')]

    Shape:
        - x: whatever ``model`` takes (one tensor).
        - Output: a list with one row per convolution call.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {describe(model)}.")
    if not isinstance(x, Tensor):
        raise TypeError(f"`x` must be a tensor (an example input), got {describe(x)}.")
    if measure is None:
        measure = current_mode() == "measure"
    left = {v.name: v.reason for v in conversion_plan(model) if not v.converted}
    with warnings.catch_warnings():  # the rows list the layers left, with the reason
        warnings.simplefilter("ignore", ConversionWarning)
        converted = convert(model).eval()
    rows = []
    for name, layer, inp in _recorded_inputs(converted, x):
        common: dict[str, Any] = {
            "name": name,
            "input_shape": tuple(inp.shape),
            "memory_format": memory_format(inp),
            "kernel": tuple(layer.kernel_size),
            "stride": tuple(layer.stride),
            "groups": layer.groups,
            "measured": measure,
        }
        if not isinstance(layer, Conv):
            seconds = _measure(layer, layer, inp, rounds) if measure else [float("nan")] * 4
            rows.append(
                LayerRow(**common, converted=False, method_train="torch", method_infer="torch",
                         torch_train=seconds[0], torch_infer=seconds[1],
                         gridconv_train=seconds[0], gridconv_infer=seconds[1],
                         note=left.get(name, "not a convolution gridconv converts"))
            )  # fmt: skip
            continue
        train, infer = _methods(layer, inp)
        seconds = [train[1], infer[1], train[2], infer[2]]
        reference = layer.__dict__.get("_gridconv_original")
        if measure and reference is not None:
            seconds = _measure(layer, reference, inp, rounds)
        rows.append(
            LayerRow(**common, converted=True, method_train=train[0], method_infer=infer[0],
                     torch_train=seconds[0], torch_infer=seconds[1],
                     gridconv_train=seconds[2], gridconv_infer=seconds[3])
        )  # fmt: skip
    return rows
