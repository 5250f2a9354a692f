"""Swap the convolutions of any PyTorch model for gridconv's, and back.

:func:`convert` walks a model and replaces each ``torch.nn.Conv1d/2d/3d`` (and each subclass
whose forward gridconv expresses exactly) by the matching :class:`gridconv.nn.Conv` layer,
holding the very same ``Parameter`` objects under the same names, so the model computes the
same function, its ``state_dict`` keys do not change, and an optimizer built before still
steps it. :func:`revert` puts the original modules back. :func:`conversion_plan` says, layer
by layer, what :func:`convert` does or would do, and why a layer is left as it is.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from gridconv._checks import describe
from gridconv.nn.conv import Conv, Conv1d, Conv2d, Conv3d

__all__ = ["ConversionWarning", "Verdict", "conversion_plan", "convert", "revert"]

Filter = Callable[[str, nn.Module], bool]

_GRIDCONV: dict[int, type[Conv]] = {1: Conv1d, 2: Conv2d, 3: Conv3d}
_TORCH: dict[int, Any] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}

# Subclasses that override forward with a function gridconv has, by qualified class name
# (their libraries are not imported here): the padding that forward applies.
# timm's Conv2dSame pads as TensorFlow's "SAME" at any stride: total
# max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0), the odd cell after: gridconv's "same".
# (timm's Conv2dSameExport is not among them: it keeps the padding of the first input size
# it sees, which is wrong for any other size.)
KNOWN_SUBCLASSES: dict[str, str] = {"timm.layers.conv2d_same.Conv2dSame": "same"}

# Where the converted layer keeps the module it replaced (outside ``_modules``, so it adds
# no state_dict keys and no submodule): what revert puts back.
_ORIGINAL = "_gridconv_original"
# The hook tables a swapped layer shares with the module it replaces, so that hooks
# registered on either keep firing (their handles stay valid).
_HOOKS = (
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_backward_pre_hooks",
    "_backward_hooks",
)


class ConversionWarning(UserWarning):
    """:func:`convert` left some convolution layers as they are (the message lists them)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class Verdict:
    """What :func:`convert` does with one convolution layer of a model.

    Attributes:
        name: the layer's qualified name in the model (``""`` for the model itself).
        kind: its class, qualified (``"torch.nn.modules.conv.Conv2d"``).
        converted: True if it is (or would be) a gridconv layer after :func:`convert`.
        reason: how it converts (the padding it gets), or why it is left as it is.
    """

    name: str
    kind: str
    converted: bool
    reason: str

    def __str__(self) -> str:
        verb = "converted" if self.converted else "left"
        return f"{self.name or '<root>'} ({self.kind}): {verb}, {self.reason}"


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _judge(module: Any) -> tuple[bool, str, Any]:
    """``(converts, reason, padding)`` for a module that is a torch convolution."""
    if isinstance(module, nn.modules.lazy.LazyModuleMixin):
        return False, "a lazy module whose parameters are not made yet (run it once first)", None
    d = len(module.kernel_size)
    base = _TORCH[d]
    cls = type(module)
    known = KNOWN_SUBCLASSES.get(_qualified(cls))
    forward_kept = cls.forward is base.forward and cls._conv_forward is base._conv_forward
    if known is None and not forward_kept:
        return False, "overrides forward with a function gridconv does not know", None
    if hasattr(module, "parametrizations"):
        return False, "its weight is parametrized (torch.nn.utils.parametrize)", None
    extra = sorted(set(module._parameters) - {"weight", "bias"})
    if extra or not isinstance(module._parameters.get("weight"), nn.Parameter):
        what = ", ".join(extra) or "a weight that is not a Parameter"
        return False, f"has parameters beyond weight and bias ({what})", None
    if module._buffers:
        return False, f"has buffers ({', '.join(module._buffers)}) gridconv would drop", None
    if known is not None:
        if module.padding_mode != "zeros" or any(p != 0 for p in module.padding):
            return False, "pads in a way its known forward does not", None
        return True, f'padding="{known}" ({cls.__name__})', known
    padding = module.padding
    return True, f"padding={padding!r}, padding_mode={module.padding_mode!r}", padding


def _swap(module: Any, padding: Any) -> Conv:
    """A gridconv layer computing what ``module`` does, holding its very Parameters."""
    d = len(module.kernel_size)
    layer = _GRIDCONV[d](
        module.in_channels,
        module.out_channels,
        module.kernel_size,
        module.stride,
        padding,
        module.dilation,
        module.groups,
        module.bias is not None,
        padding_mode=module.padding_mode,
        device="meta",  # no memory, no initialisation: the parameters are replaced next
        dtype=module.weight.dtype,
    )
    layer.weight = module.weight
    if module.bias is not None:
        layer.bias = module.bias
    layer.train(module.training)
    for table in _HOOKS:
        if hasattr(module, table):
            layer.__dict__[table] = getattr(module, table)
    layer.__dict__[_ORIGINAL] = module
    return layer


