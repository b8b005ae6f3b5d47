"""``qortex miner`` as users run it: several processes, wrong addresses, restarts, terminals."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qortex.miner.keys import read_key
from tests.helpers import (
    TWEETS,
    MinerProcesses,
    Server,
    StuckMiner,
    timeout,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path).start()
    yield srv
    srv.stop()


def connected(client: httpx.Client) -> set[str]:
    miners = client.get("/api/v1/miners", params={"limit": 500}).json()["miners"]
    return {m["minerId"] for m in miners if m["connected"]}


def status(client: httpx.Client, task_id: str) -> str:
    return client.get(f"/api/v1/tasks/{task_id}").json()["status"]


def miner_cli(server: Server, *args: str) -> subprocess.CompletedProcess:
    """``qortex miner`` that is expected to give up by itself."""
    return subprocess.run(
        [sys.executable, "-m", "qortex", "miner", *args],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )


def test_a_second_miner_process_gets_identities_of_its_own(server: Server, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    with server.client() as client:
        first = MinerProcesses(server, 5, keys, log_name="first.log")
        second = None
        try:
            wait_until(lambda: len(connected(client)) == 5, 20, "the first five connected")
            second = MinerProcesses(server, 2, keys, log_name="second.log")
            wait_until(lambda: len(connected(client)) == 7, 20, "seven miners connected")
            assert first.proc.poll() is None
            ids = {read_key(path).miner_id for path in keys.glob("miner-*.key")}
            assert connected(client) == ids and len(ids) == 7
            # Each process says where its keys are.
            wait_until(lambda: "miner-6.key" in second.log.read_text(), 10, "keys named")
            assert str(keys / "miner-0.key") in first.log.read_text()
            assert "miner-0.key" not in second.log.read_text()
        finally:
            first.stop()
            if second is not None:
                second.stop()
    assert "4004" not in first.log.read_text()


def test_a_replaced_identity_stops_alone_and_says_what_to_do(
    server: Server, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    miners = MinerProcesses(server, 3, keys)
    try:
        with server.client() as client:
            wait_until(lambda: len(connected(client)) == 3, 20, "three connected")
            taken = read_key(keys / "miner-1.key")
            # The same key from another socket (another machine sharing the key files).
            thief = StuckMiner(server, 1, signer=taken)
            try:
                wait_until(
                    lambda: "connected from another socket" in miners.log.read_text(),
                    20,
                    "the replaced miner says so",
                )
                log = miners.log.read_text()
                assert str(keys / "miner-1.key") in log
                assert "--key-dir" in log
                assert miners.proc.poll() is None  # the process and its other miners go on
                others = {read_key(keys / f"miner-{i}.key").miner_id for i in (0, 2)}
                assert connected(client) == others | {taken.miner_id}
            finally:
                thief.close()
            created = client.post("/api/v1/tasks", json={"tweets": TWEETS[:2], "replicas": 2})
            task_id = created.json()["taskId"]
            wait_until(
                lambda: client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed",
                20,
                "the two remaining miners complete a task",
            )
            assert connected(client) == others
    finally:
        miners.stop()


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/wrong/place", ["HTTP 403", "coordinator's address"]),
        ("https", ["TLS", "try http://"]),
    ],
)
def test_a_miner_gives_up_on_an_address_that_cannot_work(
    server: Server, tmp_path: Path, path: str, words: list[str]
) -> None:
    url = server.url.replace("http", "https") if path == "https" else server.url + path
    done = miner_cli(server, "--url", url, "--key-dir", str(tmp_path / "keys"))
    assert done.returncode == 1
    for word in words:
        assert word in done.stderr
    assert "Traceback" not in done.stderr


def test_a_restart_is_told_once_in_words_and_miners_come_back(
    server: Server, tmp_path: Path
) -> None:
    miners = MinerProcesses(server, 3, tmp_path / "keys")
    try:
        with server.client() as client:
            wait_until(lambda: len(connected(client)) == 3, 20, "three connected")
        server.stop()  # the coordinator's Ctrl-C
        wait_until(
            lambda: "next try in" in miners.log.read_text(), 20, "the miners notice the restart"
        )
        server.start()
        with server.client() as client:
            wait_until(lambda: len(connected(client)) == 3, 60, "three connected again")
        wait_until(lambda: "connected again" in miners.log.read_text(), 10, "the return told")
    finally:
        miners.stop()
    lines = miners.log.read_text().splitlines()
    closed = [line for line in lines if "connection closed" in line]
    assert len(closed) == 1, lines  # one line for three miners
    assert not re.search(r"\(\d+ \)", closed[0])  # the close is described, not left empty
    problems = [line for line in lines if "next try in" in line]
    assert len(problems) <= 2, lines  # the close, then at most "cannot connect" once


def test_a_coordinator_that_stops_answering_is_left_and_found_again(tmp_path: Path) -> None:
    """A stopped coordinator keeps its sockets open: only the heartbeats' answers tell.

    The miner sends no WebSocket pings; three heartbeat periods without a
    frame end the connection, and it reconnects once the coordinator runs.
    """
    server = Server(tmp_path, heartbeat_seconds=0.5).start()
    miners = MinerProcesses(server, 1, tmp_path / "keys")
    try:
        with server.client() as client:
            wait_until(lambda: len(connected(client)) == 1, 20, "one connected")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)
        try:
            wait_until(
                lambda: "answered nothing for" in miners.log.read_text(),
                10,
                "the miner gives up on the silent connection",
            )
        finally:
            server.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: "connected again" in miners.log.read_text(), 30, "the miner is back")
        with server.client() as client:
            wait_until(lambda: len(connected(client)) == 1, 20, "connected again")
    finally:
        miners.stop()
        server.stop()


def test_a_terminal_shows_one_live_status_line(server: Server, tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    command = ["miner", "--url", server.url, "--count", "3", "--key-dir", str(tmp_path / "keys")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "qortex", *command],
        env={**server.env, "TERM": "xterm", "COLUMNS": "120"},
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    screen = bytearray()

    def read_until(pattern: str, seconds: float) -> None:
        deadline = time.monotonic() + timeout(seconds)
        while not re.search(pattern, screen.decode(errors="replace")):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {pattern!r} in {screen[-500:]!r}"
            ready, _, _ = select.select([primary], [], [], left)
            if ready:
                try:
                    screen.extend(os.read(primary, 65536))
                except OSError:
                    break

    try:
        read_until(r"3/3 connected · 0 computed · 0 accepted · 0 withdrawn · 0 refused", 30)
        with server.client() as client:
            task = client.post("/api/v1/tasks", json={"tweets": TWEETS, "replicas": 3}).json()
            wait_until(lambda: status(client, task["taskId"]) == "completed", 30, "completed")
        read_until(r"3/3 connected · [1-9]\d* computed · [1-9]\d* accepted", 30)
        proc.send_signal(signal.SIGINT)
        read_until(r"3 miner\(s\): 3 connection\(s\), [1-9]\d* computed", 30)
        assert proc.wait(timeout(10)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    text = screen.decode(errors="replace")
    assert text.count("connected to ") == 1  # the status line carries the rest
    assert "\x1b[" in text  # drawn in place


def test_withdrawn_results_are_not_counted_as_refused(tmp_path: Path) -> None:
    """Copies decided before they arrive come back refused as ``withdrawn``: no one's fault."""
    # Five copies decided by agreement alone, so the last copies often arrive after the decision.
    server = Server(tmp_path, replicas=5, checker="false").start()
    try:
        _withdrawn_are_not_refused(server, tmp_path)
    finally:
        server.stop()


