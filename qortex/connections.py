"""What the coordinator keeps about each connected miner, and the counters it reports.

The web layer provides the link (a WebSocket, in practice); the coordinator
only queues frames on it or ends it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from qortex.protocol.server import Authenticated


class MinerLink(Protocol):
    """What the coordinator needs of a connection: queue a frame, or end it."""

    #: When the last frame arrived, on the coordinator's clock (set by the endpoint).
    last_seen: float
    #: Where the miner connects from, as seen through trusted proxies.
    address: str

    def send(self, frame: bytes) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


@dataclass(slots=True, eq=False)
class Connection:
    info: Authenticated
    link: MinerLink
    since: float
    address: str = ""  # as seen through trusted proxies
    network: str = ""  # the /24 or /48 it counts as (qortex.core.credibility.network_of)
    accepted: int = 0
    refused: int = 0


@dataclass(slots=True)
class Stats:
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    decided: int = 0
    inconclusive: int = 0
    reassigned: int = 0
    closed: Counter[int] = field(default_factory=Counter)  # miner sockets closed, by code
    throttled: int = 0  # requests answered 429
