"""What every fault class sends: the campaign's settings, frames built by hand, generated inputs.

The coordinator under attack runs with replicas 3, 1.5 s leases, 0.5 s heartbeats
and a 2 s handshake deadline, so every deadline comes quickly; all of them
stretch with ``QORTEX_TEST_TIMEOUT_SCALE``, the suite's one knob for a slow
machine.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import msgspec

from qortex.kinds.sentiment import SentimentKind
from qortex.protocol import messages as m
from qortex.signing import Signer, result_message
from tests.helpers import SCALE

SOFTWARE = "qortex-fault/1"
REPLICAS = 3
LEASE = 1.5 * SCALE
HEARTBEAT = 0.5 * SCALE
HANDSHAKE = 2.0 * SCALE
MAX_MESSAGE = 1024 * 1024
MAX_REQUEST = 4 * 1024 * 1024
SILENCE = 3 * HEARTBEAT
SEND_QUEUE = 4096  # unread frames the coordinator keeps for a miner (§10)
UNREAD_RCVBUF = 16 * 1024
UNREAD_ARRAY = 700  # results per message for the unread flood
#: A task that does not exist, for microtask ids of the right shape (``<uuid>:<index>``).
NO_TASK = "00000000-0000-4000-8000-000000000000"
MINER_RATE = 2000  # frames a second a miner may send (§11 4010), set explicitly below
MINER_BURST = 4000
KIND = SentimentKind()


def tweets(rng: random.Random, count: int) -> list[str]:
    """Varied tweets: positive, negative, negated, neutral, emoji and non-ASCII ones."""
    subjects = ["this phone", "the update", "my team", "the weather", "this café", "lunch 🍕"]
    verdicts = [
        "is great",
        "is awful",
        "is not bad",
        "is fine I guess",
        "made me happy",
        "sucks",
        "isn't helpful",
        "was never boring",
        "is on Thursday",
    ]
    extras = [
        "",
        " today",
        " honestly",
        "!!",
        " lol",
        " #fail",
        " 😍",
        " \u2019don\u2019t like it\u2019",
    ]
    return [
        f"{rng.choice(subjects)} {rng.choice(verdicts)}{rng.choice(extras)} {rng.randrange(10**6)}"
        for _ in range(count)
    ]


def unread_bound(frame_bytes: int) -> int:
    """Frames a non-reading miner may be sent before 4008: the queue, plus what buffers hold.

    Generous on purpose: the server's socket send buffer at its largest, the
    client's (capped) receive buffer and both sides' transport buffers, all
    counted as full of frames of ``frame_bytes``.
    """
    try:
        wmem = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        wmem = 4 * 2**20
    buffered = wmem + 2 * UNREAD_RCVBUF + 4 * 64 * 1024
    return SEND_QUEUE + buffered // frame_bytes


def live(assign: m.Assign, margin: float = 0.3) -> bool:
    """Whether the lease is surely still live (its deadline more than ``margin`` s away)."""
    return time.time() < assign.deadline_ms / 1000 - margin


def honest_output(assign: m.Assign) -> bytes:
    return msgspec.json.encode(KIND.compute(msgspec.json.decode(assign.input)))


#: assignment id -> the ``inputSha256`` its assign frame carried. Results are
#: signed over it (protocol 2); a made-up assignment has none and signs "".
INPUT_DIGESTS: dict[str, str] = {}


def signed(signer: Signer, assignment_id: str, microtask_id: str, output: bytes) -> str:
    """The protocol 2 signature of a result, over the digest of the input assigned."""
    digest = INPUT_DIGESTS.get(assignment_id, "")
    return signer.sign(result_message(assignment_id, microtask_id, digest, output))


def next_microtask(microtask_id: str) -> str:
    """The id of the microtask after this one in the same task."""
    task, index = microtask_id.rsplit(":", 1)
    return f"{task}:{int(index) + 1}"


def result_frame(
    signer: Signer,
    assignment_id: str,
    microtask_id: str,
    output: bytes,
    signature: str | None = None,
    **extra: Any,
) -> str:
    if signature is None:
        signature = signed(signer, assignment_id, microtask_id, output)
    body = {
        "type": "result",
        "assignmentId": assignment_id,
        "microtaskId": microtask_id,
        "output": output.decode(),
        "signature": signature,
        **extra,
    }
    return json.dumps(body)


def hello_body(signer: Signer, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "hello",
        "publicKey": signer.public_hex,
        "protocol": 2,
        "software": SOFTWARE,
        "slots": 1,
        "kinds": ["sentiment"],
        "name": "fault",
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not DROP}


DROP = object()
