"""Measure networks: parameter and FLOP counts, receptive fields, how much the output
moves when the input is translated (the invariance pooling buys, sec. 9.3), and a per-layer
table of a model's convolutions (:func:`layer_table`: input, auto's methods, times).

Everything here runs the model once on zeros (or the given input) with forward hooks, so
it sees the shapes the model really makes, ``padding="same"`` with strides included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gridconv._checks import check_int, check_tensor, describe
from gridconv._shapes import ntuple, parse_padding, resolve_padding
from gridconv.analysis.layers import LayerRow, layer_table, memory_format
from gridconv.nn.conv import Conv
from gridconv.nn.local import LocallyConnected
from gridconv.nn.lowrank import LowRankConv
from gridconv.nn.pooling import Pool
from gridconv.nn.tiled import TiledConv

_GRIDCONV_WINDOWED = (Conv, LocallyConnected, TiledConv, LowRankConv, Pool)
_TORCH_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TORCH_POOL = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.LPPool1d,
    nn.LPPool2d,
    nn.LPPool3d,
)
_TRANSPOSED = nn.modules.conv._ConvTransposeNd
_KNOWN = (*_GRIDCONV_WINDOWED, *_TORCH_CONV, *_TORCH_POOL, _TRANSPOSED, nn.Linear)


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """The number of scalar parameters of ``module``; a shared parameter counts once.

    Example:
        >>> import gridconv as gc
        >>> full = gc.nn.Conv2d(16, 32, 3, bias=False)
        >>> separable = gc.nn.DepthwiseSeparableConv2d(16, 32, 3, bias=False)
        >>> gc.analysis.count_parameters(full), gc.analysis.count_parameters(separable)
        (4608, 656)

    Shape:
        Output: an int.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module, got {describe(module)}.")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _check_input_shape(input_shape: object) -> tuple[int, ...]:
    if isinstance(input_shape, torch.Size):
        input_shape = tuple(input_shape)
    if not isinstance(input_shape, Sequence) or len(input_shape) < 2:
        raise ValueError(
            f"`input_shape` must be the whole input shape (N, C, *spatial), "
            f"got {describe(input_shape)}."
        )
    return tuple(check_int("input_shape", n, minimum=1) for n in input_shape)


def _first_parameter(module: nn.Module) -> Tensor | None:
    return next(iter(module.parameters()), None)


@contextmanager
def _recorded(module: nn.Module, watch: Callable[[nn.Module], bool]) -> Iterator[list]:
    """Record ``(name, module, input, output)`` of each watched submodule, in call order.

    A watched module's own submodules are not watched.
    """
    calls: list[tuple[str, nn.Module, Tensor, Tensor]] = []
    handles: list[Any] = []
    inside: list[str] = []
    for name, sub in module.named_modules():
        if any(name.startswith(prefix + ".") or not prefix for prefix in inside):
            continue
        if watch(sub):
            inside.append(name)

            def hook(m: nn.Module, args: tuple, out: Any, name: str = name) -> None:
                if args and isinstance(args[0], Tensor) and isinstance(out, Tensor):
                    calls.append((name, m, args[0], out))

            handles.append(sub.register_forward_hook(hook))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def _run_on_zeros(module: nn.Module, input_shape: tuple[int, ...]) -> Any:
    weight = _first_parameter(module)
    factory: dict[str, Any] = {"dtype": torch.float32, "device": "cpu"}
    if weight is not None and weight.is_floating_point():
        factory = {"dtype": weight.dtype, "device": weight.device}
    with torch.no_grad():
        return module(torch.zeros(input_shape, **factory))


def _multiply_adds(module: nn.Module, x: Tensor, out: Tensor) -> int:
    """Multiply-adds of one call of a linear layer (0 for anything else)."""
    if isinstance(module, _TRANSPOSED):  # every input cell meets C_out/groups * prod(k) weights
        return x.numel() * module.weight[0].numel()
    if isinstance(module, (Conv, *_TORCH_CONV)):
        return out.numel() * module.weight[0].numel()
    if isinstance(module, (LocallyConnected, TiledConv)):  # one C_in * prod(k) kernel per cell
        return out.numel() * math.prod(module.weight.shape[-len(module.kernel_size) - 1 :])
    if isinstance(module, LowRankConv):
        return _low_rank_multiply_adds(module, x, out)
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


