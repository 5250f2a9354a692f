"""Convolution as a sparse matrix (sec. 9.1): a doubly block circulant / Toeplitz matrix.

Each row of the matrix is one output cell; its non-zeros are the kernel's weights, placed
at the input cells that cell reads. The same few weights repeat, shifted, in every row:
that is parameter sharing, and why storing the kernel beats storing the matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from gridconv._shapes import Padding
from gridconv.functional._spec import check_weight, conv_spec_for_size
from gridconv.functional.padding import padding_index


def _broadcast_along(t: Tensor, axis: int, ndim: int) -> Tensor:
    """View a 1-D or 2-D table so its dims sit at ``axis`` (and ``axis + d``) of ``ndim``."""
    shape = [1] * ndim
    shape[axis] = t.shape[0]
    if t.ndim == 2:
        shape[axis + ndim // 2] = t.shape[1]
    return t.reshape(shape)


def conv_matrix(
    w: Tensor,
    input_size: int | Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "valid",
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Tensor:
    """The sparse matrix ``M`` of the convolution by ``w`` of one input of size ``input_size``.

    ``M @ x.flatten() == conv(x, w, ...).flatten()`` for one unbatched example
    ``x`` of shape ``(C_in, *input_size)``, and ``M.T @ y.flatten()`` is
    ``conv_transpose(y, w, input_size=input_size, ...).flatten()``. For a batch, use
    ``(M @ x.reshape(N, -1).T).T``. Use it to see and analyse the operator; to compute,
    :func:`gridconv.conv` is far faster. The values are differentiable in ``w``.

    Args:
        w: kernels ``(C_out, C_in / groups, *kernel_size)``.
        input_size: spatial size of the input: an int, one int per dim, or a whole shape.
        stride, padding, dilation, groups, padding_mode: as in :func:`gridconv.conv`. With a
            non-zero ``padding_mode``, weights that read a padded copy of a cell are added
            onto that cell's column.

    Returns:
        A coalesced ``torch.sparse_coo`` matrix with the dtype and device of ``w``.

    Shape:
        - w: ``(C_out, C_in / groups, k_1, ..., k_d)``
        - Output: ``(C_out * prod(out_size), C_in * prod(input_size))``, with at most
          ``C_out * prod(out_size) * (C_in / groups) * prod(kernel_size)`` non-zeros (rows
          and columns flatten channel-major, then row-major over space).

    Example:
        The same three weights repeat in every row, shifted by the stride (with
        ``"same"`` and stride 2, the one cell of padding goes at the end):

        >>> import torch, gridconv as gc
        >>> w = torch.tensor([[[1.0, 2.0, 3.0]]])
        >>> gc.conv_matrix(w, 6).to_dense()
        tensor([[1., 2., 3., 0., 0., 0.],
                [0., 1., 2., 3., 0., 0.],
                [0., 0., 1., 2., 3., 0.],
                [0., 0., 0., 1., 2., 3.]])
        >>> gc.conv_matrix(w, 6, stride=2, padding="same").to_dense()
        tensor([[1., 2., 3., 0., 0., 0.],
                [0., 0., 1., 2., 3., 0.],
                [0., 0., 0., 0., 1., 2.]])
    """
    d = check_weight(w)
    spec = conv_spec_for_size(
        w,
        input_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    out_channels, group_in = w.shape[:2]
    dev = w.device
    # source[i]: (out_i, k_i) table of the input index that output cell o reads at tap j.
    ndim = 2 * d
    in_flat = torch.zeros([1] * ndim, dtype=torch.long, device=dev)
    out_flat = torch.zeros([1] * ndim, dtype=torch.long, device=dev)
    inside = torch.ones([1] * ndim, dtype=torch.bool, device=dev)
    for i in range(d):
        n, o, k = spec.input_size[i], spec.output_size[i], spec.kernel_size[i]
        index = padding_index(n, *spec.pairs[i], spec.padding_mode, dev)
        taps = torch.arange(o, device=dev)[:, None] * spec.stride[i]
        taps = taps + torch.arange(k, device=dev)[None, :] * spec.dilation[i]
        source = _broadcast_along(index[taps], i, ndim)  # (..., o_i, ..., k_i, ...)
        in_flat = in_flat * n + source.clamp(min=0)
        inside = inside & (source >= 0)
        out_flat = out_flat * o + _broadcast_along(torch.arange(o, device=dev), i, ndim)

    n_in, n_out = math.prod(spec.input_size), math.prod(spec.output_size)
    co = torch.arange(out_channels, device=dev).reshape(-1, 1, *([1] * ndim))
    ci = torch.arange(group_in, device=dev).reshape(1, -1, *([1] * ndim))
    first_in = (co // (out_channels // spec.groups)) * group_in  # first input channel of the group
    full = (out_channels, group_in, *spec.output_size, *spec.kernel_size)
    mask = inside.expand(full)
    rows = (co * n_out + out_flat).expand(full)[mask]
    cols = ((first_in + ci) * n_in + in_flat).expand(full)[mask]
    values = w.reshape(out_channels, group_in, *([1] * d), *spec.kernel_size).expand(full)[mask]
    size = (out_channels * n_out, spec.in_channels * n_in)
    return torch.sparse_coo_tensor(
        torch.stack([rows, cols]), values, size, check_invariants=False
    ).coalesce()
