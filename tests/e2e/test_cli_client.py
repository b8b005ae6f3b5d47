"""``qortex submit`` and ``qortex status`` as a new user meets them, against a real coordinator."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    TWEETS,
    MinerProcesses,
    Server,
    labels,
    start_miners,
    timeout,
    wait_until,
)

pytestmark = pytest.mark.e2e

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One coordinator for the tests that only add tasks of their own."""
    srv = Server(tmp_path_factory.mktemp("shared")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def miners(server: Server) -> Iterator[MinerProcesses]:
    running = start_miners(server, 5, server.tmp / "keys")
    yield running
    running.stop()


@pytest.fixture
def lonely_server(tmp_path: Path) -> Iterator[Server]:
    """A coordinator no miner connects to."""
    srv = Server(tmp_path).start()
    yield srv
    srv.stop()


def cli(
    server: Server, *args: str, stdin: str | None = None, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qortex", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**server.env, **env},
        cwd=cwd,
        timeout=timeout(90),
    )


def test_a_file_longer_than_a_task_is_sent_as_several_and_read_back_in_order(
    server: Server, miners: MinerProcesses, tmp_path: Path
) -> None:
    tweets = [f"{TWEETS[i % len(TWEETS)]} #{i}" for i in range(12)]  # max_tweets_per_task is 5
    path = tmp_path / "tweets.txt"
    path.write_text("\n".join(tweets) + "\n")
    done = cli(server, "submit", str(path), "--wait", "--url", server.url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {"tweet": t, "label": label} for t, label in zip(tweets, labels(tweets), strict=True)
    ]
    assert "3 tasks" in done.stderr
    assert len(UUID.findall(done.stderr)) == 3
    assert "12/12" in done.stderr  # one bar over all of them
    sent = cli(server, "submit", str(path), "--url", server.url)
    created = json.loads(sent.stdout)
    assert [task["microtasks"] for task in created] == [5, 5, 2]


def test_urls_need_no_scheme_localhost_is_loopback_and_the_port_comes_from_qortex_toml(
    tmp_path: Path,
) -> None:
    srv = Server(tmp_path)
    del srv.env["QORTEX_API_KEY"]  # the CLI must find the key serve saved
    srv.start()
    try:
        here = tmp_path / "project"
        here.mkdir()
        (here / "qortex.toml").write_text(f"port = {srv.port}\n")
        env = {k: v for k, v in srv.env.items() if k not in ("QORTEX_PORT", "QORTEX_URL")}
        srv.env = env
        for where in (
            ["--url", f"localhost:{srv.port}"],
            ["--url", f"127.0.0.1:{srv.port}/"],
            [],  # ./qortex.toml
        ):
            done = cli(srv, "submit", "-", *where, stdin="fine\n", cwd=here)
            assert done.returncode == 0, (where, done.stderr)
            task_id = json.loads(done.stdout)["taskId"]
        through_env = cli(
            srv, "status", task_id, "--json", cwd=tmp_path, QORTEX_URL=f"localhost:{srv.port}"
        )
        assert through_env.returncode == 0, through_env.stderr
        wrong = cli(srv, "status", task_id, "--url", "127.0.0.1:notaport")
        assert wrong.returncode == 2
        assert "port" in wrong.stderr and "Traceback" not in wrong.stderr
        command = ["miner", "--url", f"localhost:{srv.port}", "--key-dir", str(tmp_path / "k")]
        miner = subprocess.Popen(
            [sys.executable, "-m", "qortex", *command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with srv.client() as client:
                client.headers["x-api-key"] = json.loads(
                    (tmp_path / "config" / "qortex" / "credentials.json").read_text()
                )[srv.url]
                wait_until(lambda: client.get("/health").json()["minersConnected"] == 1, 20, "1")
        finally:
            miner.send_signal(signal.SIGINT)
            _, stderr = miner.communicate(timeout=timeout(10))
        assert "Traceback" not in stderr
    finally:
        srv.stop()


def test_a_task_id_prefix_works_and_an_ambiguous_one_says_so(
    server: Server, miners: MinerProcesses
) -> None:
    ids: list[str] = []
    with server.client() as client:
        while len({i[0] for i in ids}) == len(ids):  # at most 17 tasks: two share a first digit
            ids.append(client.post("/api/v1/tasks", json={"tweets": ["ok"]}).json()["taskId"])
        for task_id in ids:
            wait_until(
                lambda task_id=task_id: (
                    client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed"
                ),
                30,
                "completed",
            )
    target = ids[-1]
    shown = cli(server, "status", target[:8], "--url", server.url)
    assert shown.returncode == 0, shown.stderr
    assert target in shown.stdout
    ambiguous = cli(server, "status", target[0], "--url", server.url)
    assert ambiguous.returncode == 1
    assert "ambiguous" in ambiguous.stderr
    missing = cli(server, "status", "fffffffff", "--url", server.url)
    if not any(i.startswith("fffffffff") for i in ids):
        assert missing.returncode == 1 and "no task id starts with" in missing.stderr
    bad = cli(server, "status", "not-a-task", "--url", server.url)
    assert bad.returncode == 1 and "HTTP 400" in bad.stderr


def test_status_is_a_readable_summary_and_json_on_request(
    server: Server, miners: MinerProcesses
) -> None:
    with server.client() as client:
        task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS[:3]}).json()["taskId"]
        wait_until(
            lambda: client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed",
            30,
            "completed",
        )
        task = client.get(f"/api/v1/tasks/{task_id}").json()
    shown = cli(server, "status", task_id, "--url", server.url)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) <= 12
    assert f"task      {task_id}" in lines
    assert "status    completed" in lines
    assert "progress  3/3 microtasks decided" in lines
    for mt in task["microtaskDetails"]:
        voters = [v["minerId"][:8] for v in mt["votes"] if v["agrees"]]
        row = next(line for line in lines if line.startswith(f"  #{mt['index']} "))
        assert json.dumps(mt["decision"]) in row
        assert all(voter in row for voter in voters)
    raw = cli(server, "status", task_id, "--json", "--url", server.url)
    assert json.loads(raw.stdout) == task