def _low_rank_multiply_adds(module: LowRankConv, x: Tensor, out: Tensor) -> int:
    """The 1-D passes of :func:`gridconv.separable_conv`: the last dim first, on every
    ``(input channel, output channel, term)`` map of the padded input."""
    d = len(module.factors)
    kernel, _, _, pairs = _window(module, tuple(x.shape[-d:]))
    sizes = [n + b + a for n, (b, a) in zip(x.shape[-d:], pairs)]
    maps = (x.shape[0] if x.ndim == d + 2 else 1) * x.shape[-d - 1]
    maps *= module.factors[0].shape[0] // module.groups * module.factors[0].shape[2]
    total = 0
    for i in reversed(range(d)):
        sizes[i] = out.shape[-d + i]
        total += maps * math.prod(sizes) * kernel[i]
    return total


def count_flops(
    module: nn.Module, input_shape: Sequence[int], *, by_layer: bool = False
) -> int | dict[str, int]:
    """Floating-point operations of one forward pass: 2 per multiply-add of the linear layers.

    Counted, exactly, from the shapes of one forward pass on zeros: convolutions (gridconv's,
    torch's, transposed ones), locally connected and tiled layers, low-rank convolutions
    (as their separable passes) and ``Linear``. Biases, activations, normalisation and pooling
    are not counted. The count is the direct algorithm's; ``method="fft"`` may do fewer.

    Args:
        module: the network.
        input_shape: the whole input shape, ``(N, C, *spatial)``.
        by_layer: return ``{submodule name: FLOPs}`` for the counted layers instead.

    Shape:
        Output: an int, or a dict of them.

    Example:
        >>> import gridconv as gc
        >>> gc.analysis.count_flops(gc.nn.Conv2d(16, 32, 3, padding="same"), (1, 16, 8, 8))
        589824
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module, got {describe(module)}.")
    shape = _check_input_shape(input_shape)
    with _recorded(module, lambda m: isinstance(m, _KNOWN)) as calls:
        _run_on_zeros(module, shape)
    counts: dict[str, int] = {}
    for name, sub, x, out in calls:
        name = name or type(module).__name__
        counts[name] = counts.get(name, 0) + 2 * _multiply_adds(sub, x, out)
    return counts if by_layer else sum(counts.values())


@dataclass(frozen=True)
class ReceptiveField:
    """Where the output units of a stack of windowed layers look in its input, per dim.

    Output unit ``i`` sees input cells ``start + i * jump`` to
    ``start + i * jump + size - 1`` (a negative start reaches into the padding).

    Attributes:
        size: cells per dim that one output unit depends on.
        jump: input cells between neighbouring output units (the product of the strides).
        start: the first input cell of output unit 0.
        output_size: the spatial size of the feature map the field belongs to.
    """

    size: tuple[int, ...]
    jump: tuple[int, ...]
    start: tuple[int, ...]
    output_size: tuple[int, ...]

    def span(self, index: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """First and last input cell (inclusive, unclipped) of output unit ``index``."""
        return tuple(
            (s + i * j, s + i * j + n - 1)
            for s, i, j, n in zip(self.start, index, self.jump, self.size)
        )


def _window(module: Any, size: tuple[int, ...]) -> tuple[tuple, tuple, tuple, tuple]:
    """Kernel, stride, dilation and ``(before, after)`` padding of a windowed layer."""
    d = len(size)
    if isinstance(module, LowRankConv):
        kernel = tuple(f.shape[3] for f in module.factors)
    else:
        kernel = ntuple("kernel_size", module.kernel_size, d)
    stride = ntuple("stride", module.stride or kernel, d)
    dilation = ntuple("dilation", getattr(module, "dilation", 1), d)
    padding: Any = getattr(module, "padding", 0)
    if isinstance(module, _TORCH_CONV) and not isinstance(padding, str):
        padding = tuple(padding)
    pairs = resolve_padding(parse_padding(padding, d), size, kernel, stride, dilation)
    return kernel, stride, dilation, pairs


def receptive_field(model: nn.Module, input_shape: Sequence[int]) -> ReceptiveField:
    """The receptive field of the last grid-shaped feature map of a chain of layers.

    Runs ``model`` once on zeros and follows, in call order, every convolution, locally
    connected, tiled and pooling layer of gridconv and torch (any padding, stride and
    dilation). Layers that keep the spatial size (activations, normalisation, channel
    pooling, 1x1 convolutions) pass the field through. It stops at the first module that
    returns something other than a grid (``Flatten``, global or pyramid pooling).

    Args:
        model: a chain of layers (``nn.Sequential`` or any module calling them in turn).
        input_shape: the whole input shape, ``(N, C, *spatial)``.

    Shape:
        Output: a :class:`ReceptiveField` with one entry per spatial dim.

    Raises:
        ValueError: a module that changes the spatial size in a way it cannot follow
            (upsampling, adaptive pooling, a transposed convolution) or a size change between
            modules (a functional call in ``forward``, or branches).

    Example:
        >>> import torch, gridconv as gc
        >>> net = torch.nn.Sequential(gc.nn.Conv2d(1, 4, 3), gc.nn.Pool2d(2),
        ...                           gc.nn.Conv2d(4, 4, 3, dilation=2))
        >>> gc.analysis.receptive_field(net, (1, 1, 28, 28))
        ReceptiveField(size=(12, 12), jump=(2, 2), start=(0, 0), output_size=(9, 9))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {describe(model)}.")
    shape = _check_input_shape(input_shape)
    if not 1 <= len(shape) - 2 <= 3:
        raise ValueError(
            f"`input_shape` must have 1, 2 or 3 spatial dims after (N, C), got {shape}."
        )
    windowed = (*_GRIDCONV_WINDOWED, *_TORCH_CONV, *_TORCH_POOL)
    with _recorded(model, lambda m: isinstance(m, windowed) or not any(m.children())) as calls:
        result = _run_on_zeros(model, shape)
    d = len(shape) - 2
    size, jump, start = [1] * d, [1] * d, [0] * d
    current, previous = shape[2:], "the input"
    for name, module, x, out in calls:
        if x.ndim != len(shape) or out.ndim != len(shape):
            break
        if tuple(x.shape[2:]) != current:
            raise ValueError(
                f"the spatial size changes from {current} to {tuple(x.shape[2:])} between "
                f"{previous} and module `{name}` outside any module; receptive_field follows "
                "modules called in a chain, not functional calls or branches."
            )
        if isinstance(module, windowed):
            kernel, stride, dilation, pairs = _window(module, current)
            for i in range(d):
                size[i] += dilation[i] * (kernel[i] - 1) * jump[i]
                start[i] -= pairs[i][0] * jump[i]
                jump[i] *= stride[i]
        elif tuple(out.shape[2:]) != current:
            raise ValueError(
                f"module `{name}` ({type(module).__name__}) changes the spatial size from "
                f"{current} to {tuple(out.shape[2:])} and is not a convolution or pooling "
                "layer receptive_field knows."
            )
        current, previous = tuple(out.shape[2:]), f"module `{name}`"
    else:
        grid = isinstance(result, Tensor) and result.ndim == len(shape)
        if grid and tuple(result.shape[2:]) != current:
            raise ValueError(
                f"the model's output has spatial size {tuple(result.shape[2:])} but its last "
                f"module makes {current}: a functional call in `forward` changes it, which "
                "receptive_field cannot follow."
            )
    return ReceptiveField(tuple(size), tuple(jump), tuple(start), current)


