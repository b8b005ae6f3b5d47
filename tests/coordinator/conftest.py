from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from qortex.settings import Settings
from tests.coordinator.harness import FakeClock, Harness

Start = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Start a coordinator: ``start(seed, clock, db, **settings)``; all are stopped at the end.

    The same ``db`` name (the default) opens the same file again, as a restart does.
    """
    running: list[Harness] = []

    async def make(
        seed: int = 7, clock: FakeClock | None = None, db: str = "q.db", **values: Any
    ) -> Harness:
        values.setdefault("checker", False)  # tests that want checks say so
        settings = Settings(db=str(tmp_path / db), **values)
        harness = await Harness(Path(settings.db), settings, seed, clock or FakeClock()).start()
        running.append(harness)
        return harness

    yield make
    for harness in running:
        if not harness.stopped:
            await harness.stop()
