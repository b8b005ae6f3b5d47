"""The order in which work of one kind waits for copies.

A queue holds two sorts of entry: a microtask that was placed before and wants
another copy, and a task whose microtasks were never offered (its cursor,
:meth:`qortex.core.work.Task.next_fresh`, builds each one as placement takes
it). A fresh task therefore costs one entry however many microtasks it has,
and a start with a million pending microtasks queues a few thousand tasks.

Placement walks the queue from the front and is bounded: it stops when the
free miners run out, or once :data:`SCAN_LIMIT` microtasks were passed over
because no free miner may take them (fewer miners than replicas).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sized

from qortex.core.work import Microtask, Task

# How many queued microtasks a fill may pass over when every free miner has
# already worked on them (fewer miners than replicas); keeps a fill bounded.
SCAN_LIMIT = 256

Entry = Microtask | Task


class WorkQueue:
    def __init__(self) -> None:
        # Keyed by identity (no string hashing), in order.
        self._entries: OrderedDict[Entry, None] = OrderedDict()

    def __len__(self) -> int:
        """Entries, not microtasks: a fresh task counts once."""
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def offer(self, task: Task) -> None:
        """Queue a task's fresh microtasks behind the work already waiting."""
        self._entries[task] = None

    def push(self, mt: Microtask, front: bool = False) -> None:
        """Queue a microtask that wants another copy (at the front: lost work first)."""
        entries = self._entries
        if mt not in entries:
            entries[mt] = None
        if front:
            entries.move_to_end(mt, last=False)

    def discard(self, entry: Entry) -> None:
        self._entries.pop(entry, None)

    def scan(self, free: Sized, serve: Callable[[Microtask], bool]) -> int:
        """Offer the waiting microtasks, in order, to ``serve`` (which leases copies of
        one to free miners and says whether it still wants more); returns how many
        were passed over.

        A microtask that still wants copies moves to the back when free miners
        remain (none of them may take it), and keeps its place when they ran out.
        """
        entries = self._entries
        done: list[Entry] = []
        passed: list[Microtask] = []
        front: Microtask | None = None
        for entry in entries:
            if entry.__class__ is Task:
                task: Task = entry  # type: ignore[assignment]
                if task.inputs is None:  # still being read after a start: the rest waits
                    break
                while len(free) and len(passed) < SCAN_LIMIT:
                    mt = task.next_fresh()
                    if mt is not None and serve(mt):
                        if len(free):
                            passed.append(mt)
                        else:
                            front = mt  # its place was here, ahead of the task's rest
                    if task.next == len(task):  # none left to offer: the entry goes
                        done.append(task)
                        break
            elif not serve(entry):  # type: ignore[arg-type]
                done.append(entry)
            elif len(free):
                passed.append(entry)  # type: ignore[arg-type]
            else:
                break
            if not len(free) or len(passed) >= SCAN_LIMIT:
                break
        for entry in done:
            del entries[entry]
        for mt in passed:
            entries[mt] = None
            entries.move_to_end(mt)
        if front is not None:
            entries[front] = None
            entries.move_to_end(front, last=False)
        return len(passed)
