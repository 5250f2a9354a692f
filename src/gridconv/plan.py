"""``gridconv.plan``: the planner behind ``method="auto"``, under its public name.

The planner lives beside the methods it serves (:mod:`gridconv.functional.methods.planner`,
which :mod:`gridconv.functional.methods.wisdom` keeps the files of); this module re-exports
its public names. To change what the planner reads (a test's monkeypatch, say), set it
there.
"""

from gridconv.functional.methods.planner import (
    MODES,
    clear,
    constants,
    current_mode,
    planning,
    set_constants,
)

__all__ = ["MODES", "clear", "constants", "current_mode", "planning", "set_constants"]