def _withdrawn_are_not_refused(server: Server, tmp_path: Path) -> None:
    miners = MinerProcesses(server, 5, tmp_path / "keys")

    def withdrawn_on_server() -> int:
        text = client.get("/metrics").text
        found = re.search(r'qortex_results_refused_total\{reason="withdrawn"\} (\d+)', text)
        return int(found[1]) if found else 0

    try:
        with server.client() as client:
            wait_until(lambda: len(connected(client)) == 5, 20, "five connected")
            deadline = time.monotonic() + timeout(120)
            while withdrawn_on_server() < 3:
                assert time.monotonic() < deadline, "no result ever arrived after its decision"
                task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS}).json()["taskId"]
                wait_until(
                    lambda task_id=task_id: status(client, task_id) == "completed",
                    30,
                    "task completed",
                )
            on_server = withdrawn_on_server()
            others = re.findall(
                r'qortex_results_refused_total\{reason="(\w+)"\}', client.get("/metrics").text
            )
    finally:
        miners.stop()
    tally = miners.tally()
    assert set(others) <= {"withdrawn"}
    assert tally["refused"] == 0
    assert 1 <= tally["withdrawn"] <= on_server
    assert "refused: withdrawn" not in miners.log.read_text()


def test_keygen_keys_are_used_with_key_and_bad_keys_are_a_clear_error(
    server: Server, tmp_path: Path
) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "qortex", "keygen", str(tmp_path / "mine.key")],
        capture_output=True,
        text=True,
        env=server.env,
        timeout=timeout(30),
    )
    assert made.returncode == 0, made.stderr
    miner_id = json.loads(made.stdout)["minerId"]
    assert f"--key {tmp_path / 'mine.key'}" in made.stderr
    command = ["miner", "--url", server.url, "--key", str(tmp_path / "mine.key")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "qortex", *command],
        env=server.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with server.client() as client:
            wait_until(lambda: connected(client) == {miner_id}, 20, "the keygen identity connected")
        in_use = miner_cli(server, "--url", server.url, "--key", str(tmp_path / "mine.key"))
        assert in_use.returncode == 2
        assert "in use by another qortex miner" in in_use.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout(10))
    (tmp_path / "mine.key").chmod(0o644)
    exposed = miner_cli(server, "--url", server.url, "--key", str(tmp_path / "mine.key"))
    assert exposed.returncode == 2
    assert "readable by others" in exposed.stderr and "chmod 600" in exposed.stderr
    assert "Traceback" not in exposed.stderr
