"""The answers of the miner routes: a miner, a page of miners, its reputation's history,
its registration, a result taken over HTTP, and the volunteers' leaderboard."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from qortex.core.ledger import STATUSES

#: Documented with today's statuses, decoded as any string (see ``TaskStatus``).
MinerStatusName = Annotated[str, Meta(extra_json_schema={"enum": list(STATUSES)})]


class Miner(msgspec.Struct, rename="camel"):
    """A miner as the API shows it: its stored row, its connection if it has one, and its
    standing with the trust engine (status, reputation and the checks behind them).

    ``qortex.web.control`` builds it by position: a new field goes where it is built too.
    """

    miner_id: str
    public_key: str
    name: str
    software: str
    kinds: list[str]
    connected: bool
    address: str
    slots: int | None
    busy: int
    accepted: int
    refused: int
    credit: float
    first_seen: float
    last_seen: float
    status: MinerStatusName
    reputation: Annotated[int, Meta(ge=0, le=1000)]
    credibility: float | None
    checks_passed: int
    checks_failed: int
    earned_slots: int


class Work(msgspec.Struct, rename="camel"):
    """A copy a connected miner holds right now."""

    assignment_id: str
    microtask_id: str
    task_id: str
    kind: str


class RecentResult(msgspec.Struct, rename="camel"):
    """One of a miner's latest accepted results."""

    assignment_id: str
    microtask_id: str
    received_at: float


class MinerDetail(Miner):
    """One miner: its connection, address, slots, current work, credit and recent results."""

    note: str
    connected_since: float | None
    working: list[Work]
    recent_results: list[RecentResult]


class MinerPage(msgspec.Struct):
    """One page of miners."""

    miners: list[Miner]
    total: Annotated[int, Meta(description="miners matching the filters, on every page")]
    connected: int


class MinerStatus(msgspec.Struct, rename="camel"):
    """A miner's new status, as the operator set it."""

    miner_id: str
    status: MinerStatusName
    note: str


class ReputationStep(msgspec.Struct, rename="camel"):
    """One move of a miner's reputation, and why."""

    at: float
    reputation: int
    checks_passed: int
    reason: str


class ReputationHistory(msgspec.Struct, rename="camel"):
    """How a miner's reputation moved, newest first."""

    miner_id: str
    reputation: int
    history: list[ReputationStep]
    next: Annotated[float | None, Meta(description="pass as `before` for the next page")]


class Leader(msgspec.Struct):
    """A volunteer on the leaderboard, under the name it chose."""

    rank: int
    name: str
    credit: float
    accepted: int


class Place(msgspec.Struct):
    """The asking miner's own rank and credit."""

    rank: int
    credit: float


class Leaderboard(msgspec.Struct):
    """One page of volunteers by credit."""

    leaders: list[Leader]
    you: Place | None


class Registered(msgspec.Struct, rename="camel"):
    """A miner's id, made from its public key."""

    miner_id: str
    public_key: str


class ResultAccepted(msgspec.Struct, rename="camel"):
    """A result over HTTP, accepted and durable."""

    status: Literal["accepted"]
    assignment_id: str
