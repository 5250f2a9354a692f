"""N-d convolution (Goodfellow et al. 2016, sec. 9.1 and 9.5) with every padding form.

``conv`` validates once, resolves padding to ``(before, after)`` pairs, and hands the
batched input to one *method*. The direct method pads asymmetrically (or in a non-zero
mode) once and runs ``torch.nn.functional.convNd``: oneDNN on CPU, cuDNN on GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor

from gridconv._checks import check_choice, check_same_kind
from gridconv._shapes import Padding
from gridconv.functional._spec import (
    ConvSpec,
    add_bias,
    check_bias,
    check_input,
    check_weight,
    conv_spec,
)
from gridconv.functional.padding import pad

_TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _direct(x: Tensor, w: Tensor, spec: ConvSpec) -> Tensor:
    """torch's convNd; symmetric zero padding is left to torch, the rest is padded here."""
    if spec.padding_mode == "zeros":
        symmetric = tuple(min(before, after) for before, after in spec.pairs)
        rest = tuple((b - s, a - s) for (b, a), s in zip(spec.pairs, symmetric))
        x = pad(x, rest, "zeros")
    else:
        symmetric = (0,) * spec.ndim
        x = pad(x, spec.pairs, spec.padding_mode)
    conv_nd = _TORCH_CONV[spec.ndim]
    return conv_nd(x, w, None, spec.stride, symmetric, spec.dilation, spec.groups)


# Each method maps a batched input (N, C_in, *spatial) to the output without bias.
_METHODS: dict[str, Callable[[Tensor, Tensor, ConvSpec], Tensor]] = {"direct": _direct}
METHODS = ("auto", *_METHODS)


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
        method: ``"auto"`` or ``"direct"`` (``torch.nn.functional.convNd``).

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
    d = check_weight(w)
    batched = check_input(x, d)
    check_same_kind(x=x, w=w)
    method = check_choice("method", method, METHODS)
    if not batched:
        x = x.unsqueeze(0)
    spec = conv_spec(
        w,
        x.shape[1],
        x.shape[2:],
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    check_bias(bias, x, w.shape[0], spec.output_size)
    if method == "auto":
        method = "direct"  # the only method so far; the planner chooses once there are more
    out = add_bias(_METHODS[method](x, w, spec), bias)
    return out if batched else out.squeeze(0)
