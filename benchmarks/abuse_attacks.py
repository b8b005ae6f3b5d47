"""The attacks of the abuse campaign: what a stranger without the API key can send.

Each attack is an ``async`` function of an :class:`Target` and a size (the
campaign's ``--short`` shrinks it) that returns a :class:`Traffic`: how many
requests, frames or connections went out, and what came back. Strangers
connect from loopback addresses other than 127.0.0.1 (``stranger(n)``), so the
coordinator sees them as distinct outside addresses, as it would on a public
interface; requests bound in count and time, all to this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from qortex.protocol.client import ClientSession, Reply
from qortex.signing import Signer, result_message


@dataclass
class Target:
    url: str
    host: str
    port: int
    api_key: str
    first: int = 0  # this attack's strangers are stranger(first), stranger(first + 1), ...

    def stranger(self, n: int) -> str:
        return stranger(self.first + n)


@dataclass
class Traffic:
    sent: int = 0  # requests, frames or connections, whichever the attack sends
    answers: Counter[str] = field(default_factory=Counter)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, answer: object, count: int = 1) -> None:
        self.sent += count
        self.answers[str(answer)] += count


def stranger(n: int) -> str:
    """The n-th outside address: 127.0.0.2, 127.0.0.3, ... (never 127.0.0.1, a trusted proxy)."""
    return f"127.0.{(n // 250) % 250}.{2 + n % 250}"


def client_from(target: Target, n: int, **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=target.stranger(n))
    return httpx.AsyncClient(base_url=target.url, transport=transport, timeout=30, **kwargs)


def _ws_url(target: Target) -> str:
    return target.url.replace("http", "ws", 1) + "/ws/miner"


async def _handshake(target: Target, n: int, signer: Signer, slots: int = 1) -> Any:
    """A stranger's authenticated miner connection, or ``None`` if it was refused."""
    ws = await connect(_ws_url(target), local_addr=(target.stranger(n), 0), open_timeout=10)
    session = ClientSession(signer, slots, ["sentiment"], "abuse")
    await ws.send(session.hello_frame().decode())
    with contextlib.suppress(ConnectionClosed):
        for event in session.receive_all(await ws.recv()):
            if isinstance(event, Reply):
                await ws.send(event.frame.decode())
        session.receive_all(await ws.recv())  # welcome
        return ws
    await ws.close()
    return None


# -- 1. filling the disk --------------------------------------------------------


