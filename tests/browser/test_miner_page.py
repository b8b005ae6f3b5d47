"""The browser miner in real headless Chromium against a real coordinator.

Every tab is its own browser context, so its own IndexedDB and its own miner
identity. The page exposes a read-only ``window.qortexMiner`` status object;
the vector test imports the very modules the page and its workers run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from nacl.signing import VerifyKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from qortex.miner.keys import read_key
from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    Tabs,
    connected_miners,
    miner_status,
    ms,
    voters,
    wait_connected,
    wait_task,
)
from tests.helpers import (
    TWEETS,
    MinerProcesses,
    Server,
    follow_events,
    free_port,
    labels,
    timeout,
    wait_until,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
ARTIFACTS = ROOT / "test-artifacts"
RTOL = 1e-9  # qortex.kinds.matmul.RTOL: how close two tiles must be to agree

# Inputs where a sloppy port of the classifier would differ from Python.
TRICKY_TWEETS = [
    "constructor",
    "toString valueOf hasOwnProperty __proto__ love",
    "not constructor good",
    "İstanbul is lovely",
    "\u212a\u0130ND",
    "rock'n'roll' is 'great'",
    "don\u2019t worry",
    "I CANNOT complain",
    "never never happy",
    "not at all a good day",
]

BROWSER_CHECKS = """
async ({ tweets, matmul, signing, hrefs }) => {
  const base = window.qortexMiner.base;
  const load = (path) => import(new URL(path, base).href);
  const [sentiment, mm, p, id] = await Promise.all([
    load("kinds/sentiment.js"), load("kinds/matmul.js"),
    load("static/protocol.js"), load("static/identity.js"),
  ]);
  await sentiment.init();
  const subtle = crypto.subtle;

  // The signing example's key, imported from its seed; the rest is the page's own code.
  const privateKey = await crypto.subtle.importKey(
    "pkcs8", p.unhex(signing.pkcs8), { name: "Ed25519" }, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  const raw = Uint8Array.from(
    atob(jwk.x.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  const publicKey = await crypto.subtle.importKey(
    "raw", raw, { name: "Ed25519" }, true, ["verify"]);
  const challengeMessage = p.helloMessage(signing.nonce);
  const outputSha256 = await p.sha256Hex(subtle, p.utf8(signing.output));
  // The page signs the digest the assign frame carries, as the page's socket code reads it.
  const assign = JSON.parse(signing.assignFrame);
  const frame = await p.resultFrame(
    subtle, privateKey, assign.assignmentId, assign.microtaskId, assign.inputSha256,
    signing.output);

  // The tab's own identity, as stored in IndexedDB.
  const me = await id.loadIdentity({ indexedDB, subtle });
  return {
    labels: tweets.map((tweet) => sentiment.compute(tweet)),
    constructorInLexicon: sentiment.tokenize("constructor").length === 1,
    products: matmul.map((input) => JSON.stringify(mm.compute(input))),
    signing: {
      publicKey: await p.publicKeyHex(subtle, publicKey),
      publicKeySha256: await p.sha256Hex(subtle, raw),
      minerId: await p.minerIdOf(subtle, raw),
      challengeMessage,
      challengeMessageHex: p.hex(p.utf8(challengeMessage)),
      challengeSignature: await p.sign(subtle, privateKey, challengeMessage),
      outputBytesHex: p.hex(p.utf8(signing.output)),
      outputSha256,
      inputBytesHex: p.hex(p.utf8(signing.input)),
      inputSha256: await p.sha256Hex(subtle, p.utf8(signing.input)),
      resultMessage: p.resultMessage(
        signing.assignmentId, signing.microtaskId, assign.inputSha256, outputSha256),
      resultSignature: frame.signature,
      utf8OutputBytesHex: p.hex(p.utf8(signing.utf8Output)),
      utf8OutputSha256: await p.sha256Hex(subtle, p.utf8(signing.utf8Output)),
      escapedInputBytesHex: p.hex(p.utf8(signing.escapedInput)),
      escapedInputSha256: await p.sha256Hex(subtle, p.utf8(signing.escapedInput)),
    },
    frame: JSON.parse(JSON.stringify(frame)),
    urls: hrefs.map((href) => [p.pageBase(href).href, p.socketUrl(p.pageBase(href))]),
    backoff: [0, 1, 2, 5, 6, 20].map((n) => p.backoffSeconds(n, () => 1)),
    identity: {
      extractable: me.privateKey.extractable,
      algorithm: me.privateKey.algorithm.name,
      usages: me.privateKey.usages,
      persistent: me.persistent,
      publicHex: me.publicHex,
      minerId: me.minerId,
      exportRefused: await crypto.subtle.exportKey("pkcs8", me.privateKey).then(
        () => false, () => true),
      signature: await p.sign(subtle, me.privateKey, "qortex browser test"),
    },
  };
}
"""

URL_CASES = {
    "http://127.0.0.1:8000/": ("http://127.0.0.1:8000/", "ws://127.0.0.1:8000/ws/miner"),
    "http://127.0.0.1:8000/mine": ("http://127.0.0.1:8000/", "ws://127.0.0.1:8000/ws/miner"),
    "https://x.ngrok.app/": ("https://x.ngrok.app/", "wss://x.ngrok.app/ws/miner"),
    "https://x.ngrok.app/mine?a=1#top": ("https://x.ngrok.app/", "wss://x.ngrok.app/ws/miner"),
    "https://example.org/qortex/": (
        "https://example.org/qortex/",
        "wss://example.org/qortex/ws/miner",
    ),
    "https://example.org/qortex/mine": (
        "https://example.org/qortex/",
        "wss://example.org/qortex/ws/miner",
    ),
    "https://example.org/qortex": (
        "https://example.org/qortex/",
        "wss://example.org/qortex/ws/miner",
    ),
    "https://example.org/examine/": (
        "https://example.org/examine/",
        "wss://example.org/examine/ws/miner",
    ),
}


def decode(matrix: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(matrix["data"], validate=True)
    assert len(raw) == matrix["rows"] * matrix["cols"] * 8
    return np.frombuffer(raw, dtype="<f8").reshape(matrix["rows"], matrix["cols"])


def encode(matrix: np.ndarray) -> dict[str, Any]:
    raw = np.ascontiguousarray(matrix, dtype="<f8").tobytes()
    rows, cols = matrix.shape
    return {"rows": rows, "cols": cols, "data": base64.b64encode(raw).decode()}


def close_enough(x: np.ndarray, y: np.ndarray) -> bool:
    """The matmul kind's agreement: |x-y| <= 1e-9 * max(1, max|x|, max|y|), elementwise."""
    if x.shape != y.shape:
        return False
    scale = max(1.0, float(np.abs(x).max()), float(np.abs(y).max()))
    return bool(np.all(np.abs(x - y) <= RTOL * scale))


def matmul_task(size: int, tile: int, seed: int) -> tuple[dict[str, Any], np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((size, size))
    b = rng.standard_normal((size, size))
    body = {"kind": "matmul", "input": {"a": encode(a), "b": encode(b), "tile": tile}}
    return body, a @ b


def test_the_page_computes_every_vector_with_its_own_code(tabs: Tabs) -> None:
    page = tabs.open("/mine")
    sentiment = json.loads((VECTORS / "sentiment.json").read_text(encoding="utf-8"))
    matmul = json.loads((VECTORS / "matmul.json").read_text(encoding="utf-8"))
    signing = json.loads((VECTORS / "signing.json").read_text(encoding="utf-8"))
    tweets = [v["input"] for v in sentiment] + TWEETS + TRICKY_TWEETS
    got = page.evaluate(
        BROWSER_CHECKS,
        {
            "tweets": tweets,
            "matmul": [v["input"] for v in matmul],
            "signing": signing,
            "hrefs": list(URL_CASES),
        },
    )

    # sentiment: every vector exactly, and Python's answer for the tricky inputs
    assert got["labels"][: len(sentiment)] == [v["output"] for v in sentiment]
    assert got["labels"][len(sentiment) :] == labels(TWEETS + TRICKY_TWEETS)
    assert got["labels"][len(sentiment) + len(TWEETS)] == "neutral"  # "constructor"

    # matmul: compact form, right shape, within the kind's tolerance
    assert len(got["products"]) == len(matmul)
    for vector, text in zip(matmul, got["products"], strict=True):
        output = json.loads(text)
        assert list(output) == ["rows", "cols", "data"], vector["name"]
        assert text == json.dumps(output, separators=(",", ":")), "compact JSON text"
        assert close_enough(decode(output), decode(vector["output"])), vector["name"]

    # signing: every value of the worked example, from the page's functions
    for name, value in got["signing"].items():
        assert value == signing[name], name
    assert got["frame"] == {
        "type": "result",
        "assignmentId": signing["assignmentId"],
        "microtaskId": signing["microtaskId"],
        "output": signing["output"],
        "signature": signing["resultSignature"],
    }

    # URLs are derived from the page's own location, prefix and all
    assert [tuple(pair) for pair in got["urls"]] == list(URL_CASES.values())
    assert got["backoff"] == [0.5, 1, 2, 16, 30, 30]

    # the tab's identity: a stored, non-extractable Ed25519 key
    me = got["identity"]
    status = miner_status(page)
    assert me["extractable"] is False and me["exportRefused"] is True
    assert me["algorithm"] == "Ed25519" and me["usages"] == ["sign"]
    assert me["persistent"] is True
    assert me["minerId"] == status["minerId"] and me["publicHex"] == status["publicKey"]
    VerifyKey(bytes.fromhex(me["publicHex"])).verify(
        b"qortex browser test", bytes.fromhex(me["signature"])
    )


def test_three_tabs_complete_sentiment_and_matmul_tasks(tabs: Tabs, server: Server) -> None:
    pages = [tabs.open() for _ in range(3)]
    ids = {miner_status(page)["minerId"] for page in pages}
    assert len(ids) == 3
    body, expected = matmul_task(64, 32, seed=1)
    with server.client() as client:
        wait_until(lambda: set(connected_miners(client)) == ids, 10, "three tabs listed")
        started = time.monotonic()
        sentiment_id = client.post("/api/v1/tasks", json={"tweets": TWEETS, "replicas": 3})
        matmul_id = client.post("/api/v1/tasks", json={**body, "replicas": 3})
        assert sentiment_id.status_code == matmul_id.status_code == 201
        sentiment = wait_task(client, sentiment_id.json()["taskId"])
        matmul = wait_task(client, matmul_id.json()["taskId"])
        elapsed = time.monotonic() - started
    print(f"\nthree tabs: sentiment (5) and matmul 64x64 tile 32 (4) done in {elapsed:.2f} s")
    assert sentiment["output"] == [
        {"tweet": t, "label": label} for t, label in zip(TWEETS, labels(TWEETS), strict=True)
    ]
    assert matmul["microtasks"] == 4
    assert close_enough(decode(matmul["output"]), expected)
    assert voters(sentiment, matmul) <= ids
    for page in pages:
        status = miner_status(page)
        # A result may cross the cancel of its copy (the quorum was already met).
        assert status["refused"] == 0 or status["lastRefusal"] == "withdrawn", status
        assert status["failed"] == 0
    # every microtask was decided by two agreeing tabs (acks may trail the decision a little)
    wait_until(
        lambda: sum(miner_status(page)["accepted"] for page in pages) >= 2 * (5 + 4),
        5,
        "the quorum's results acked",
    )


def test_a_tab_and_two_cli_miners_form_a_quorum(tabs: Tabs, server: Server, tmp_path: Path) -> None:
    tab = miner_status(tabs.open())["minerId"]
    keys = tmp_path / "keys"
    miners = MinerProcesses(server, 2, keys)
    try:
        with server.client() as client:
            wait_until(lambda: len(connected_miners(client)) == 3, 20, "two CLI miners connected")
            cli = {read_key(path).miner_id for path in keys.iterdir()}
            assert set(connected_miners(client)) == cli | {tab}
            body, expected = matmul_task(48, 16, seed=2)
            # quorum 3 of 3: every copy must be answered, and all three must agree
            quorum = {"replicas": 3, "quorum": 3}
            ids = [
                client.post("/api/v1/tasks", json={"tweets": TWEETS, **quorum}).json()["taskId"],
                client.post("/api/v1/tasks", json={**body, **quorum}).json()["taskId"],
            ]
            sentiment, matmul = (wait_task(client, task_id) for task_id in ids)
    finally:
        miners.stop()
    assert sentiment["output"] == [
        {"tweet": t, "label": label} for t, label in zip(TWEETS, labels(TWEETS), strict=True)
    ]
    assert close_enough(decode(matmul["output"]), expected)
    for task in (sentiment, matmul):
        for microtask in task["microtaskDetails"]:
            assert {vote["minerId"] for vote in microtask["votes"]} == cli | {tab}


def test_a_reload_keeps_the_identity_and_a_second_tab_is_refused(
    tabs: Tabs, server: Server
) -> None:
    page = tabs.open()
    before = miner_status(page)["minerId"]
    page.reload()
    wait_connected(page)
    assert miner_status(page)["minerId"] == before
    with server.client() as client:
        wait_until(lambda: before in connected_miners(client), 10, "the reloaded tab connected")
        miners = client.get("/api/v1/miners").json()["miners"]
        assert [m["minerId"] for m in miners] == [before]
        assert miners[0]["software"].startswith("qortex-browser/")
        kinds = client.get("/api/v1/kinds").json()["kinds"]
        assert miners[0]["kinds"] == [k["name"] for k in kinds if k["browser"]]
        assert {"matmul", "sentiment"} <= set(miners[0]["kinds"])

    # A second tab of the same browser profile is the same miner: the newer
    # connection wins (4004) and the older tab stops instead of fighting back.
    second = page.context.new_page()
    tabs.goto(second)
    assert miner_status(second)["minerId"] == before
    page.wait_for_function("() => window.qortexMiner.state === 'stopped'", timeout=ms(10))
    status = miner_status(page)
    assert "4004" in status["reason"]
    assert "4004" in page.get_by_test_id("reason").inner_text()
    page.wait_for_timeout(1500)  # long enough for a reconnect, which must not come
    assert miner_status(page)["state"] == "stopped"
    assert miner_status(second)["state"] == "connected"
    page.close()

    # Stop is remembered across a reload; Start mines again as the same miner.
    toggle = second.get_by_test_id("toggle")
    assert toggle.inner_text() == "Stop"
    toggle.click()
    assert miner_status(second)["state"] == "stopped"
    with server.client() as client:
        wait_until(lambda: not connected_miners(client), 10, "the stopped tab disconnected")
        second.reload()
        second.wait_for_function("() => window.qortexMiner.minerId !== ''", timeout=ms(10))
        second.wait_for_timeout(500)
        assert miner_status(second)["state"] == "stopped"
        assert not connected_miners(client)
        second.get_by_role("button", name="Start").click()
        wait_connected(second)
        assert set(connected_miners(client)) == {before}


def test_closing_a_tab_mid_microtask_reassigns_its_lease(
    tabs: Tabs, server: Server, tmp_path: Path
) -> None:
    page = tabs.new()
    held: list[Any] = []  # never answered: the worker waits for its module forever
    page.route("**/kinds/sentiment.js", lambda route: held.append(route))
    tabs.goto(page)
    tab = miner_status(page)["minerId"]
    with server.client() as client:
        task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS[:1]}).json()["taskId"]
        page.wait_for_function("() => window.qortexMiner.working.length === 1", timeout=ms(10))
        working = miner_status(page)["working"][0]
        assert working["kind"] == "sentiment" and working["taskId"] == task_id
        assert client.get("/health").json()["leasesOut"] == 1
        page.context.close()

        events = follow_events(
            server, 0, until=lambda e: e["type"] == "microtask.reassigned", taskId=task_id
        )
        reassigned = events[-1]["data"]
        assert reassigned["reason"] == "released"
        assert reassigned["minerId"] == tab
        assert reassigned["assignmentId"] == working["assignmentId"]

        keys = tmp_path / "keys"
        miners = MinerProcesses(server, 2, keys)
        try:
            task = wait_task(client, task_id)
        finally:
            miners.stop()
    assert task["output"] == [{"tweet": TWEETS[0], "label": labels(TWEETS[:1])[0]}]
    assert voters(task) == {read_key(path).miner_id for path in keys.iterdir()}


def test_the_page_reads_well_on_a_phone_and_a_desktop_while_working(
    tabs: Tabs, server: Server
) -> None:
    phone = tabs.new(PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    desktop = tabs.new(DESKTOP)
    for page in (phone, desktop):
        page.route("**/kinds/matmul.js", lambda route: None)  # matmul work never finishes
        tabs.goto(page)

    # Two slots on the phone, set through the page: the tab reconnects with them.
    before = miner_status(phone)["minerId"]
    phone.get_by_test_id("slots").fill("1")
    phone.get_by_test_id("slots").press("Enter")
    phone.wait_for_function("() => window.qortexMiner.slots === 1", timeout=ms(5))
    phone.get_by_role("button", name="One slot more").click()
    phone.wait_for_function("() => window.qortexMiner.slots === 2", timeout=ms(5))
    with server.client() as client:
        wait_until(
            lambda: connected_miners(client).get(before, {}).get("slots") == 2,
            10,
            "the phone reconnected with two slots",
        )
        wait_connected(phone)
        task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS}).json()["taskId"]
        wait_task(client, task_id)  # two tabs, quorum 2: both answered everything
        body, _ = matmul_task(64, 32, seed=3)
        client.post("/api/v1/tasks", json=body).raise_for_status()

    phone.wait_for_function("() => window.qortexMiner.working.length === 2", timeout=ms(10))
    desktop.wait_for_function("() => window.qortexMiner.working.length >= 1", timeout=ms(10))
    ARTIFACTS.mkdir(exist_ok=True)
    for page, name in ((phone, "miner-page-phone.png"), (desktop, "miner-page-desktop.png")):
        page.wait_for_function(f"() => window.qortexMiner.accepted === {len(TWEETS)}")
        status = miner_status(page)
        page.wait_for_function("() => document.querySelectorAll('#work li').length > 0")
        assert page.get_by_test_id("done").inner_text() == str(len(TWEETS))
        assert "matmul" in page.get_by_test_id("work").inner_text()
        assert page.get_by_test_id("miner-id").inner_text() == status["minerId"]
        assert page.get_by_test_id("state").inner_text() == "Connected"
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), (
            f"{name}: the page scrolls sideways"
        )
        page.screenshot(path=str(ARTIFACTS / name), full_page=True)

    # Touch targets stay large on the phone.
    for test_id in ("toggle", "slots"):
        box = phone.get_by_test_id(test_id).bounding_box()
        assert box is not None and box["height"] >= 44, test_id


