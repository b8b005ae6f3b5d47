"""Pausing Python's cyclic collector while building many long-lived objects at once.

Loading a large backlog creates millions of small objects that all survive;
each collection triggered along the way walks everything built so far, which
makes the load far slower than the allocations themselves. Nothing built there
forms a reference cycle, so the collector has nothing to find until the end.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