async def fill_disk(target: Target, size: int) -> Traffic:
    traffic = Traffic()
    bloated_kinds = ["k" * 60] * (size * 20)  # over the 16-entry bound: refused, 400
    largest = {"name": "n" * 100, "software": "s" * 100, "kinds": ["x" * 64] * 16}
    for n in range(size):
        async with client_from(target, n % 10) as client:
            body = {"publicKey": Signer().public_hex, "kinds": bloated_kinds}
            traffic.add((await client.post("/api/v1/miners/register", json=body)).status_code)
            body = {"publicKey": Signer().public_hex, **largest}
            traffic.add((await client.post("/api/v1/miners/register", json=body)).status_code)
    # A self-registered key signs results whose assignmentId is 1 MB: over HTTP ...
    signer = Signer()
    async with client_from(target, 11) as client:
        await client.post("/api/v1/miners/register", json={"publicKey": signer.public_hex})
        for _ in range(max(1, size // 4)):
            aid, mid = "a" * 1_000_000, "3f0c0d4e-0000-4000-8000-000000000000:0"
            body = {
                "assignmentId": aid,
                "microtaskId": mid,
                "output": '"positive"',
                "signature": signer.sign(result_message(aid, mid, "0" * 64, b'"positive"')),
            }
            url = f"/internal/miner/{signer.miner_id}/result"
            traffic.add((await client.post(url, json=body)).status_code)
    # ... and over the socket, one connection per frame.
    for n in range(max(1, size // 4)):
        ws = await _handshake(target, 20 + n % 5, Signer())
        if ws is None:
            traffic.add("refused handshake")
            continue
        frame = {"type": "result", "assignmentId": "a" * 1_000_000, "microtaskId": "x:0"}
        frame.update(output='"x"', signature="00" * 64)
        await ws.send(json.dumps(frame))
        try:
            await ws.recv()
            traffic.add("answered")
        except ConnectionClosed as closed:
            traffic.add(f"close {closed.rcvd.code if closed.rcvd else 1006}")
    return traffic


# -- 3. pipelined requests, then a close ----------------------------------------


async def pipelined(target: Target, n: int, request: bytes, count: int) -> tuple[int, bool]:
    """Write ``count`` requests without reading, read a little, close: (bytes read, cut)."""
    reader, writer = await asyncio.open_connection(
        target.host, target.port, local_addr=(target.stranger(n), 0)
    )
    cut = False
    try:
        writer.write(request * count)
        await asyncio.wait_for(writer.drain(), 10)
    except (OSError, TimeoutError):
        cut = True
    got = 0
    with contextlib.suppress(OSError, TimeoutError):
        got = len(await asyncio.wait_for(reader.read(65536), 2))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return got, cut or got == 0


async def pipelining(target: Target, size: int, seconds: float) -> Traffic:
    traffic = Traffic()
    health = f"GET /health HTTP/1.1\r\nhost: {target.host}\r\n\r\n".encode()
    body = json.dumps(
        {
            "assignmentId": "0" * 24,
            "microtaskId": "3f0c0d4e-0000-4000-8000-000000000000:0",
            "output": '"x"',
            "signature": "00" * 64,
        }
    ).encode()
    result = (
        f"POST /internal/miner/{'0' * 32}/result HTTP/1.1\r\nhost: {target.host}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    for _ in range(20):  # rounds until ``seconds`` have passed, at most 20
        for request, count in ((health, 100 * size), (result, 60 * size)):
            answers = await asyncio.gather(
                *(pipelined(target, n % 30, request, count) for n in range(30))
            )
            for _, cut in answers:
                traffic.add("cut" if cut else "read", count)
        if loop.time() >= end:
            break
    return traffic


# -- 4. slow readers of the event stream ------------------------------------------


async def _stalled_stream(target: Target, last: str | None, hold: float) -> int:
    """Open the event stream and read (almost) nothing for ``hold`` seconds; the status."""
    query = f"?lastEventId={last}" if last is not None else ""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    writer.write(
        f"GET /api/v1/events{query} HTTP/1.1\r\nhost: {target.host}\r\n"
        f"x-api-key: {target.api_key}\r\n\r\n".encode()
    )
    await writer.drain()
    status = 0
    with contextlib.suppress(OSError, TimeoutError, ValueError, IndexError):
        line = await asyncio.wait_for(reader.readline(), 10)
        status = int(line.split()[1])
    await asyncio.sleep(hold)
    writer.close()
    return status


async def slow_readers(target: Target, size: int, hold: float) -> Traffic:
    traffic = Traffic()
    streams = [_stalled_stream(target, None, hold) for _ in range(3)]
    streams += [_stalled_stream(target, "0", hold) for _ in range(4)]
    streams += [_stalled_stream(target, None, hold) for _ in range(150)]  # over max_subscribers
    for status in await asyncio.gather(*streams):
        traffic.add(status)
    return traffic


# -- 5. hoarders ------------------------------------------------------------------


async def hoarders(target: Target, size: int, hold: float) -> Traffic:
    """Identities that declare 64 slots, take work and never answer; some leave early."""
    traffic = Traffic()

    async def hoard(n: int) -> None:
        ws = await _handshake(target, n % 5, Signer(), slots=64)
        if ws is None:
            traffic.add("refused handshake")
            return
        traffic.add("connected")
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(hold * (0.5 if n % 2 else 1.0)):
                while True:
                    await ws.recv()
                    traffic.notes["frames"] = traffic.notes.get("frames", 0) + 1
        await ws.close()  # half of them disconnect before their leases end

    await asyncio.gather(*(hoard(n) for n in range(size)))
    return traffic


# -- 6. slow connections ------------------------------------------------------------


async def _slow_head(target: Target, n: int, hold: float) -> bool:
    """Send a request head one byte every second; whether it was still open after ``hold``."""
    head = f"GET /health HTTP/1.1\r\nhost: {target.host}\r\nx-slow: {'z' * 200}\r\n"
    try:
        reader, writer = await asyncio.open_connection(
            target.host, target.port, local_addr=(target.stranger(n), 0)
        )
    except OSError:
        return False
    loop = asyncio.get_running_loop()
    end = loop.time() + hold
    try:
        for byte in head.encode():
            if loop.time() >= end:
                return True
            writer.write(bytes([byte]))
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                    return False
        return True
    except OSError:
        return False
    finally:
        writer.close()


async def _silent_socket(target: Target, n: int, hold: float) -> bool:
    """Open the miner socket and never say hello; whether it was still open after ``hold``."""
    try:
        ws = await connect(_ws_url(target), local_addr=(target.stranger(n), 0), open_timeout=10)
    except (OSError, InvalidHandshake, TimeoutError):
        return False
    try:
        await asyncio.wait_for(ws.recv(), hold)
    except TimeoutError:
        return True
    except ConnectionClosed:
        return False
    finally:
        await ws.close()
    return True


async def slow_connections(target: Target, size: int, hold: float) -> Traffic:
    traffic = Traffic()
    heads = [_slow_head(target, n % 5, hold) for n in range(size)]
    silent = [_silent_socket(target, 5 + n % 2, hold) for n in range(size // 4)]
    opened = await asyncio.gather(*heads)
    traffic.add("slow head open after hold", sum(opened))
    traffic.add("slow head closed", len(opened) - sum(opened))
    quiet = await asyncio.gather(*silent)
    traffic.add("silent socket open after hold", sum(quiet))
    traffic.add("silent socket closed", len(quiet) - sum(quiet))
    return traffic


# -- 7. the API key -------------------------------------------------------------------


async def key_guessing(target: Target, size: int) -> Traffic:
    traffic = Traffic()
    rng = random.Random(7)
    async with client_from(target, 3) as client:
        for _ in range(size):
            guess = "".join(rng.choice("abcdefghijklmnop") for _ in range(24))
            answer = await client.get("/api/v1/tasks", headers={"x-api-key": guess})
            traffic.add(answer.status_code)
    async with httpx.AsyncClient(base_url=target.url, timeout=30) as own:
        # The key in the query, as EventSource sends it: it must not reach the log.
        await own.get("/api/v1/tasks", params={"apiKey": target.api_key})
    return traffic


# -- 8. the smaller ones ------------------------------------------------------------------


async def _close_mid_request(target: Target, n: int) -> None:
    _, writer = await asyncio.open_connection(
        target.host, target.port, local_addr=(target.stranger(n), 0)
    )
    writer.write(
        f"POST /api/v1/miners/register HTTP/1.1\r\nhost: {target.host}\r\n"
        'content-type: application/json\r\ncontent-length: 5000\r\n\r\n{"publicKey": '.encode()
    )
    await writer.drain()
    writer.close()


async def smaller(target: Target, size: int, task_id: str, seconds: float) -> Traffic:
    traffic = Traffic()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    for _ in range(20):  # rounds until ``seconds`` have passed, at most 20
        for n in range(size):
            await _close_mid_request(target, n % 5)
        traffic.add("closed mid-request", size)
        if loop.time() >= end:
            break
    async with httpx.AsyncClient(
        base_url=target.url, timeout=30, headers={"x-api-key": target.api_key}
    ) as own:
        page = await own.get("/api/v1/miners", params={"limit": 1000})
        traffic.notes["minersPageBytes"] = len(page.content)
        checks = {
            "otherKindsFile": await own.get("/kinds/sentiment/matmul.js"),
            "ownKindsFile": await own.get("/kinds/sentiment/sentiment_lexicon.txt"),
            "emptyLastEventId": await own.get("/api/v1/events", headers={"last-event-id": ""}),
            "outputsNull": await own.get(f"/api/v1/tasks/{task_id}?outputs=null"),
        }
        for name, answer in checks.items():
            traffic.notes[name] = answer.status_code
            traffic.add(answer.status_code)
        options = await own.options("/api/v1/tasks")
        traffic.notes["optionsAllow"] = options.headers.get("allow", "")
        schema = (await own.get("/openapi.json")).json()["components"]["schemas"]
        traffic.notes["publicKeyPattern"] = schema["Registration"]["properties"]["publicKey"].get(
            "pattern", ""
        )
    return traffic


SCENARIOS = {
    "disk": "1. filling the disk without a key",
    "full_disk": "2. a full disk",
    "pipelining": "3. pipelined requests, then a close",
    "slow_readers": "4. slow event-stream readers",
    "hoarders": "5. hoarding miners",
    "slow_connections": "6. slow and silent connections",
    "api_key": "7. guessing and leaking the API key",
    "smaller": "8. the smaller ones",
}
