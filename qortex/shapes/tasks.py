"""The answers of the task routes: a submit, a task, a page of tasks, a proof, a cancel.

A decision, a vote's output and a task's output are whatever the task's kind
makes them, so they are typed ``Any``; everything around them is fixed here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from qortex.core import lifecycle

NEXT_PAGE = "pass as `before` for the next page"

#: Documented with the states it takes today, decoded as any string, so that a
#: client keeps reading answers from a coordinator that learned a new state.
TaskStatus = Annotated[str, Meta(extra_json_schema={"enum": list(lifecycle.TASK_STATES)})]
MicrotaskStatus = Annotated[str, Meta(extra_json_schema={"enum": list(lifecycle.MICROTASK_STATES)})]


class TaskCreated(msgspec.Struct, rename="camel", omit_defaults=True):
    """The answer to a submit, the first time (201) and to a retry with its Idempotency-Key
    (200)."""

    task_id: str
    status: TaskStatus
    kind: str
    microtasks: int | None
    not_before: (
        Annotated[float, Meta(description="a scheduled task's start, in seconds since 1970")] | None
    ) = None
    callback_secret: (
        Annotated[str, Meta(description="signs the callbackUrl's deliveries")] | None
    ) = None


class TaskSummary(msgspec.Struct, rename="camel"):
    """What every view of a task starts with."""

    task_id: str
    kind: str
    status: TaskStatus
    microtasks: int
    created_at: float
    finished_at: float | None


class TaskListed(TaskSummary):
    """A task in a page of tasks, with how many of its microtasks are decided."""

    decided: int


class TaskPage(msgspec.Struct):
    """One page of tasks, newest first."""

    tasks: list[TaskListed]
    next: Annotated[float | None, Meta(description=NEXT_PAGE)]


class Vote(msgspec.Struct, rename="camel", omit_defaults=True):
    """One miner's result for a microtask, and what it weighed."""

    miner_id: str
    agrees: bool | None
    credibility: Annotated[float | None, Meta(description="1 - the error rate it was counted at")]
    checked: Annotated[bool | None, Meta(description="passed or failed a check; null: unchecked")]
    revoked: Annotated[bool, Meta(description="its miner was banned: the vote no longer counts")]
    output: Annotated[Any, Meta(description="the miner's output, with `?outputs=true`")] = None


class Decision(msgspec.Struct, rename="camel", omit_defaults=True):
    """How one microtask was decided, who voted and whether each vote agrees."""

    microtask_id: str
    index: int
    status: MicrotaskStatus
    decision: Any
    error: Annotated[float | None, Meta(description="estimated probability the decision is wrong")]
    votes: list[Vote]
    reason: str | None = None


class GoldDecision(Decision, kw_only=True):
    """A known-answer item: the decision, the answer the client gave, and whether the
    checked votes matched it (null: none was checked)."""

    expected: Any
    passed: bool | None


class GoldReport(msgspec.Struct):
    """The task's known-answer items, apart from its own microtasks."""

    items: int
    passed: int
    failed: int
    details: list[GoldDecision]


class Task(TaskSummary):
    """A task, its output, and each microtask's status, decision and votes."""

    replicas: int
    quorum: int
    max_replicas: int
    lease_seconds: float
    target_error: float
    revision: int
    deadline: float | None
    reason: str | None
    decided: int
    output: Any
    microtask_details: list[Decision]
    gold: GoldReport

    @property
    def finished(self) -> bool:
        return self.status in (lifecycle.COMPLETED, lifecycle.FAILED)


class TaskCancelled(msgspec.Struct, rename="camel"):
    """A cancelled task: its copies are withdrawn from miners."""

    task_id: str
    status: Literal["cancelled"]


class SignedVote(msgspec.Struct, rename="camel"):
    """A miner's signed result, with the key that checks it."""

    assignment_id: str
    miner_id: str
    public_key: str
    output: str
    signature: str
    version: int
    network: str
    error: float | None
    checked: bool | None
    revoked: bool


class ProvenMicrotask(msgspec.Struct, rename="camel"):
    """A microtask as miners were sent it, its decision and every signed result."""

    microtask_id: str
    index: int
    input: Annotated[str, Meta(description="the exact JSON text miners were sent")]
    status: str
    decision: Annotated[str | None, Meta(description="the decision as JSON text")]
    error: float | None
    reason: str | None
    gold: Annotated[str | None, Meta(description="a known answer, as JSON text")]
    votes: list[SignedVote]


class Proof(msgspec.Struct):
    """Everything needed to re-derive a task's decisions offline (``qortex verify``)."""

    format: Literal["qortex-proof-v2"]
    task: dict[str, Any]
    rule: dict[str, Any]
    microtasks: list[ProvenMicrotask]
