"""The convolution methods, one module (or subpackage) each, and the planner that chooses
among them.

Each method owns everything about itself: when it applies, its cost and its calibrated
constants, how it prepares a kernel, how it runs and its backward pass, described to the
dispatcher and the planner by one :class:`~gridconv.functional.methods.base.Method` record
(its ``METHOD``). :data:`REGISTRY` lists them, in the order that breaks ties; adding a method
such as Winograd is one new module and one line here (or :func:`register` at run time).
"""

from __future__ import annotations

from gridconv import _memo
from gridconv.functional.methods import direct, fft, separable
from gridconv.functional.methods.base import KernelCache, Method, Workload

REGISTRY: dict[str, Method] = {m.name: m for m in (direct.METHOD, fft.METHOD, separable.METHOD)}


def register(method: Method) -> None:
    """Add ``method`` to :data:`REGISTRY` (last: it loses ties), or replace the one of its
    name; every memo of the planner's choices is forgotten."""
    if not isinstance(method, Method):
        raise TypeError(f"`method` must be a gridconv Method, got {type(method).__name__}.")
    REGISTRY[method.name] = method
    _memo.clear()


def unregister(name: str) -> Method:
    """Remove the method ``name`` from :data:`REGISTRY` (and forget the planner's choices);
    returns it."""
    if name not in REGISTRY:
        raise ValueError(f"`name`: no method {name!r} is registered; got one of {list(REGISTRY)}.")
    method = REGISTRY.pop(name)
    _memo.clear()
    return method


__all__ = ["REGISTRY", "KernelCache", "Method", "Workload", "register", "unregister"]
