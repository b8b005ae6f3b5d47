"""Task kinds from entry points, for real: a third-party distribution and the matmul kind.

The ``reverse`` kind lives in its own distribution (``tests/plugin``), which is
pip-installed into this environment, so the coordinator and the CLI miners,
both separate processes, find it exactly as they would find anyone's kind.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from qortex.core.kinds import KindRegistry
from qortex.errors import ConfigError
from qortex.kinds.matmul import decode_matrix, encode_matrix
from qortex.kinds.sentiment import SentimentKind
from qortex.plugins import load_kinds
from qortex.settings import Settings
from tests.helpers import MinerProcesses, Server, start_miners, timeout, wait_until

pytestmark = pytest.mark.e2e

PLUGIN = Path(__file__).resolve().parent.parent / "plugin" / "qortex-reverse-kind"
PLUGIN_MODULE = Path("qortex_reverse_kind") / "__init__.py"
PLUGIN_ENTRY_POINTS = {("reverse", "qortex_reverse_kind:create")}


def _plugin_is_installed() -> bool:
    """Whether this very version of the plugin is installed, so installing is idempotent."""
    try:
        dist = importlib.metadata.distribution("qortex-reverse-kind")
    except importlib.metadata.PackageNotFoundError:
        return False
    installed = Path(str(dist.locate_file(PLUGIN_MODULE)))
    entry_points = {(ep.name, ep.value) for ep in dist.entry_points if ep.group == "qortex.kinds"}
    return (
        entry_points == PLUGIN_ENTRY_POINTS
        and installed.is_file()
        and installed.read_bytes() == (PLUGIN / PLUGIN_MODULE).read_bytes()
    )


def _setuptools_builds_wheels_alone() -> bool:
    """setuptools before 70.1 needs the separate ``wheel`` package to build a wheel."""
    if importlib.util.find_spec("wheel") is not None:
        return True
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    return (major, minor) >= (70, 1)


TEST_ENV_MARK = "qortex-test-env"  # written by scripts/test into the environment it made


def _in_test_env() -> bool:
    """Whether this interpreter runs in the suite's own environment, not the user's."""
    return sys.prefix != sys.base_prefix and (Path(sys.prefix) / TEST_ENV_MARK).is_file()


def _installed_here() -> bool:
    dist = importlib.metadata.distribution("qortex-reverse-kind")
    location = Path(str(dist.locate_file(PLUGIN_MODULE))).resolve()
    return location.is_relative_to(Path(sys.prefix).resolve())


@pytest.fixture(scope="module")
def reverse_plugin(tmp_path_factory: pytest.TempPathFactory) -> None:
    # The plugin is pip-installed into this interpreter's environment: that must be
    # the suite's own, or the user's coordinator would list a kind named reverse.
    assert _in_test_env(), (
        f"{sys.prefix} is not the suite's environment: run the tests with scripts/test"
    )
    # Test workers run side by side: one installs while the others wait for it.
    with open(Path(sys.prefix) / "qortex-plugin.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        importlib.invalidate_caches()
        if _plugin_is_installed():
            assert _installed_here()
            return
        _install(tmp_path_factory)


def _install(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Build from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = tmp_path_factory.mktemp("plugin") / PLUGIN.name
    shutil.copytree(PLUGIN, source)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    if _setuptools_builds_wheels_alone():
        command.append("--no-build-isolation")
    done = subprocess.run(
        [*command, "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=timeout(180),
    )
    assert done.returncode == 0, done.stderr
    importlib.invalidate_caches()
    assert _plugin_is_installed()
    assert _installed_here()


@pytest.fixture
def server(tmp_path: Path, reverse_plugin: None) -> Iterator[Server]:
    srv = Server(tmp_path).start()
    yield srv
    srv.stop()


@pytest.fixture
def three_miners(server: Server, tmp_path: Path) -> Iterator[MinerProcesses]:
    miners = start_miners(server, 3, tmp_path / "keys")
    yield miners
    miners.stop()


def run_task(client: httpx.Client, kind: str, task_input: Any, seconds: float) -> dict[str, Any]:
    """Submit a task and return its final state, polling the light task list, not the task."""
    # The reverse kind has no checker: three new miners agreeing leave a 1.4e-3
    # chance that all three lie, so the task accepts a 1% risk (docs/trust.md).
    body = {"kind": kind, "input": task_input, "replicas": 3, "targetError": 0.01}
    created = client.post("/api/v1/tasks", json=body)
    assert created.status_code == 201, created.text
    task_id = created.json()["taskId"]

    def finished() -> str | None:
        listed = client.get("/api/v1/tasks", params={"kind": kind}).json()["tasks"]
        status = next(t["status"] for t in listed if t["taskId"] == task_id)
        return status if status in ("completed", "failed") else None

    wait_until(finished, seconds, f"{kind} task {task_id} finished")
    task = client.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "completed", task["status"]
    return task


def test_a_third_party_kind_runs_end_to_end(server: Server, three_miners: MinerProcesses) -> None:
    words = ["stressed", "drawer", "qortex", "a", "\u00e9t\u00e9 ok"]
    with server.client() as client:
        assert "reverse" in client.get("/health").json()["kinds"]
        listed = client.get("/api/v1/kinds").json()["kinds"]
        assert {"name": "reverse", "browser": False, "limits": {}} in listed
        assert client.get("/kinds/reverse.js").status_code == 404
        refused = client.post(
            "/api/v1/tasks", json={"kind": "reverse", "input": {"words": ["ok", ""]}}
        )
        assert refused.status_code == 400
        assert refused.json()["detail"] == {"field": "words[1]"}
        task = run_task(client, "reverse", {"words": words}, 30)
    assert task["microtasks"] == len(words)
    assert task["output"] == [word[::-1] for word in words]


def test_matmul_256_by_256_with_three_cli_miners(
    server: Server, three_miners: MinerProcesses
) -> None:
    rng = np.random.default_rng(2024)
    a, b = rng.standard_normal((256, 256)), rng.standard_normal((256, 256))
    task_input = {"a": encode_matrix(a), "b": encode_matrix(b), "tile": 64}
    started = time.monotonic()
    with server.client() as client:
        task = run_task(client, "matmul", task_input, 60)
    elapsed = time.monotonic() - started
    print(f"matmul 256x256 . 256x256, tile 64, 3 CLI miners: {elapsed:.2f}s")
    assert task["microtasks"] == 16
    assert all(mt["status"] == "decided" for mt in task["microtaskDetails"])
    output = task["output"]
    assert set(output) == {"rows", "cols", "data"}
    product = decode_matrix(output, "output")
    assert product.shape == (256, 256)
    assert np.allclose(product, a @ b, rtol=1e-9, atol=1e-9)


def test_matmul_largest_tile_that_fits_a_miner_message(
    server: Server, three_miners: MinerProcesses
) -> None:
    """A 313x313 tile's result is just under the default 1 MiB message limit; 314 is refused."""
    rng = np.random.default_rng(313)
    a, b = rng.standard_normal((314, 40)), rng.standard_normal((40, 314))
    task_input = {"a": encode_matrix(a), "b": encode_matrix(b), "tile": 314}
    with server.client() as client:
        refused = client.post(
            "/api/v1/tasks", json={"kind": "matmul", "input": task_input, "replicas": 3}
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"] == {"field": "tile"}
        task = run_task(client, "matmul", {**task_input, "tile": 313}, 30)
    assert task["microtasks"] == 4  # 313x313, 313x1, 1x313 and 1x1
    assert np.allclose(decode_matrix(task["output"], "output"), a @ b, rtol=1e-9, atol=1e-9)


def test_matmul_answers_in_lists_when_asked_in_lists(
    server: Server, three_miners: MinerProcesses
) -> None:
    a = [[1, 2, 3], [4, 5, 6]]
    b = [[7, 8], [9, 10], [11, 12]]
    with server.client() as client:
        task = run_task(client, "matmul", {"a": a, "b": b}, 30)
    assert task["output"] == [[58.0, 64.0], [139.0, 154.0]]


# -- duplicate names ------------------------------------------------------


def test_two_kinds_with_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="two task kinds are named 'sentiment'"):
        KindRegistry([SentimentKind(), SentimentKind()])