def _shifted(x: Tensor, shift: int, dims: tuple[int, ...], fill: str) -> Tensor:
    """``x`` moved by ``shift`` cells towards higher indices along each of ``dims``."""
    if fill == "circular":
        return torch.roll(x, (shift,) * len(dims), dims)
    out = x
    for dim in dims:
        out = torch.roll(out, shift, dim)
        n = out.shape[dim]
        cut = slice(0, shift) if shift >= 0 else slice(n + shift, n)
        index = [slice(None)] * out.ndim
        index[dim] = cut
        out[tuple(index)] = 0
    return out


def translation_sensitivity(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    shifts: int | Sequence[int],
    *,
    dims: int | Sequence[int] = -1,
    fill: str = "zeros",
) -> Tensor:
    """How much ``model``'s output moves when its input is translated, relative to its size.

    For each shift ``s``, ``||f(shift(x, s)) - f(x)|| / ||f(x)||`` per example, averaged over
    the batch. Near 0: invariant to that translation. Pooling over ``k`` cells makes the
    output change little for shifts below ``k`` (sec. 9.3, fig. 9.8); a convolution alone
    is equivariant, not invariant, and its output changes as much as the input.

    Args:
        model: a module or function of ``x``; call ``model.eval()`` first for dropout or
            batch norm.
        x: ``(N, C, *spatial)``.
        shifts: an int ``s`` for shifts ``0, 1, ..., s``, or a sequence of ints (negative
            ones move towards lower indices).
        dims: the dim or dims of ``x`` to shift along (every one by ``s``); default the last.
        fill: ``"zeros"`` (cells shifted in are 0) or ``"circular"`` (wrap around).

    Shape:
        - x: ``(N, C, *spatial)``
        - Output: ``(len(shifts),)``, float64; the entry of shift 0 is 0.

    Example:
        >>> import torch, gridconv as gc
        >>> x = torch.zeros(1, 1, 16); x[..., 4::8] = 1.0
        >>> pooled = gc.nn.Pool1d(8, method="max")
        >>> gc.analysis.translation_sensitivity(pooled, x, 3).tolist()
        [0.0, 0.0, 0.0, 0.0]
    """
    if not callable(model):
        raise TypeError(f"`model` must be a module or function, got {describe(model)}.")
    x = check_tensor("x", x)
    if x.ndim < 3:
        raise ValueError(f"`x` must have shape (N, C, *spatial), got shape {tuple(x.shape)}.")
    dims_list = [dims] if isinstance(dims, int) else dims
    if not isinstance(dims_list, Sequence) or not dims_list:
        raise ValueError(f"`dims` must be an int or a sequence of ints, got {describe(dims)}.")
    spatial = range(2, x.ndim)
    resolved = []
    for dim in dims_list:
        dim = check_int("dims", dim)
        if dim + (x.ndim if dim < 0 else 0) not in spatial:
            raise ValueError(
                f"`dims` must name spatial dims of `x` ({list(spatial)} or negative), got {dim}."
            )
        resolved.append(dim % x.ndim)
    if fill not in ("zeros", "circular"):
        raise ValueError(f"`fill` must be 'zeros' or 'circular'; got {describe(fill)}.")
    if isinstance(shifts, bool) or not isinstance(shifts, int | Sequence):
        raise TypeError(
            f"`shifts` must be an int >= 0 or a sequence of ints, got {describe(shifts)}."
        )
    if isinstance(shifts, int):
        shifts = range(check_int("shifts", shifts, minimum=0) + 1)
    shifts = [check_int("shifts", s) for s in shifts]
    if not shifts:
        raise ValueError("`shifts` must not be empty.")
    smallest = min(x.shape[dim] for dim in resolved)
    if any(abs(s) >= smallest for s in shifts):
        raise ValueError(
            f"every shift must be smaller than the shifted dims (={smallest}), got {shifts}."
        )
    with torch.no_grad():
        reference = model(x).flatten(1).double()
        scale = reference.norm(dim=1).clamp_min(torch.finfo(torch.float64).tiny)
        changes = []
        for s in shifts:
            # shift 0 is the identity: its entry is 0 by definition, not up to rounding (a
            # copied input can take another kernel path, 6e-8 apart in float32)
            moved = (
                reference
                if s == 0
                else model(_shifted(x, s, tuple(resolved), fill)).flatten(1).double()
            )
            changes.append(((moved - reference).norm(dim=1) / scale).mean())
    return torch.stack(changes).cpu()


__all__ = [
    "LayerRow",
    "ReceptiveField",
    "count_flops",
    "count_parameters",
    "layer_table",
    "memory_format",
    "receptive_field",
    "translation_sensitivity",
]
