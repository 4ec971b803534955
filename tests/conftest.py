"""Shared pytest set-up: deterministic hypothesis runs (a rebuild gives the same results)."""

import os

from hypothesis import settings

settings.register_profile("default", derandomize=True, deadline=None, max_examples=60)
settings.register_profile("thorough", derandomize=False, deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
