"""The trust engine through the real app: each mechanism against a miner that always lies.

Every test here would let an always-lying miner through if its mechanism were
taken away: the checker, known-answer items, bans, backtracking, decisions by
estimated error, one pipeline that survives a plugin's bug, and proofs bound
to their inputs.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from qortex.core.kinds import KindRegistry
from qortex.kinds.sentiment import SentimentKind
from qortex.proof import check_proof
from qortex.protocol import messages as m
from qortex.protocol.client import Work
from qortex.settings import Settings
from qortex.signing import Signer
from qortex.web.app import create_app
from tests.helpers import API_KEY, timeout
from tests.web.socketminer import SocketMiner, submit, wait_status

KIND = SentimentKind()
WRONG = {"positive": "negative", "negative": "neutral", "neutral": "positive"}
Connect = Callable[..., SocketMiner]


def truth(assign: m.Assign) -> str:
    return KIND.compute(msgspec.json.decode(assign.input))


def lie(assign: m.Assign) -> str:
    return WRONG[truth(assign)]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., tuple[TestClient, Connect]]]:
    """Start the app with some settings; returns its client and a way to connect miners."""
    with contextlib.ExitStack() as stack:

        def make(kinds: KindRegistry | None = None, **values: Any) -> tuple[TestClient, Connect]:
            settings = Settings(db=str(tmp_path / "q.db"), api_key=API_KEY, **values)
            client = stack.enter_context(
                TestClient(create_app(settings, kinds=kinds), headers={"x-api-key": API_KEY})
            )

            def connect(signer: Signer | None = None) -> SocketMiner:
                ws = stack.enter_context(client.websocket_connect("/ws/miner"))
                miner = SocketMiner(ws, signer)
                miner.handshake()
                return miner

            return client, connect

        yield make


def closed_with(miner: SocketMiner) -> int:
    with pytest.raises(WebSocketDisconnect) as closed:
        while True:
            miner.next()
    return closed.value.code


def lie_until_banned(miner: SocketMiner) -> int:
    """Lie on everything given, until the coordinator closes the socket; its close code."""
    with pytest.raises(WebSocketDisconnect) as closed:
        while True:
            event = miner.next()
            if isinstance(event, Work):
                miner.answer(event.assign, lie(event.assign))
    return closed.value.code


def wait_for(what: Callable[[], Any], message: str) -> Any:
    deadline = time.monotonic() + timeout(10)
    while not (found := what()):
        assert time.monotonic() < deadline, message
        time.sleep(0.02)
    return found


def banned(client: TestClient, miner: SocketMiner) -> bool:
    row = client.get(f"/api/v1/miners/{miner.signer.miner_id}").json()
    return row["status"] == "banned" and row["reputation"] == 0


def test_the_checker_catches_a_liar_at_its_first_lie(start: Any) -> None:
    client, connect = start()
    liar = connect()
    task_id = submit(client, ["I love this"])
    assign = liar.work()
    liar.answer(assign, lie(assign))
    assert liar.verdict(assign.assignment_id).reason == "failed_check"
    assert closed_with(liar) == m.BANNED
    wait_for(lambda: banned(client, liar), "the liar was not banned")
    with pytest.raises(WebSocketDisconnect) as refused:
        connect(liar.signer)  # a banned key is turned away at its next handshake
    assert refused.value.code == m.BANNED
    honest = connect()
    honest.answer(honest.work())
    task = wait_status(client, task_id, "completed")
    assert task["output"] == [{"tweet": "I love this", "label": "positive"}]
    lied, honest_vote = task["microtaskDetails"][0]["votes"]
    assert lied["checked"] is False and lied["revoked"] is True
    assert honest_vote["minerId"] == honest.signer.miner_id and honest_vote["checked"] is True


def test_known_answer_items_catch_a_liar_when_no_checker_runs(start: Any) -> None:
    client, connect = start(checker=False)
    liar = connect()
    gold = [{"input": "I love this", "output": "positive"}]
    task_id = submit(client, ["meh", "the sky"], gold=gold)
    # It lies on everything it gets, until a known answer gives it away.
    assert lie_until_banned(liar) == m.BANNED
    wait_for(lambda: banned(client, liar), "the liar was not banned")
    task = client.get(f"/api/v1/tasks/{task_id}").json()
    assert task["microtasks"] == 3 and len(task["microtaskDetails"]) == 2
    assert task["gold"]["items"] == 1 and task["gold"]["failed"] == 1
    # Its votes were struck, the one that gave it away and any before: none counts.
    (caught,) = task["gold"]["details"][0]["votes"]
    assert caught["checked"] is False and caught["revoked"] is True
    votes = [v for mt in task["microtaskDetails"] for v in mt["votes"]]
    assert all(v["revoked"] for v in votes)


def test_decisions_wait_for_enough_credibility_not_a_count(start: Any) -> None:
    # New identities are each assumed wrong 10% of the time: three agreeing
    # leave a 1.4e-3 chance that all three lie, over the 1e-3 target; four do not.
    client, connect = start(checker=False)
    miners = [connect() for _ in range(4)]
    task_id = submit(client, ["I love this"])
    assigns = [miner.work() for miner in miners]  # four copies at once: adaptive replication
    for miner, assign in zip(miners[:3], assigns, strict=False):
        miner.answer(assign)
        assert miner.verdict(assign.assignment_id).accepted
    assert client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "running"
    miners[3].answer(assigns[3])
    task = wait_status(client, task_id, "completed")
    assert task["microtaskDetails"][0]["error"] < 1e-3


def test_a_ban_reopens_every_decision_the_liar_made_even_in_finished_tasks(start: Any) -> None:
    # A generous target lets one new miner's word decide, so its lie gets through...
    client, connect = start(checker=False, target_error=0.2)
    liar = connect()
    fooled = submit(client, ["I love this"])
    assign = liar.work()
    liar.answer(assign, lie(assign))
    done = wait_status(client, fooled, "completed")
    assert done["output"][0]["label"] == "negative"
    # ...until a known answer gives it away: the old task is reopened and revised.
    submit(client, ["the sky"], gold=[{"input": "I hate this", "output": "negative"}])
    assert lie_until_banned(liar) == m.BANNED
    wait_for(
        lambda: client.get(f"/api/v1/tasks/{fooled}").json()["status"] == "running",
        "the fooled task was not reopened",
    )
    honest = connect()
    while client.get(f"/api/v1/tasks/{fooled}").json()["status"] != "completed":
        assign = honest.work(skip_withdrawn=True)
        honest.answer(assign)
        honest.verdict(assign.assignment_id)
    task = client.get(f"/api/v1/tasks/{fooled}").json()
    assert task["output"][0]["label"] == "positive" and task["revision"] == 1
    proof = client.get(f"/api/v1/tasks/{fooled}/proof").json()
    assert check_proof(proof, KindRegistry([KIND])) == []
    assert [v["revoked"] for v in proof["microtasks"][0]["votes"]] == [True, False]


def test_the_proof_is_bound_to_inputs_outputs_and_votes(start: Any) -> None:
    client, connect = start()
    miner = connect()
    task_id = submit(client, ["I love this", "I hate this"])
    for _ in range(2):
        assign = miner.work()
        miner.answer(assign)
        miner.verdict(assign.assignment_id)
    wait_status(client, task_id, "completed")
    proof = client.get(f"/api/v1/tasks/{task_id}/proof").json()
    kinds = KindRegistry([KIND])
    assert check_proof(proof, kinds) == []

    def edited(change: Callable[[dict[str, Any]], None]) -> list[str]:
        bundle = copy.deepcopy(proof)
        change(bundle)
        return check_proof(bundle, kinds)

    def input_(b: dict[str, Any]) -> None:
        b["microtasks"][0]["input"] = json.dumps("I hate this")

    def output(b: dict[str, Any]) -> None:
        b["microtasks"][0]["votes"][0]["output"] = '"negative"'

    def decision(b: dict[str, Any]) -> None:
        b["microtasks"][0]["decision"] = '"negative"'

    def task_output(b: dict[str, Any]) -> None:
        b["task"]["output"][0]["label"] = "neutral"

    for change in (input_, output, decision, task_output):
        assert edited(change), f"an edited {change.__name__} went unnoticed"


class FragileKind(SentimentKind):
    """Sentiment whose ``agree`` breaks on one answer, as a buggy plugin would."""

    def agree(self, a: Any, b: Any) -> bool:
        if "boom" in (a, b):
            raise ValueError("cannot compare with boom")
        return a == b


def test_a_plugin_that_raises_fails_its_microtask_and_changes_nothing_else(
    start: Any, tmp_path: Path
) -> None:
    client, connect = start(KindRegistry([FragileKind()]), checker=False)
    first, second = connect(), connect()
    task_id = submit(client, ["I love this"], replicas=2)
    a, b = first.work(), second.work()
    first.answer(a)
    assert first.verdict(a.assignment_id).accepted
    second.answer(b, "boom")
    assert second.verdict(b.assignment_id).accepted  # the miner is not at fault
    task = wait_status(client, task_id, "failed")
    (mt,) = task["microtaskDetails"]
    assert mt["status"] == "inconclusive" and "cannot compare with boom" in mt["reason"]
    assert client.get("/health").json()["leasesOut"] == 0


class PreparedKind(SentimentKind):
    """Sentiment whose checker wants its input prepared; counts how often it is."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared: list[Any] = []

    def prepare(self, microtask_input: Any) -> tuple[str]:
        self.prepared.append(microtask_input)
        return (microtask_input,)

    def check(self, microtask_input: Any, output: Any) -> bool:
        (text,) = microtask_input  # what prepare made, never the JSON again
        return super().check(text, output)


def test_a_microtask_input_is_prepared_once_however_many_results_are_checked(
    start: Any,
) -> None:
    kind = PreparedKind()
    client, connect = start(KindRegistry([kind]), check_rate=1.0)
    miners = [connect() for _ in range(3)]
    task_id = submit(client, ["I love this"], replicas=3, quorum=3)
    assigns = [miner.work() for miner in miners]
    for miner, assign in zip(miners, assigns, strict=True):
        miner.answer(assign, truth(assign))
        assert miner.verdict(assign.assignment_id).accepted
    wait_status(client, task_id, "completed")
    assert kind.prepared == ["I love this"]  # three results checked, one preparation
