"""The transpose (adjoint) of convolution: the backward pass of sec. 9.5, eq. 9.13.

``conv_transpose(y, w)`` is the exact adjoint of ``x -> conv(x, w)``: it scatters every
output cell back over the input cells it read, with the same weights. ``input_size`` fixes
which input shape is meant, since a strided convolution maps several sizes to one output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from gridconv._checks import check_same_kind
from gridconv._shapes import Padding
from gridconv.functional._spec import check_input, check_weight, conv_spec_for_size
from gridconv.functional.padding import pad_adjoint

_TORCH_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def conv_transpose(
    y: Tensor,
    w: Tensor,
    *,
    input_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Padding = "valid",
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Tensor:
    r"""The adjoint of :func:`gridconv.conv` with respect to its input.

    For every ``x`` of spatial size ``input_size`` and every ``y`` of the output's shape,
    ``<conv(x, w, **kw), y> == <x, conv_transpose(y, w, input_size=..., **kw)>``, for every
    stride, padding form, padding mode, dilation and groups. It is therefore exactly the
    input gradient of ``conv`` (the chapter's eq. 9.13): the backward pass of a conv layer,
    or the forward pass of a "deconvolution" (upsampling) layer.

    Args:
        y: ``(N, C_out, *out_spatial)`` or unbatched ``(C_out, *out_spatial)``.
        w: the kernels of the forward convolution, ``(C_out, C_in / groups, *kernel_size)``.
        input_size: spatial size of the forward input: an int, one int per dim, or the whole
            input shape ``(N, C_in, *spatial)`` / ``(C_in, *spatial)``.
        stride, padding, dilation, groups, padding_mode: those of the forward convolution.

    Returns:
        ``(N, C_in, *input_size)``; for a non-zero ``padding_mode`` the padded cells' values
        are added back onto the cells they were copied from.

    Shape:
        - y: ``(N, C_out, o_1, ..., o_d)`` with ``o_i`` the forward output size
          ``floor((n_i + before_i + after_i - dilation_i * (k_i - 1) - 1) / stride_i) + 1``
        - Output: ``(N, C_in, n_1, ..., n_d)``

    Raises:
        TypeError, ValueError: as :func:`gridconv.conv`, plus ``y`` not having the
            forward output's shape.

    Example:
        The input gradient of a convolution is ``conv_transpose`` of the output gradient:

        >>> import torch, gridconv as gc
        >>> x = torch.randn(2, 3, 11, 11, requires_grad=True)
        >>> w = torch.randn(4, 3, 3, 3)
        >>> y = gc.conv(x, w, stride=2, padding="same")
        >>> g = torch.randn_like(y)
        >>> y.backward(g)
        >>> gx = gc.conv_transpose(g, w, input_size=x.shape, stride=2, padding="same")
        >>> torch.allclose(x.grad, gx, atol=1e-5)
        True
    """
    d = check_weight(w)
    batched = check_input(y, d, name="y")
    check_same_kind(y=y, w=w)
    spec = conv_spec_for_size(
        w,
        input_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    if not batched:
        y = y.unsqueeze(0)
    expected = (w.shape[0], *spec.output_size)
    if tuple(y.shape[1:]) != expected:
        raise ValueError(
            f"`y` must have shape (N, *{expected}): the output of the forward convolution of an "
            f"input of size {spec.input_size}; got shape {tuple(y.shape)}."
        )
    # The padded input the forward pass read; output_padding restores the cells past the
    # last window that a stride > 1 skipped (always < stride, as torch requires).
    padded = [n + b + a for n, (b, a) in zip(spec.input_size, spec.pairs)]
    reached = [
        (o - 1) * s + dl * (k - 1) + 1
        for o, s, dl, k in zip(spec.output_size, spec.stride, spec.dilation, spec.kernel_size)
    ]
    output_padding = tuple(p - r for p, r in zip(padded, reached))
    conv_t = _TORCH_CONV_TRANSPOSE[d]
    g = conv_t(y, w, None, spec.stride, 0, output_padding, spec.groups, spec.dilation)
    x = pad_adjoint(g, spec.pairs, spec.padding_mode)
    return x if batched else x.squeeze(0)
