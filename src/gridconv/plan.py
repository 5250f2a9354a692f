"""``gridconv.plan``: the planner behind ``method="auto"``
(:mod:`gridconv.functional.methods.planner`, beside the methods it serves), under its public
name. This module *is* that one, so that setting an attribute here (a test's monkeypatch, a
calibration) sets it there.
"""

import sys

from gridconv.functional.methods import planner

sys.modules[__name__] = planner
