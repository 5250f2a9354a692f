"""Shape arithmetic: n-tuples, the padding forms (valid/same/full/ints/pairs), output sizes.

Padding is always reduced to one ``(before, after)`` pair per spatial dimension. ``"same"``
follows TensorFlow: output = ceil(input / stride) for any stride and dilation, and an odd
total padding puts the extra element at the end.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Union

from gridconv._checks import check_choice, check_int, describe

if TYPE_CHECKING:
    from torch import Tensor

PaddingPairs = tuple[tuple[int, int], ...]
Padding = Union[str, int, Sequence[Union[int, Sequence[int]]]]  # noqa: UP007 (py3.10 alias)

PADDING_STRINGS = ("valid", "same", "full")


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for integers (sizes, symbolic ones included), without floats.

    >>> ceil_div(7, 2), ceil_div(8, 2)
    (4, 4)
    """
    return -(-a // b)


def interleaved(t: Tensor, channel: int, outer: int, inner: int, d: int) -> Tensor:
    """A view of ``t`` as ``(N, C, o_1, i_1, ..., o_d, i_d)``: its first axis, its ``channel``
    axis, then per spatial dim the ``outer`` and ``inner`` axes side by side (``outer`` and
    ``inner`` are the first of ``d`` axes each)."""
    pairs = (j for i in range(d) for j in (outer + i, inner + i))
    return t.permute(0, channel, *pairs)


def depth_to_space(t: Tensor, channel: int, outer: int, inner: int, d: int) -> Tensor:
    """Tiles, phases or blocks laid side by side: ``t``'s ``outer`` and ``inner`` axes merged
    per spatial dim, cell ``o * I + i`` of each from ``(o, i)`` (see :func:`interleaved`).

    Shape:
        ``t`` with axes ``N``, ``C`` at ``channel``, ``O_1..O_d`` from ``outer`` and
        ``I_1..I_d`` from ``inner`` -> ``(N, C, O_1 * I_1, ..., O_d * I_d)``.

    >>> import torch
    >>> depth_to_space(torch.arange(6).reshape(1, 3, 1, 2), 2, 1, 3, 1)  # (N, O, C, I)
    tensor([[[0, 1, 2, 3, 4, 5]]])
    """
    sizes = (t.shape[outer + i] * t.shape[inner + i] for i in range(d))
    return interleaved(t, channel, outer, inner, d).reshape(t.shape[0], t.shape[channel], *sizes)


def trailing(slices: Iterable[slice]) -> tuple[Any, ...]:
    """``(..., *slices)``: an index that slices the trailing dims.

    >>> trailing(slice(0, n) for n in (2, 3))
    (Ellipsis, slice(0, 2, None), slice(0, 3, None))
    """
    return (..., *slices)


def ntuple(name: str, value: int | Sequence[int], n: int, *, minimum: int = 1) -> tuple[int, ...]:
    """``value`` as ``n`` ints, each at least ``minimum``: an int is repeated ``n`` times.

    >>> ntuple("stride", 2, 3)
    (2, 2, 2)
    """
    if hasattr(value, "__index__") and not isinstance(value, bool):
        return (check_int(name, value, minimum=minimum),) * n
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise ValueError(
                f"`{name}` must be an int or {n} ints (one per spatial dim), got {value!r}."
            )
        return tuple(check_int(name, v, minimum=minimum) for v in value)
    raise TypeError(f"`{name}` must be an int or {n} ints, got {describe(value)}.")


def ntuple_float(name: str, value: object, n: int) -> tuple[float, ...]:
    """``value`` as ``n`` positive finite floats (a number is repeated)."""
    values = (value,) * n if isinstance(value, int | float) else value
    if (
        isinstance(value, bool)
        or not isinstance(values, Sequence)
        or len(values) != n
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        or not all(0 < v < math.inf for v in values)
    ):
        raise ValueError(
            f"`{name}` must be a positive number or {n} of them, got {describe(value)}."
        )
    return tuple(float(v) for v in values)


def _non_negative_int(value: object) -> int | None:
    """``value`` as a non-negative int (ints and NumPy integers, not bools), else None."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        return None
    value = operator.index(value)
    return value if value >= 0 else None


def _pair(value: object) -> tuple[int, int] | None:
    """``value`` as a ``(before, after)`` pair of non-negative ints, or None if it is not one."""
    single = _non_negative_int(value)
    if single is not None:
        return (single, single)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        before, after = (_non_negative_int(v) for v in value)
        return None if before is None or after is None else (before, after)
    return None


def parse_padding(padding: Padding, n: int) -> str | PaddingPairs:
    """Check the form of ``padding``; keep a string, turn numbers into ``n`` pairs.

    >>> parse_padding(1, 2)
    ((1, 1), (1, 1))
    >>> parse_padding([(0, 1), 2], 2)
    ((0, 1), (2, 2))
    """
    if isinstance(padding, str):
        return check_choice("padding", padding, PADDING_STRINGS)
    expected = (
        f"`padding` must be 'valid', 'same', 'full', a non-negative int, {n} non-negative ints, "
        f"or {n} (before, after) pairs"
    )
    single = _pair(padding) if hasattr(padding, "__index__") else None
    if single is not None:
        return (single,) * n
    if isinstance(padding, Sequence) and len(padding) == n:
        pairs = tuple(_pair(p) for p in padding)
        if all(p is not None for p in pairs):
            return pairs  # type: ignore[return-value]
    raise ValueError(f"{expected}; got {describe(padding)}.")


def resolve_padding(
    padding: str | PaddingPairs,
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> PaddingPairs:
    """One ``(before, after)`` pair per dim for an already parsed ``padding``.

    >>> resolve_padding("same", (10,), (4,), (3,), (1,))  # out 4: 3*3 + 4 - 10 = 3 padded
    ((1, 2),)
    >>> resolve_padding("full", (5, 5), (3, 3), (1, 1), (2, 1))
    ((4, 4), (2, 2))
    """
    if not isinstance(padding, str):
        return padding
    spans = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
    if padding == "valid":
        return tuple((0, 0) for _ in spans)
    if padding == "full":
        return tuple((span, span) for span in spans)
    pairs = []
    for n, span, s in zip(input_size, spans, stride):
        out = ceil_div(n, s)
        total = max((out - 1) * s + span + 1 - n, 0)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


def conv_output_size(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    pairs: PaddingPairs,
    dilation: Sequence[int],
) -> tuple[int, ...]:
    """``floor((n + before + after - dilation*(k-1) - 1) / stride) + 1`` per dim."""
    return tuple(
        (n + b + a - d * (k - 1) - 1) // s + 1
        for n, k, s, (b, a), d in zip(input_size, kernel_size, stride, pairs, dilation)
    )


def check_kernel_fits(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    pairs: PaddingPairs,
    dilation: Sequence[int],
) -> None:
    """The dilated kernel must fit inside the padded input in every dim."""
    for dim, (n, k, (b, a), d) in enumerate(zip(input_size, kernel_size, pairs, dilation)):
        if n + b + a < d * (k - 1) + 1:
            raise ValueError(
                f"kernel is larger than the padded input in spatial dim {dim}: the kernel spans "
                f"{d * (k - 1) + 1} (kernel_size={k}, dilation={d}) but the input has {n} "
                f"elements plus padding {(b, a)}; use a smaller kernel or padding='same'/'full'."
            )