def _fake_distribution(root: Path, name: str, entry_points: str) -> Path:
    """A distribution made of nothing but metadata, found through ``sys.path`` like any other."""
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[qortex.kinds]\n{entry_points}\n")
    return root


def test_loading_refuses_a_second_kind_with_a_taken_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_distribution(
        tmp_path, "qortex-dupe-kind", "sentiment = qortex.kinds.sentiment:create"
    )
    monkeypatch.syspath_prepend(str(fake))
    with pytest.raises(ConfigError, match="two task kinds are named 'sentiment'"):
        load_kinds(Settings())


@pytest.mark.parametrize(
    ("entry_point", "words"),
    [
        ("other = qortex.kinds.sentiment:create", "entry point 'other' builds a kind named"),
        ("broken = qortex_no_such_module:create", "task kind plugin 'broken'"),
    ],
)
def test_loading_refuses_a_misnamed_or_broken_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry_point: str, words: str
) -> None:
    monkeypatch.syspath_prepend(str(_fake_distribution(tmp_path, "qortex-bad-kind", entry_point)))
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_kinds(Settings())


def _serve_with_a_duplicate_kind(tmp_path: Path) -> Server:
    """``qortex serve`` with a second distribution that also declares ``sentiment``."""
    fake = _fake_distribution(
        tmp_path / "site", "qortex-dupe-kind", "sentiment = qortex.kinds.sentiment:create"
    )
    srv = Server(tmp_path)
    srv.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")]))
    with open(srv.log, "ab") as log:
        srv.proc = subprocess.Popen(
            [sys.executable, "-m", "qortex", "serve"],
            cwd=tmp_path,
            env=srv.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return srv


def test_the_server_refuses_to_start_with_two_kinds_of_one_name(tmp_path: Path) -> None:
    srv = _serve_with_a_duplicate_kind(tmp_path)
    try:
        wait_until(
            lambda: "two task kinds are named 'sentiment'" in srv.log.read_text(),
            20,
            "the duplicate kind reported",
        )
        with pytest.raises(httpx.TransportError):
            httpx.get(srv.url + "/health", timeout=1)
    finally:
        srv.stop()


def test_the_server_exits_when_it_refuses_to_start(tmp_path: Path) -> None:
    srv = _serve_with_a_duplicate_kind(tmp_path)
    assert srv.proc is not None
    try:
        assert srv.proc.wait(timeout(30)) != 0
    except subprocess.TimeoutExpired:
        pytest.fail("qortex serve refused to start but did not exit")
    finally:
        srv.stop()
