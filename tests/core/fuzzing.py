"""The Hypothesis settings the state machines share.

The default run is quick. ``HYPOTHESIS_PROFILE=long`` runs many more and
longer sequences::

    HYPOTHESIS_PROFILE=long pytest tests/core/test_fuzz.py tests/core/test_session_fuzz.py
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "qortex-fuzz",
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "qortex-fuzz-long",
    max_examples=2000,
    stateful_step_count=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
#: Applied to the state machines only, so loading them changes no other test's settings.
PROFILE = settings.get_profile("qortex-fuzz-long" if LONG else "qortex-fuzz")
#: A long run takes minutes per machine, well past the suite's per-test timeout.
TIMEOUT = [pytest.mark.timeout(3600)] if LONG else []
