"""The chapter's claims as experiments on embedded data, one module each.

Every module has ``NAME``, ``TITLE``, ``CLAIM``, ``run(settings) -> Result`` and
``verdict(records) -> (supported, measured)``, which computes the verdict from the
measurements. :func:`run_all` runs a selection, catching each one's failure.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from types import ModuleType

from gridconv.experiments import (
    algorithms,
    any_size,
    biases,
    depthwise,
    foveation,
    invariance,
    permutation,
    sharing,
    sparse_matrix,
    unsupervised,
)
from gridconv.experiments._base import Result, Settings

MODULES: dict[str, ModuleType] = {
    m.NAME: m
    for m in (
        permutation,
        sharing,
        invariance,
        unsupervised,
        biases,
        algorithms,
        depthwise,
        any_size,
        sparse_matrix,
        foveation,
    )
}
NAMES = tuple(MODULES)


def select(only: Iterable[str] | None) -> list[str]:
    """The experiments to run, in the standard order; ``only`` must name known ones."""
    if only is None:
        return list(NAMES)
    chosen = list(only)
    unknown = [name for name in chosen if name not in MODULES]
    if unknown or not chosen:
        raise ValueError(
            f"`only` must name experiments among {', '.join(NAMES)}; got {', '.join(unknown)}."
        )
    return [name for name in NAMES if name in chosen]


def run_one(name: str, settings: Settings) -> Result:
    """Run one experiment; a failure becomes a Result with its error, not an exception."""
    module = MODULES[name]
    start = time.perf_counter()
    try:
        result = module.run(settings)
    except Exception as err:  # an experiment's failure is reported, the others still run
        detail = traceback.format_exception_only(type(err), err)[-1].strip()
        result = Result(name, module.TITLE, module.CLAIM, error=detail)
    result.seconds = round(time.perf_counter() - start, 2)
    return result


def run_all(
    settings: Settings,
    only: Iterable[str] | None = None,
    on_start: Callable[[int, int, str], None] | None = None,
    on_done: Callable[[int, int, Result], None] | None = None,
) -> list[Result]:
    """Run the selected experiments in order, calling ``on_start``/``on_done`` around each."""
    names = select(only)
    results = []
    for i, name in enumerate(names, 1):
        if on_start is not None:
            on_start(i, len(names), name)
        result = run_one(name, settings)
        results.append(result)
        if on_done is not None:
            on_done(i, len(names), result)
    return results


__all__ = ["MODULES", "NAMES", "Result", "Settings", "run_all", "run_one", "select"]
