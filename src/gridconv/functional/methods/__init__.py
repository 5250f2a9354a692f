"""The convolution methods, one module each, and the planner that chooses among them.

Each method module (``direct``, ``fft_run`` with the transforms of ``fft``, ``separable``;
``compiled`` is the FFT method's compiled 1-D path) owns everything about its method: when
it applies, its cost and its calibrated constants, how it prepares a kernel, how it runs and
its backward pass. A module that defines ``METHOD`` (a
:class:`~gridconv.functional.methods.base.Method`) is found and registered here: adding a
method such as Winograd takes one new file.
"""

from __future__ import annotations

import importlib
import pkgutil

from gridconv.functional.methods.base import KernelCache, Method


def discover(path: list[str], package: str) -> dict[str, Method]:
    """The ``METHOD`` of every module of ``package`` (found on ``path``) that has one, by
    name, in their ``order``."""
    found = []
    for info in pkgutil.iter_modules(path):
        if info.name in ("base", "planner"):  # the planner imports the registry
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        method = getattr(module, "METHOD", None)
        if isinstance(method, Method):
            found.append(method)
    return {m.name: m for m in sorted(found, key=lambda m: (m.order, m.name))}


REGISTRY: dict[str, Method] = discover(__path__, __name__)

__all__ = ["REGISTRY", "KernelCache", "Method", "discover"]
