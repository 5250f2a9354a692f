"""What every convolution method shares: the :class:`Method` record the registry holds, the
:class:`Workload` its cost model prices, which gradients a call wants, and the caches of
transformed kernels (a layer's :class:`KernelCache`, and the small per-tensor ones kept for
functional calls).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

import torch
from torch import Tensor

from gridconv import _memo
from gridconv.functional._spec import ConvSpec

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
        KernelCache.__init__(self)

    def __deepcopy__(self, memo: dict) -> KernelCache:
        return KernelCache()

    def __len__(self) -> int:
        return len(self._entries)


def cached(cache: KernelCache | None, w: Tensor, key: Hashable, build: Callable[[], Any]) -> Any:
    """``cache``'s entry ``key`` for ``w``; without a cache, ``build()`` afresh."""
    return build() if cache is None else cache.get(w, key, build)


# What is small to keep (whether a kernel is separable, and its factors) is kept per kernel
# tensor even without a layer's cache, so that repeated functional calls with one fixed
# kernel (a Gaussian blur, say) decompose it once; spectra only when they are small.
# Keyed by id(w), with a weak reference that proves the entry is w's and removes it when w
# dies (before its id can be reused): a lookup costs a dict get, where torch's
# WeakIdKeyDictionary builds a reference object per lookup (4 us of a 0.7 ms call).
SMALL_CACHES: dict[int, tuple[weakref.ref[Tensor], KernelCache]] = _memo.register(
    "per-tensor kernel caches", {}
)


def cache_for(cache: KernelCache | None, w: Tensor) -> KernelCache:
    """``cache`` itself, or the small cache kept with the tensor ``w`` while it lives."""
    if cache is not None:
        return cache
    key = id(w)
    entry = SMALL_CACHES.get(key)
    if entry is not None and entry[0]() is w:
        return entry[1]

    def forget(ref: weakref.ref[Tensor]) -> None:
        if SMALL_CACHES.get(key, (None,))[0] is ref:
            del SMALL_CACHES[key]

    kept = KernelCache()
    SMALL_CACHES[key] = (weakref.ref(w, forget), kept)
    return kept


@overload
def wanted_grads(t: Tensor, /) -> tuple[bool]: ...
@overload
def wanted_grads(x: Tensor, w: Tensor, /) -> tuple[bool, bool]: ...
def wanted_grads(*tensors: Tensor) -> tuple[bool, ...]:
    """Per tensor, whether autograd will want its gradient here and now: ``wanted_grads(x, w)``
    is ``(want_x, want_w)``, the pass that will run."""
    enabled = torch.is_grad_enabled()
    return tuple(enabled and t.requires_grad for t in tensors)


Runner = Callable[[Tensor, Tensor, ConvSpec, "KernelCache | None"], Tensor]


@dataclass(frozen=True)
class Workload:
    """What a method's cost model prices: one convolution, and the pass that will run.

    Attributes:
        batch: images in the batch.
        out_channels: kernels.
        spec: the validated convolution.
        device: ``"cpu"`` or ``"cuda"`` (the device's type).
        dtype: the input's dtype.
        grads: the gradients the pass computes (of the input, of the kernel); none: forward.
        kept: whether the method's prepared kernel (an FFT spectrum, say) is kept from an
            earlier call, so that the call does not prepare it again.
    """

    batch: int
    out_channels: int
    spec: ConvSpec
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    grads: tuple[bool, bool] = (False, False)
    kept: bool = False


def _never(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None) -> bool:
    return False


@dataclass(frozen=True)
class Method:
    """One way to compute a convolution, as the dispatcher and the planner see it. What only
    some methods need is a hook with a default that fits the others.

    Attributes:
        name: what ``conv(method=...)`` calls it.
        run: ``(x, w, spec, cache) -> output`` without bias, for a batched, validated ``x``;
            differentiable, with the method's own backward pass.
        seconds: ``(Workload) -> seconds``, the cost model's prediction.
        memory: ``(Workload) -> bytes``, the predicted extra peak memory of a training step
            (forward and backward, float32), which the planner charges for.
        plannable: whether ``auto`` may consider it for a ``spec`` (before any check of the
            kernel's values).
        usable: ``(w, cache) -> bool``, a check of the kernel's values that ``auto`` makes
            only when the method would win (the separable method: an exactly separable
            kernel); None: any kernel will do. A method with a check is never auto's choice
            while tracing, where values are unknown.
        keeps_kernel: ``(x, w, spec, cache) -> bool``, whether the method keeps what it
            prepares from ``w`` between calls (then priced with ``Workload.kept``).
        portable: whether its traced program runs on other runtimes (``torch.export`` for
            ONNX, which has no complex tensors): under export, ``auto`` takes only these.
        constants: the live tables of the cost model's calibrated constants, per device
            type: what :func:`gridconv.plan.constants` reads and ``set_constants`` sets.
    """

    name: str
    run: Runner
    seconds: Callable[[Workload], float]
    memory: Callable[[Workload], float] = lambda work: 0.0
    plannable: Callable[[ConvSpec], bool] = lambda spec: True
    usable: Callable[[Tensor, KernelCache | None], bool] | None = None
    keeps_kernel: Callable[[Tensor, Tensor, ConvSpec, KernelCache | None], bool] = _never
    portable: bool = True
    constants: Mapping[str, tuple[dict[str, float], ...]] = field(default_factory=dict)


def register_conv_autograd(
    op: Any,
    backward_op: Callable[..., tuple[Tensor, Tensor]],
    double_backward: Callable[..., tuple[Tensor | None, Tensor | None]],
) -> None:
    """Give a custom convolution op ``op(x, w, *params)`` its autograd formula: the gradients
    of ``x`` and ``w`` by ``backward_op(g, x, w, *params, want_x, want_w)`` (an empty tensor
    where one is not wanted); under a double backward, by the differentiable
    ``double_backward(x, w, g, params, want_x, want_w)``."""

    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, w, *params = inputs
        ctx.save_for_backward(x, w)
        ctx.params = params

    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, w = ctx.saved_tensors
        want_x, want_w = ctx.needs_input_grad[:2]
        nones = (None,) * len(ctx.params)
        if torch.is_grad_enabled():  # a double backward: through autograd
            return (*double_backward(x, w, g, ctx.params, want_x, want_w), *nones)
        gx, gw = backward_op(g.contiguous(), x, w, *ctx.params, want_x, want_w)
        return (gx if want_x else None, gw if want_w else None, *nones)

    op.register_autograd(backward, setup_context=setup_context)
