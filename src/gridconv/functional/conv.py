"""N-d convolution (Goodfellow et al. 2016, sec. 9.1 and 9.5) with every padding form.

``conv`` validates once, resolves padding to ``(before, after)`` pairs, and hands the
batched input to one *method*. The direct method pads asymmetrically (or in a non-zero
mode) once and runs ``torch.nn.functional.convNd``: oneDNN on CPU, cuDNN on GPU.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gridconv import plan
from gridconv._checks import check_choice, describe
from gridconv._shapes import Padding
from gridconv.functional import overlap_save
from gridconv.functional._spec import ConvSpec, finish, setup
from gridconv.functional.fft import apply_fft, fft_work, prepare_fft
from gridconv.functional.padding import pad, pad_adjoint
from gridconv.functional.separable import apply_separable, decompose, is_rank_one

_TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_MISSING = object()  # a cache entry not built yet (None is a valid entry)


class KernelCache:
    """Transformed kernels (FFT spectra, separable factors, plans) of one weight tensor.

    Entries stay valid while that very tensor is unchanged: any in-place update (an
    optimizer step, ``load_state_dict``) bumps its version and empties the cache.
    ``gridconv.nn`` layers in eval mode pass theirs to :func:`conv`; it is ignored when
    gradients must flow to the weight.
    """

    def __init__(self) -> None:
        self._owner: weakref.ref[Tensor] | None = None
        self._stamp: tuple = ()
        self._entries: dict[Hashable, Any] = {}

    def get(self, w: Tensor, key: Hashable, build: Callable[[], Any]) -> Any:
        """The entry ``key`` for ``w``, built by ``build()`` on a miss."""
        if w.is_inference():  # no version counter: an in-place change would go unseen
            return build()
        stamp = (w._version, w.data_ptr(), w.shape, w.dtype, w.device)
        if self._owner is None or self._owner() is not w or self._stamp != stamp:
            self.clear()
            self._owner, self._stamp = weakref.ref(w), stamp
        entry = self._entries.get(key, _MISSING)
        if entry is _MISSING:
            entry = self._entries[key] = build()
        return entry

    def clear(self) -> None:
        self._owner, self._stamp = None, ()
        self._entries.clear()

    # A cache is never saved or copied with its module: a copy starts empty.
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def __deepcopy__(self, memo: dict) -> KernelCache:
        return KernelCache()

    def __len__(self) -> int:
        return len(self._entries)


def _cached(cache: KernelCache | None, w: Tensor, key: Hashable, build: Callable[[], Any]) -> Any:
    return build() if cache is None else cache.get(w, key, build)


# What is small to keep (whether a kernel is separable, and its factors) is kept per kernel
# tensor even without a layer's cache, so that repeated functional calls with one fixed
# kernel (a Gaussian blur, say) decompose it once; spectra only when they are small.
# Keyed by id(w), with a weak reference that proves the entry is w's and removes it when w
# dies (before its id can be reused): a lookup costs a dict get, where torch's
# WeakIdKeyDictionary builds a reference object per lookup (4 us of a 0.7 ms call).
_SMALL_CACHES: dict[int, tuple[weakref.ref[Tensor], KernelCache]] = {}


def _small(cache: KernelCache | None, w: Tensor) -> KernelCache:
    if cache is not None:
        return cache
    key = id(w)
    entry = _SMALL_CACHES.get(key)
    if entry is not None and entry[0]() is w:
        return entry[1]

    def forget(ref: weakref.ref[Tensor]) -> None:
        if _SMALL_CACHES.get(key, (None,))[0] is ref:
            del _SMALL_CACHES[key]

    small = KernelCache()
    _SMALL_CACHES[key] = (weakref.ref(w, forget), small)
    return small


@functools.cache
def _tolerance(dtype: torch.dtype, ulps: float) -> float:
    """A relative tolerance of ``ulps`` units of rounding of ``dtype`` (float32 for halves)."""
    return ulps * torch.finfo(dtype if dtype == torch.float64 else torch.float32).eps


@functools.lru_cache(maxsize=4096)
def _split_padding(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...] | None]:
    """The padding torch's convNd does itself (symmetric zeros), and the rest (None: none)."""
    if spec.padding_mode != "zeros":
        return (0,) * spec.ndim, spec.pairs
    symmetric = tuple(min(before, after) for before, after in spec.pairs)
    rest = tuple((b - s, a - s) for (b, a), s in zip(spec.pairs, symmetric))
    return symmetric, rest if any(b or a for b, a in rest) else None


def _direct(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None = None) -> Tensor:
    """torch's convNd; symmetric zero padding is left to torch, the rest is padded here."""
    symmetric, rest = _split_padding(spec)
    if rest is not None:
        x = pad(x, rest, spec.padding_mode)
    conv_nd = _TORCH_CONV[spec.ndim]
    return conv_nd(x, w, None, spec.stride, symmetric, spec.dilation, spec.groups)


