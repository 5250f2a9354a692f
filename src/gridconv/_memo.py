"""The one registry of state that lives across calls: every process-wide memo of gridconv.

Validated specs and calls, per-kernel transforms, the planner's choices and the cost model's
memoised arithmetic all register here, so that :func:`clear` forgets them all at once (tests,
a changed environment, a benchmark that must start cold). Each memo is keyed so that it can
never return a stale answer; clearing only costs the work of filling them again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar


class Clearable(Protocol):
    def clear(self) -> Any: ...


_REGISTRY: dict[str, Clearable | Callable[[], Any]] = {}

F = TypeVar("F", bound=Callable[..., Any])


def register(name: str, memo: Clearable | Callable[[], Any]) -> Any:
    """Register ``memo`` (anything with ``clear()``, or a function that forgets) under
    ``name``; returns it."""
    _REGISTRY[name] = memo
    return memo


def cached(maxsize: int | None = 4096) -> Callable[[F], F]:
    """``functools.lru_cache(maxsize)``, registered under the function's qualified name."""

    def decorate(fn: F) -> F:
        wrapped = functools.lru_cache(maxsize=maxsize)(fn)
        _REGISTRY[f"{fn.__module__}.{fn.__qualname__}"] = wrapped.cache_clear
        return wrapped  # type: ignore[return-value]

    return decorate


def names() -> list[str]:
    """The registered memos, by name."""
    return sorted(_REGISTRY)


def clear() -> None:
    """Forget everything every registered memo holds."""
    for memo in _REGISTRY.values():
        memo() if callable(memo) and not hasattr(memo, "clear") else memo.clear()
