"""N-d convolution (Goodfellow et al. 2016, sec. 9.1 and 9.5) with every padding form.

``conv`` validates once, resolves padding to ``(before, after)`` pairs, and hands the
batched input to one *method*. The direct method pads asymmetrically (or in a non-zero
mode) once and runs ``torch.nn.functional.convNd``: oneDNN on CPU, cuDNN on GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar, cast

import torch
from torch import Tensor

from gridconv._checks import check_choice, describe
from gridconv._shapes import Padding
from gridconv.functional._spec import finish, setup
from gridconv.functional._trace import tracing
from gridconv.functional.methods import REGISTRY, KernelCache, planner
from gridconv.functional.methods.base import wanted_grads


def _autocast_casts(t: object) -> bool:
    """Whether autocast casts ``t`` for a low-precision op: a floating tensor, not float64."""
    return isinstance(t, Tensor) and t.is_floating_point() and t.dtype != torch.float64


def autocast_dtype(x: object) -> torch.dtype | None:
    """The dtype torch's convolution would compute ``x`` in under the active
    ``torch.autocast`` for its device, or None (no autocast, or an input autocast leaves
    alone: not a floating tensor, or float64)."""
    # one C call first: it is every call's cost outside autocast (0.15 us against 1)
    if not torch._C._is_any_autocast_enabled() or not _autocast_casts(x):
        return None
    device = cast(Tensor, x).device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None


_T = TypeVar("_T")


def _cast(t: _T, dtype: torch.dtype) -> _T:
    """What autocast does to an argument of a low-precision op (differentiably: the gradient
    flows back in the tensor's own dtype); anything else is left for the checks to judge."""
    return cast(_T, cast(Tensor, t).to(dtype)) if _autocast_casts(t) else t


def method_names() -> tuple[str, ...]:
    """What ``conv(method=...)`` takes: ``"auto"`` and every registered method."""
    return ("auto", *REGISTRY)


METHODS = method_names()  # the built-in ones; see method_names() for those registered since


def conv(
    x: Tensor,
    w: Tensor,
    bias: Tensor | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "valid",
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    method: str = "auto",
    cache: KernelCache | None = None,
) -> Tensor:
    r"""Convolve ``x`` with the kernels ``w`` over 1, 2 or 3 spatial dims.

    Semantics are PyTorch's: this is cross-correlation,
    ``out[n, o, i] = bias[o] + sum_{c, k} x[n, g(o)*C_in/groups + c, i*stride + k*dilation - before]
    * w[o, c, k]``, exactly ``torch.nn.functional.convNd`` where both are defined. A true
    (flipped) convolution, as in the chapter's eq. 9.4, is ``conv(x, w.flip(range(2, w.ndim)))``.

    Args:
        x: input ``(N, C_in, *spatial)``, or unbatched ``(C_in, *spatial)``.
        w: kernels ``(C_out, C_in / groups, *kernel_size)``; the number of spatial dims is
            ``w.ndim - 2``.
        bias: ``None``; tied ``(C_out,)``, one per channel; or untied
            ``(C_out, *out_spatial)``, one per output location.
        stride: int or one int per spatial dim.
        padding: ``"valid"`` (none); ``"same"`` (output = ceil(input / stride) for any stride
            and dilation; an odd total puts the extra cell at the end, as TensorFlow does);
            ``"full"`` (every partial overlap: ``dilation*(k-1)`` on both sides); an int; one
            int per dim; or one ``(before, after)`` pair per dim.
        dilation: int or one int per spatial dim.
        groups: split the channels into this many independent convolutions.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``. Any
            amount of padding works in every mode.
        method: ``"direct"`` (``torch.nn.functional.convNd``: oneDNN on CPU, cuDNN on GPU),
            ``"fft"`` (:func:`gridconv.fft_conv`), ``"separable"`` (1-D passes over an exact
            decomposition, :func:`gridconv.separable_conv`), or ``"auto"``: the fastest for
            this shape by the methods' cost models (:mod:`gridconv.plan`), or measured inside
            ``with gridconv.planning("measure")``. Auto takes the separable path only for a
            kernel that is exactly separable (to rounding) and needs no gradient, so it
            never changes results beyond rounding.
        cache: a :class:`KernelCache` to keep transformed kernels between calls with the
            same, unchanged ``w`` (what ``gridconv.nn`` layers pass in eval mode). Without
            one, what is small (auto's choice, separable factors, the last spectrum if it
            fits in 4 MiB) is kept with the tensor ``w`` itself while it lives unchanged;
            nothing is kept for a ``w`` that needs a gradient.

    Returns:
        The output, with the dtype and device of ``x``.

    Shape:
        - x: ``(N, C_in, n_1, ..., n_d)`` or ``(C_in, n_1, ..., n_d)``
        - w: ``(C_out, C_in / groups, k_1, ..., k_d)``
        - Output: ``(N, C_out, o_1, ..., o_d)`` (unbatched if ``x`` was), where
          ``o_i = floor((n_i + before_i + after_i - dilation_i * (k_i - 1) - 1) / stride_i) + 1``.
          This is ``ceil(n_i / stride_i)`` for ``"same"``,
          ``floor((n_i - dilation_i * (k_i - 1) - 1) / stride_i) + 1`` for ``"valid"`` and
          ``floor((n_i + dilation_i * (k_i - 1) - 1) / stride_i) + 1`` for ``"full"``.

    Raises:
        TypeError: a non-tensor or non-floating input, mixed dtypes.
        ValueError: wrong number of dims, channel mismatch, ``groups`` not dividing the
            channels, a kernel larger than the padded input, a non-positive stride or
            dilation, an unknown padding or mode, a wrong bias shape, mixed devices.

    Backward pass:
        The gradient with respect to ``x`` is the transposed convolution of the output
        gradient (the chapter's eq. 9.13): for ``y = conv(x, w, **kw)``,
        ``x.grad == conv_transpose(y.grad, w, input_size=x.shape, **kw)``. The gradient
        with respect to ``w`` correlates ``x`` with ``y.grad`` (eq. 9.11).

    Example:
        >>> import torch, gridconv as gc
        >>> x = torch.randn(8, 3, 32, 32)
        >>> w = torch.randn(16, 3, 5, 5)
        >>> gc.conv(x, w, stride=2, padding="same").shape
        torch.Size([8, 16, 16, 16])
        >>> gc.conv(x, w, padding=[(0, 4), (2, 2)], padding_mode="circular").shape
        torch.Size([8, 16, 32, 32])
    """
    if not isinstance(method, str) or (method != "auto" and method not in REGISTRY):
        check_choice("method", method, method_names())
    if cache is not None and not isinstance(cache, KernelCache):
        raise TypeError(
            f"`cache` must be a gridconv.functional.KernelCache, got {describe(cache)}."
        )
    low = autocast_dtype(x)
    if low is not None:  # as torch's convolution under autocast: compute in `low`
        x, w, bias = _cast(x, low), _cast(w, low), _cast(bias, low)
        with torch.autocast(x.device.type, enabled=False):
            return conv(
                x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                padding_mode=padding_mode, method=method,
            )  # fmt: skip
    x, spec, batched = setup(x, w, bias, stride, padding, dilation, groups, padding_mode)
    if cache is not None and (any(wanted_grads(w)) or tracing()):
        cache = None  # a cached transform of w would cut the gradient to w, or the graph
    if method == "auto":
        method = planner.auto(x, w, spec, cache)
    return finish(REGISTRY[method].run(x, w, spec, cache), bias, batched)


def auto_method_for(
    x: Tensor,
    w: Tensor,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "valid",
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> str:
    """The method ``conv(x, w, ..., method="auto")`` uses, under the current planning.

    Example:
        >>> import torch, gridconv as gc
        >>> x = torch.randn(1, 1, 512, 512)
        >>> gc.functional.auto_method_for(x, torch.randn(1, 1, 31, 31), padding="same")
        'fft'
    """
    x, spec, _ = setup(x, w, None, stride, padding, dilation, groups, padding_mode)
    return planner.auto(x, w, spec, None)