# A spectrum up to this size is also kept with its kernel tensor (the last input size's
# only), so that a fixed kernel convolved again and again is transformed once: the
# transform takes 124 us of a 0.65 ms 256 x 256 convolution with a 7 x 7 kernel.
SMALL_SPECTRUM_BYTES = 4 * 2**20


def _fft(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None = None) -> Tensor:
    compiled = overlap_save.applies(x, w, spec)
    if cache is not None or not _spectrum_kept(x, w, spec, None):
        key = ("fft", spec, compiled)
        kernel = _cached(cache, w, key, lambda: prepare_fft(w, spec, compiled))
        return apply_fft(x, kernel, spec)
    last = _small(None, w).get(w, "fft", lambda: [None, None])  # [(spec, compiled), kernel]
    if last[0] != (spec, compiled):
        last[:] = (spec, compiled), prepare_fft(w, spec, compiled)
    return apply_fft(x, last[1], spec)


class _ExactSeparable(torch.autograd.Function):
    """Separable passes forward; the direct convolution's exact gradients backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, spec: ConvSpec, kernel: Any) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.spec = spec
        return apply_separable(x, kernel, spec)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w = ctx.saved_tensors
        spec = ctx.spec
        zeros = [0] * spec.ndim
        gx, gw, _ = torch.ops.aten.convolution_backward(
            grad,
            pad(x, spec.pairs, spec.padding_mode),
            w,
            None,
            list(spec.stride),
            zeros,
            list(spec.dilation),
            False,
            zeros,
            spec.groups,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False],
        )
        if gx is not None:
            gx = pad_adjoint(gx, spec.pairs, spec.padding_mode)
        return gx, gw, None, None


def _separable(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None = None) -> Tensor:
    """Exact: as many separable terms as the kernel needs (one when it is separable)."""
    rtol = _tolerance(w.dtype, 8)
    kernel = _small(cache, w).get(w, "separable", lambda: decompose(w, rtol=rtol))
    if torch.is_grad_enabled() and w.requires_grad:
        return _ExactSeparable.apply(x, w, spec, kernel)
    return apply_separable(x, kernel, spec)


# Each method maps a batched input (N, C_in, *spatial) to the output without bias.
_METHODS: dict[str, Callable[..., Tensor]] = {
    "direct": _direct,
    "fft": _fft,
    "separable": _separable,
}
METHODS = ("auto", *_METHODS)
_METHOD_NAMES = frozenset(METHODS)


def _auto(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None) -> str:
    """The planner's choice, kept with the kernel (a layer's cache, or the per-tensor one):
    the next call with this kernel and shape skips the planner."""
    needs_grad = torch.is_grad_enabled() and (w.requires_grad, x.requires_grad)
    key = ("auto", plan.state(), x.shape[0], spec, needs_grad)
    return _small(cache, w).get(w, key, lambda: _plan(x, w, spec, cache))


def _plan(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None) -> str:
    """Ask the planner; the separable path only for exactly separable, fixed kernels."""

    def separable() -> bool:
        if spec.ndim < 2 or (torch.is_grad_enabled() and w.requires_grad):
            return False
        rtol = _tolerance(w.dtype, 32)
        return _small(cache, w).get(w, "rank-one", lambda: is_rank_one(w, rtol))

    def runner(name: str) -> Callable[[], Tensor]:
        def run() -> Tensor:
            with torch.no_grad():
                return _METHODS[name](x, w, spec, cache)

        return run

    return plan.choose(x, w, spec, runner, separable, _spectrum_kept(x, w, spec, cache))


def _spectrum_kept(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None) -> bool:
    """Whether the FFT method keeps this kernel's spectrum between calls (see ``_fft``)."""
    if cache is not None:
        return True
    if (torch.is_grad_enabled() and w.requires_grad) or w.is_inference():
        return False
    return _spectrum_bytes(spec, w.shape[0], x.dtype == torch.float64) <= SMALL_SPECTRUM_BYTES


@functools.lru_cache(maxsize=4096)
def _spectrum_bytes(spec: ConvSpec, out_channels: int, double: bool) -> int:
    return fft_work(spec, 1, out_channels)["spectrum"] * (16 if double else 8)


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
            this shape by :mod:`gridconv.plan`'s cost model, or measured inside
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
    if not isinstance(method, str) or method not in _METHOD_NAMES:
        check_choice("method", method, METHODS)
    if cache is not None and not isinstance(cache, KernelCache):
        raise TypeError(
            f"`cache` must be a gridconv.functional.KernelCache, got {describe(cache)}."
        )
    x, spec, batched = setup(
        x,
        w,
        bias,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    if cache is not None and torch.is_grad_enabled() and w.requires_grad:
        cache = None  # a cached transform of w would cut the gradient to w
    if method == "auto":
        method = _auto(x, w, spec, cache)
    return finish(_METHODS[method](x, w, spec, cache), bias, batched)


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
    x, spec, _ = setup(
        x,
        w,
        None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    return _auto(x, w, spec, None)
