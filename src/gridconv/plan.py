"""``gridconv.plan``: the planner behind ``method="auto"``
(:mod:`gridconv.functional.methods.planner`, beside the methods it serves), under its public
name. This module *is* that one, so that setting an attribute here (a test's monkeypatch, a
calibration) sets it there.
"""

import sys
from typing import TYPE_CHECKING

from gridconv.functional.methods import planner

if TYPE_CHECKING:  # type checkers see the planner's names here
    from gridconv.functional.methods.planner import *  # noqa: F403

sys.modules[__name__] = planner
