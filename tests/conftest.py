"""Suite-wide setup that must hold before any test starts a process."""

from __future__ import annotations

import os
import signal

import pytest

# A suite started in the background (``scripts/test &``, a CI step) inherits
# SIGINT ignored, and every process it starts would inherit that too; the tests
# stop miners with SIGINT, as a user's Ctrl-C does, and read what they print
# when they stop. A handler here means children start with SIGINT at its default.
signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=os.environ.get("QORTEX_LONG") == "1",
        help="run the campaigns (tests/faults, tests/crash) at full size (or QORTEX_LONG=1)",
    )


@pytest.fixture(scope="session")
def long(request: pytest.FixtureRequest) -> bool:
    """Whether the campaigns run at full size rather than their quick default."""
    return bool(request.config.getoption("--long"))
