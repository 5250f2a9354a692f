"""Test settings: in CI, hypothesis runs derandomized so that a failure reproduces exactly."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
