"""The client against a real coordinator and miners; docs/client.md's examples as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from qortex.client import ApiError, AsyncClient, Client, Event, Task
from qortex.events import LIVE_ONLY
from tests.helpers import API_KEY, TWEETS, Server, labels, start_miners, timeout, wait_until

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path, replicas=1).start()
    yield srv
    srv.stop()


def test_the_examples_in_docs_client_md_run(server: Server, tmp_path: Path) -> None:
    sync_example, async_example = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[:2]
    env = {**os.environ, "QORTEX_URL": server.url, "QORTEX_API_KEY": API_KEY}
    miners = start_miners(server, 1, tmp_path / "keys")
    try:
        runs = [
            subprocess.run(
                [sys.executable, "-c", example],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout(60),
            )
            for example in (sync_example, async_example)
        ]
    finally:
        miners.stop()
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert "completed ['positive', 'negative']" in runs[0].stdout
    assert "  task.completed" in runs[0].stdout
    assert runs[0].stdout.rstrip().endswith("proof holds")
    assert runs[1].stdout.strip() == str([{"tweet": "what a great day", "label": "positive"}])


def test_submit_is_idempotent_and_errors_are_typed(server: Server) -> None:
    with Client(server.url, API_KEY) as qx:
        first = qx.submit("sentiment", {"tweets": ["a"]}, idempotency_key="job-1")
        again = qx.submit("sentiment", {"tweets": ["a"]}, idempotency_key="job-1")
        assert (first.replayed, again.replayed) == (False, True)
        assert again.task_id == first.task_id
        with pytest.raises(ApiError) as refused:
            qx.submit("sentiment", {"tweets": ["b"]}, idempotency_key="job-1")
        assert refused.value.status == 422 and refused.value.error == "Unprocessable"
        reader = qx.create_key("reader", ["read"])
    with Client(server.url, reader.key) as ro:
        assert ro.status(first.task_id).status == "running"
        with pytest.raises(ApiError) as forbidden:
            ro.submit("sentiment", {"tweets": ["a"]})
        assert forbidden.value.status == 403


def test_wait_resumes_across_a_coordinator_restart(server: Server, tmp_path: Path) -> None:
    seen: list[Event] = []
    with Client(server.url, API_KEY) as qx:
        created = qx.submit("sentiment", {"tweets": TWEETS})
        outcome: dict[str, object] = {}

        def waiter() -> None:
            outcome["task"] = qx.wait(created.task_id, timeout=timeout(60), on_event=seen.append)

        thread = threading.Thread(target=waiter)
        thread.start()
        wait_until(lambda: seen, 10, "the stream is open")
        server.kill()  # the stream drops; no miner has run yet
        server.start()
        miners = start_miners(server, 1, tmp_path / "keys")
        try:
            thread.join(timeout(60))
        finally:
            miners.stop()
    task = outcome["task"]
    assert isinstance(task, Task) and task.status == "completed"
    assert [row["label"] for row in task.output] == labels(TWEETS)
    ids = [event.id for event in seen if event.id]
    assert ids == sorted(set(ids)), "an event was repeated or reordered after the resume"
    # Live-only events (not in the log, so nothing to resume from) come with id 0.
    assert all(event.type in LIVE_ONLY for event in seen if not event.id)
    assert seen[0].type == "task.created" and seen[-1].type == "task.completed"


async def test_the_async_client_submits_waits_and_pages(server: Server, tmp_path: Path) -> None:
    miners = start_miners(server, 1, tmp_path / "keys")
    try:
        async with AsyncClient(server.url, API_KEY) as qx:
            created = await qx.submit("sentiment", {"tweets": TWEETS[:2]})
            task = await qx.wait(created.task_id, timeout=timeout(60))
            assert task.finished and task.decided == 2
            page = await qx.events(taskId=created.task_id, limit=1000)
            assert page.events[-1].type == "task.completed" and not page.more
            assert Client.verify(await qx.proof(created.task_id)) == []
            stats = await qx.event_stats()
            assert stats["byType"]["task.completed"] == 1
    finally:
        miners.stop()


def test_cancel_withdraws_a_running_task_and_is_an_admin_call(server: Server) -> None:
    with Client(server.url, API_KEY) as qx:
        created = qx.submit("sentiment", {"tweets": TWEETS[:2]})
        reader = qx.create_key("looker", ["read", "submit"])
        with Client(server.url, reader.key) as limited, pytest.raises(ApiError) as forbidden:
            limited.cancel(created.task_id)
        assert forbidden.value.status == 403
        assert qx.status(created.task_id).status == "running"
        qx.cancel(created.task_id)
        assert qx.status(created.task_id).status == "cancelled"
        assert [t["taskId"] for t in qx.tasks(10, status="cancelled")["tasks"]] == [created.task_id]
        with pytest.raises(ApiError) as twice:
            qx.cancel(created.task_id)
        assert twice.value.status == 409


async def test_the_async_client_cancels_and_reads_kinds_and_health(server: Server) -> None:
    async with AsyncClient(server.url, API_KEY) as qx:
        created = await qx.submit("sentiment", {"tweets": TWEETS[:1]})
        await qx.cancel(created.task_id)
        assert (await qx.task(created.task_id))["status"] == "cancelled"
        assert {"sentiment", "matmul"} <= {kind["name"] for kind in await qx.kinds()}
        assert (await qx.health())["status"] == "ok"