def _check(module: object, filter: object) -> None:
    if not isinstance(module, nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module, got {describe(module)}.")
    if filter is not None and not callable(filter):
        raise TypeError(
            "`filter` must be None or a callable filter(qualified_name, module) -> bool, "
            f"got {describe(filter)}."
        )


def _convolutions(module: nn.Module) -> list[tuple[str, Any]]:
    """Every torch convolution (not transposed) of ``module``, by qualified name."""
    return [
        (name, m) for name, m in module.named_modules() if isinstance(m, tuple(_TORCH.values()))
    ]


def conversion_plan(module: nn.Module, *, filter: Filter | None = None) -> list[Verdict]:
    """What :func:`convert` does with each convolution layer of ``module``, and why.

    Layers ``filter`` does not pick are not listed; gridconv layers that :func:`convert`
    made are listed as converted.

    Example:
        >>> import torch, gridconv as gc
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
        >>> [str(v) for v in gc.nn.conversion_plan(model)]
        ["0 (torch.nn.modules.conv.Conv2d): converted, padding=(1, 1), padding_mode='zeros'"]

    Shape:
        Not applicable: one :class:`Verdict` per convolution layer, in module order.
    """
    _check(module, filter)
    verdicts = []
    for name, m in module.named_modules():
        if filter is not None and not filter(name, m):
            continue
        original = m.__dict__.get(_ORIGINAL)
        if isinstance(m, Conv) and original is not None:
            kind = _qualified(type(original))
            verdicts.append(Verdict(name, kind, True, f"converted already ({_qualified(type(m))})"))
        elif isinstance(m, tuple(_TORCH.values())):
            converts, reason, _ = _judge(m)
            verdicts.append(Verdict(name, _qualified(type(m)), converts, reason))
    return verdicts


def _replace(root: nn.Module, new: dict[int, nn.Module]) -> nn.Module:
    """``root`` with every occurrence of each module ``m`` (a layer shared between two
    places included) replaced by ``new[id(m)]``."""
    if id(root) in new:
        return new[id(root)]
    for parent in list(root.modules()):
        for child_name, child in list(parent._modules.items()):
            if child is not None and id(child) in new:
                parent._modules[child_name] = new[id(child)]
    return root


def convert(module: nn.Module, *, inplace: bool = False, filter: Filter | None = None) -> nn.Module:
    """Swap every ``torch.nn.Conv1d/2d/3d`` of ``module`` for the matching gridconv layer.

    The swapped layers hold the very same ``Parameter`` objects under the same names, so
    the model computes the same function (to rounding), its ``state_dict`` loads strictly
    into the other, device, dtype and train/eval mode are kept, and an optimizer built on
    the model before (with ``inplace=True``) still steps it. Forward and backward hooks
    registered on a swapped layer keep firing. A subclass is swapped when its forward is
    torch's (it adds nothing to the function) or is one gridconv expresses exactly, such as
    timm's ``Conv2dSame`` (TensorFlow's "SAME", gridconv's ``padding="same"``); other
    subclasses are left as they are and listed in a :class:`ConversionWarning`
    (:func:`conversion_plan` gives the same list as records). Converting twice changes
    nothing. Transposed convolutions are not touched.

    Args:
        module: any ``torch.nn.Module``; a convolution itself is returned converted.
        inplace: change ``module`` itself; otherwise a deep copy is converted and returned.
        filter: ``filter(qualified_name, module) -> bool`` picks the layers to convert
            (``""`` names ``module`` itself); None converts every one that can be.

    Returns:
        The converted model (``module`` itself when ``inplace``).

    Raises:
        TypeError: ``module`` is not a ``torch.nn.Module``; ``filter`` is not callable.

    Example:
        >>> import torch, gridconv as gc
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, padding=2), torch.nn.ReLU())
        >>> fast = gc.nn.convert(model)
        >>> type(fast[0]).__name__, fast[0].weight is model[0].weight
        ('Conv2d', False)
        >>> x = torch.randn(2, 3, 16, 16)
        >>> torch.allclose(fast(x), model(x), atol=1e-5)
        True
        >>> type(gc.nn.revert(fast)[0]) is torch.nn.Conv2d
        True

    Shape:
        Unchanged: the model's inputs and outputs keep their shapes.
    """
    _check(module, filter)
    if not inplace:
        module = copy.deepcopy(module)
    left: list[Verdict] = []
    new: dict[int, nn.Module] = {}
    for name, m in _convolutions(module):
        if filter is not None and not filter(name, m):
            continue
        converts, reason, padding = _judge(m)
        if converts:
            new[id(m)] = _swap(m, padding)
        else:
            left.append(Verdict(name, _qualified(type(m)), False, reason))
    if left:
        lines = "\n".join(f"  {v}" for v in left)
        warnings.warn(
            f"gridconv.nn.convert left {len(left)} convolution layer(s) as they are:\n{lines}",
            ConversionWarning,
            stacklevel=2,
        )
    return _replace(module, new)


def revert(module: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Put back the modules :func:`convert` replaced: their original classes (a timm
    ``Conv2dSame`` comes back as one), holding the converted layers' current Parameters, in
    the converted layers' train/eval mode. gridconv layers that :func:`convert` did not make
    are left as they are.

    Args:
        module: a model (or one layer) that :func:`convert` returned.
        inplace: change ``module`` itself; otherwise a deep copy is reverted and returned.

    Raises:
        TypeError: ``module`` is not a ``torch.nn.Module``.

    Example:
        >>> import torch, gridconv as gc
        >>> conv = torch.nn.Conv1d(2, 4, 3)
        >>> layer = gc.nn.convert(conv, inplace=True)
        >>> gc.nn.revert(layer, inplace=True) is conv, layer.weight is conv.weight
        (True, True)

    Shape:
        Unchanged: the model's inputs and outputs keep their shapes.
    """
    _check(module, None)
    if not inplace:
        module = copy.deepcopy(module)
    new: dict[int, nn.Module] = {}
    for m in module.modules():
        original = m.__dict__.get(_ORIGINAL)
        if not isinstance(m, Conv) or original is None:
            continue
        original._parameters["weight"] = m.weight
        original._parameters["bias"] = m.bias
        original.train(m.training)
        for table in _HOOKS:
            if table in m.__dict__:
                original.__dict__[table] = m.__dict__[table]
        new[id(m)] = original
    return _replace(module, new)