def test_waiting_without_miners_says_so_and_ctrl_c_prints_the_id(
    lonely_server: Server, tmp_path: Path
) -> None:
    server = lonely_server
    log = tmp_path / "submit.err"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qortex", "submit", "-", "--wait", "--url", server.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env={**server.env, "COLUMNS": "200"},
            text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write("nobody computes this\n")
        proc.stdin.close()
    try:
        with server.client() as client:
            task_id = wait_until(
                lambda: [t["taskId"] for t in client.get("/api/v1/tasks").json()["tasks"]],
                30,
                "the task created",
            )[0]
        wait_until(lambda: "no miner is connected" in log.read_text(), 30, "the note")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout(20)) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert f"task {task_id}" in text  # the full id, under the bar
    assert f"qortex status {task_id}" in text
    assert "no miner is connected" in text


def test_kind_applies_to_json_input(server: Server, tmp_path: Path) -> None:
    """Only what is created is checked, so no miner needs to compute it."""
    product = tmp_path / "product.json"
    product.write_text(json.dumps({"a": [[1, 2]], "b": [[3], [4]]}))
    done = cli(server, "submit", str(product), "--kind", "matmul", "--url", server.url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kind"] == "matmul"
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"input": {"a": [[1]], "b": [[2]]}, "replicas": 1}))
    done = cli(server, "submit", str(body), "--kind", "matmul", "--url", server.url)
    assert json.loads(done.stdout)["kind"] == "matmul"
    tweets = tmp_path / "tweets.json"
    tweets.write_text(json.dumps({"tweets": ["fine"]}))
    clash = cli(server, "submit", str(tweets), "--kind", "matmul", "--url", server.url)
    assert clash.returncode == 1
    assert "--kind matmul" in clash.stderr and "'sentiment'" in clash.stderr
    bare = cli(server, "submit", str(product), "--url", server.url)
    assert bare.returncode == 1 and "needs --kind" in bare.stderr


def test_help_shows_defaults_in_plain_words(tmp_path: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "qortex", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120"},
        timeout=timeout(30),
    )
    assert shown.returncode == 0
    for default in ("[default: 127.0.0.1]", "[default: 8000]", "[default: qortex.db]"):
        assert default in shown.stdout
    assert not re.search(r"<(str|bool|int|path)>", shown.stdout)


def test_cancel_takes_a_prefix_withdraws_the_task_and_a_second_cancel_is_refused(
    lonely_server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "tweets.txt"
    path.write_text("\n".join(TWEETS[:2]) + "\n")
    made = cli(lonely_server, "submit", str(path), "--url", lonely_server.url)
    assert made.returncode == 0, made.stderr
    task_id = json.loads(made.stdout)["taskId"]
    done = cli(lonely_server, "cancel", task_id[:8], "--url", lonely_server.url)
    assert done.returncode == 0, done.stderr
    with lonely_server.client() as client:
        assert client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "cancelled"
    again = cli(lonely_server, "cancel", task_id, "--url", lonely_server.url)
    assert again.returncode == 1
    assert "HTTP 409" in again.stderr and "only a running task can be cancelled" in again.stderr
