"""Signature checks on worker threads, many per hop.

An ed25519 verification is most of what a result costs the coordinator, and
PyNaCl releases the GIL while libsodium runs, so worker threads verify in
parallel with the event loop. Results that arrive in the same loop iteration
travel to a thread together and come back together, so the cost of the hop
is shared; the loop only ever sees finished verdicts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

Check = Callable[[], bool]
Done = Callable[[bool], None]

BATCH = 64


def _run(checks: list[Check]) -> list[bool]:
    return [check() for check in checks]


class Verifier:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="qortex-verify")
        self._pending: list[tuple[Check, Done]] = []
        # Kept: on Python 3.11 each get_running_loop() is a getpid system call.
        self._loop = asyncio.get_running_loop()

    def submit(self, check: Check, done: Done) -> None:
        """Run ``check`` on a worker thread, then ``done(verdict)`` on the event loop."""
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append((check, done))

    def _flush(self) -> None:
        loop = self._loop
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), BATCH):
            batch = pending[start : start + BATCH]
            future = loop.run_in_executor(self._pool, _run, [check for check, _ in batch])
            future.add_done_callback(lambda fut, batch=batch: _deliver(fut, batch))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _deliver(future: asyncio.Future[list[bool]], batch: list[tuple[Check, Done]]) -> None:
    if future.cancelled():
        return
    for (_, done), verdict in zip(batch, future.result(), strict=True):
        done(verdict)
