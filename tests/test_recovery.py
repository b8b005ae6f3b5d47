"""Recovery on a real SQLite file: it fills the table it is given and returns what it found."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import msgspec

from qortex.core import lifecycle
from qortex.core.dispatch import DispatchTable
from qortex.core.kinds import KindRegistry
from qortex.core.work import NO_GOLD
from qortex.kinds.sentiment import SentimentKind
from qortex.recovery import read_inputs, recover
from qortex.store import facts as f
from qortex.store.database import Store

ROOT = Path(__file__).resolve().parents[1]


def _task(task_id: str, count: int) -> f.Fact:
    return f.task(task_id, "sentiment", "[]", 3, 2, 5, 60.0, count, 1.0, 0.001)


async def test_open_work_is_loaded_and_the_stop_is_reported(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "q.db"))
    try:
        await store.writer.write(
            [
                _task("t", 3),
                f.microtask("t", 0, '"fine day"', None),
                f.microtask("t", 1, '"awful"', None),
                f.microtask("t", 2, '"known"', '"positive"'),
                f.settled("t:1", lifecycle.DECIDED, '"negative"', 2.0, 0.001, ""),
                f.miner_seen("m1", "00" * 32, "", "", "[]", 1.0, ""),
                f.result("a1", "t:0", "m1", b'"positive"', "s", 2.0, "n1", 0.1, None),
                f.event(1, "miner.connected", None, "m1", "{}", 1.0),
                f.event(2, "miner.connected", None, "m2", "{}", 1.0),
                f.event(3, "miner.disconnected", None, "m2", "{}", 1.5),
            ]
        )
        table = DispatchTable(random.Random(1))
        kinds = KindRegistry([SentimentKind()])
        found = await recover(store, kinds, table, 9.0)

        task = table.tasks["t"]
        # Built: only what is more than its input; the rest waits for its inputs, queued.
        assert [mt.id for mt in task.built()] == ["t:0", "t:1"]
        assert found.unread == [task] and task.inputs is None
        passes: list[None] = []
        await read_inputs(store, found.unread, lambda: passes.append(None))
        assert passes and [bytes(raw) for raw in task.inputs] == [
            b'"fine day"',
            b'"awful"',
            b'"known"',
        ]
        pending, decided, known = task.microtasks
        assert bytes(pending.input) == b'"fine day"'  # the bytes miners get, as stored
        assert pending.tally.returned == 1 and pending.excluded == {"m1"}
        assert (decided.state, decided.decision) == (lifecycle.DECIDED, "negative")
        assert known.gold == "positive" and pending.gold is NO_GOLD
        assert table.open == 2 and found.unfinished == []
        # m1 was connected at the stop (m2 had left): it gets the notice, with the next id.
        (notice,) = found.notices
        assert (notice.id, notice.type, notice.miner_id) == (4, "miner.disconnected", "m1")
        assert msgspec.json.decode(notice.data)["reason"] == "coordinator restarted"
        assert found.events.last_id == 4
        # Nothing was written: the coordinator logs the notices when it applies them.
        assert await store.reader.last_event_id() == 3
    finally:
        await store.close()


async def test_a_task_settled_before_the_stop_comes_back_to_be_finished(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "q.db"))
    try:
        await store.writer.write(
            [
                _task("t", 1),
                f.microtask("t", 0, '"fine"', None),
                f.settled("t:0", lifecycle.DECIDED, '"positive"', 2.0, 0.001, ""),
            ]
        )
        table = DispatchTable(random.Random(1))
        found = await recover(store, KindRegistry([SentimentKind()]), table, 9.0)
        (task,) = found.unfinished
        assert task.state == lifecycle.COMPLETED and table.open == 0
        assert found.notices == [] and found.events.last_id == 0
    finally:
        await store.close()


def test_recovery_does_not_import_the_coordinator() -> None:
    tree = ast.parse((ROOT / "qortex" / "recovery.py").read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "qortex.coordinator" not in imported