def test_a_tab_reconnects_when_the_coordinator_comes_back(tabs: Tabs, server: Server) -> None:
    page = tabs.open()
    miner_id = miner_status(page)["minerId"]
    server.stop()
    page.wait_for_function("() => window.qortexMiner.state === 'reconnecting'", timeout=ms(10))
    assert page.get_by_test_id("state").inner_text().startswith("Reconnecting in ")
    server.start()  # the same port and database
    wait_connected(page, 20)
    assert miner_status(page)["minerId"] == miner_id
    with server.client() as client:
        task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS[:2], "replicas": 1})
        task = wait_task(client, task_id.json()["taskId"])
    assert voters(task) == {miner_id}


PREFIX = "/qortex"
HOP_HEADERS = {"host", "content-length", "content-encoding", "transfer-encoding", "connection"}


class PrefixProxy:
    """A reverse proxy publishing the coordinator under ``/qortex``, prefix stripped.

    What nginx or a tunnel with a path does: anything the page fetches from
    ``/`` instead of from beside itself misses the coordinator here.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.paths: list[str] = []
        app = Starlette(
            routes=[
                WebSocketRoute(PREFIX + "/{path:path}", self.socket),
                Route(PREFIX + "/{path:path}", self.http, methods=["GET", "POST"]),
                Route(PREFIX, self.http, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> PrefixProxy:
        self.thread.start()
        wait_until(lambda: self.server.started, 10, "the proxy started")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout(10))

    async def http(self, request: Request) -> Response:
        path = request.url.path[len(PREFIX) :] or "/"
        self.paths.append(path)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with httpx.AsyncClient(base_url=self.upstream) as client:
            answer = await client.request(
                request.method,
                path,
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
        return Response(answer.content, answer.status_code, headers=kept)

    async def socket(self, ws: WebSocket) -> None:
        path = ws.url.path[len(PREFIX) :]
        self.paths.append(path)
        target = self.upstream.replace("http", "ws", 1) + path
        async with ws_connect(target, max_size=None) as upstream:
            await ws.accept()

            async def down() -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for message in upstream:
                        if isinstance(message, str):
                            await ws.send_text(message)
                        else:
                            await ws.send_bytes(message)
                code = upstream.close_code or 1000
                with contextlib.suppress(Exception):
                    await ws.close(code if code >= 3000 or code == 1000 else 1011)

            async def up() -> None:
                with contextlib.suppress(WebSocketDisconnect, ConnectionClosed, RuntimeError):
                    while True:
                        message = await ws.receive()
                        if message["type"] == "websocket.disconnect":
                            break
                        data = message.get("text")
                        await upstream.send(data if data is not None else message["bytes"])
                await upstream.close()

            pending = {asyncio.ensure_future(down()), asyncio.ensure_future(up())}
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()


@pytest.fixture
def proxy(server: Server) -> Iterator[PrefixProxy]:
    with PrefixProxy(server.url) as running:
        yield running


def test_the_page_works_under_a_path_prefix(tabs: Tabs, server: Server, proxy: PrefixProxy) -> None:
    page = tabs.new()
    page.goto(proxy.url + PREFIX)  # no trailing slash: the page adds it
    wait_connected(page)
    assert page.url == proxy.url + PREFIX + "/"

    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.reload()
    wait_connected(page)
    status = miner_status(page)
    assert status["base"] == proxy.url + PREFIX + "/"
    assert status["socketUrl"] == proxy.url.replace("http", "ws") + PREFIX + "/ws/miner"
    with server.client() as client:
        task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS, "replicas": 1})
        task = wait_task(client, task_id.json()["taskId"])
    assert voters(task) == {status["minerId"]}

    page.goto(proxy.url + PREFIX + "/mine")  # the same base, so the same identity
    wait_connected(page)
    assert miner_status(page)["base"] == status["base"]
    assert miner_status(page)["minerId"] == status["minerId"]
    assert requested, "no requests recorded"
    for url in requested:  # nothing is fetched from the root, where the prefix is missing
        assert url.startswith((proxy.url + PREFIX + "/", "data:")), url
    expected = {
        "/",
        "/mine",
        "/static/base.css",
        "/static/miner.css",
        "/static/miner.js",
        "/static/miner-status.js",
        "/static/miner-pool.js",
        "/static/miner-connection.js",
        "/static/miner-controller.js",
        "/static/miner-view.js",
        "/static/protocol.js",
        "/static/identity.js",
        "/static/worker.js",
        "/static/ticker.js",
        "/api/v1/kinds",
        "/kinds/sentiment.js",
        "/kinds/sentiment/sentiment_lexicon.txt",
        "/ws/miner",
    }
    assert expected <= set(proxy.paths)


class HeldResults:
    """Holds the tab's result messages on their way to the coordinator until released.

    Everything else (hello, heartbeats) passes; a held result reaches the
    coordinator only after its microtask was decided without it, so the tab's
    copy is late for certain, not by chance.
    """

    def __init__(self, page: Any) -> None:
        self.holding = True
        self.held: list[str | bytes] = []
        self.server: Any = None
        page.route_web_socket("**/ws/miner", self._route)

    def _route(self, ws: Any) -> None:
        self.server = ws.connect_to_server()
        ws.on_message(self._from_page)

    def _from_page(self, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode(errors="replace")
        if self.holding and '"result"' in text:
            self.held.append(message)
        else:
            self.server.send(message)

    def release(self) -> None:
        self.holding = False
        for message in self.held:
            self.server.send(message)


@pytest.mark.timeout(300)
def test_withdrawn_results_are_not_refusals_and_counts_survive_a_reload(
    tabs: Tabs, server: Server, tmp_path: Path
) -> None:
    """A copy decided before the tab's result arrived is counted apart, and kept on reload."""
    page = tabs.new()
    results = HeldResults(page)
    tabs.goto(page)
    miners = MinerProcesses(server, 4, tmp_path / "keys")
    try:
        with server.client() as client:
            wait_until(lambda: len(connected_miners(client)) == 5, 20, "four CLI miners and a tab")
            body = {"tweets": TWEETS, "replicas": 5, "quorum": 3}
            submitted = []
            deadline = time.monotonic() + timeout(60)
            # page.evaluate lets Playwright deliver the tab's messages to the route.
            while not (page.evaluate("() => 0") == 0 and results.held):
                assert time.monotonic() < deadline, "the tab never got a copy"
                submitted.append(client.post("/api/v1/tasks", json=body).json()["taskId"])
                wait_task(client, submitted[-1])
            # Every task is decided by the CLI miners while the tab's result is held.
            for task_id in submitted:
                wait_task(client, task_id)
            results.release()
            page.wait_for_function("() => window.qortexMiner.withdrawn > 0", timeout=ms(20))
    finally:
        miners.stop()
    page.wait_for_function("() => window.qortexMiner.working.length === 0", timeout=ms(10))
    before = miner_status(page)
    assert before["refused"] == 0 and before["lastRefusal"] == ""
    assert page.get_by_test_id("refused").inner_text() == "0"
    assert page.get_by_test_id("withdrawn").inner_text() == str(before["withdrawn"])
    page.reload()
    wait_connected(page)
    after = miner_status(page)
    for counter in ("done", "accepted", "withdrawn", "refused"):
        assert after[counter] == before[counter], counter
    assert page.get_by_test_id("accepted").inner_text() == str(before["accepted"])
