"""Suite-wide setup that must hold before any test starts a process."""

from __future__ import annotations

import signal

# A suite started in the background (``scripts/test &``, a CI step) inherits
# SIGINT ignored, and every process it starts would inherit that too; the tests
# stop miners with SIGINT, as a user's Ctrl-C does, and read what they print
# when they stop. A handler here means children start with SIGINT at its default.
signal.signal(signal.SIGINT, signal.default_int_handler)
