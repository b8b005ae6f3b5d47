"""Client routes for tasks: submit, inspect, list, and the offline-checkable proof."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType
from starlette.requests import Request
from starlette.routing import Route

from qortex.core import lifecycle
from qortex.core.credibility import CHECKED_ERROR
from qortex.errors import InvalidInput, NotFound
from qortex.proof import PROOF_FORMAT
from qortex.shapes import (
    Decision,
    GoldDecision,
    GoldReport,
    Proof,
    ProvenMicrotask,
    SignedVote,
    Task,
    TaskCreated,
    TaskListed,
    TaskPage,
    TaskSummary,
    Vote,
)
from qortex.taskbook import Callback, IdempotencyRecord
from qortex.web.auth import require_scope
from qortex.web.http import JSON, decode_json, query_bool, query_int, read_body, require_writable
from qortex.web.submit import created, idempotency_key, new_secret, start_time
from qortex.webhooks.destinations import MAX_URL, check_url

Replicas = Annotated[int, Meta(ge=1, le=64)]
MAX_GOLD = 1000
TASK_ID_PREFIX = re.compile(r"[0-9a-f-]{1,36}")


class GoldItem(msgspec.Struct, forbid_unknown_fields=True):
    """A known-answer item: a microtask input and the output an honest miner returns."""

    input: Any
    output: Any


class TaskRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """A task: ``{"kind", "input", ...}``, or the seed's ``{"tweets": [...]}``."""

    kind: str | UnsetType = UNSET
    input: Any = UNSET
    tweets: Any = UNSET
    replicas: Replicas | None = None
    quorum: Replicas | None = None
    max_replicas: Replicas | None = None
    lease_seconds: Annotated[float, Meta(ge=0.1, le=86_400)] | None = None
    target_error: Annotated[float, Meta(gt=0, lt=1)] | None = None
    gold: Annotated[list[GoldItem], Meta(max_length=MAX_GOLD)] | None = None
    deadline_seconds: Annotated[float, Meta(gt=0, le=30 * 86_400)] | None = None
    not_before: Annotated[str, Meta(max_length=64)] | None = None
    delay_seconds: float | None = None
    callback_url: Annotated[str, Meta(max_length=MAX_URL)] | None = None

    def resolve(self) -> tuple[str, Any]:
        if self.tweets is not UNSET:
            if self.input is not UNSET or self.kind not in (UNSET, "sentiment"):
                raise InvalidInput("send either 'tweets' or 'kind' with 'input', not both")
            return "sentiment", {"tweets": self.tweets}
        if self.kind is UNSET:
            raise InvalidInput("missing 'kind' (or the seed's 'tweets')", field="kind")
        if self.input is UNSET:
            raise InvalidInput("missing 'input'", field="input")
        return self.kind, self.input


async def create_task(request: Request) -> JSON:
    """Submit; with an ``Idempotency-Key`` a retry gets the original task back (200)."""
    key = require_scope(request, "submit")
    require_writable(request)
    state = request.app.state
    coord = state.coordinator
    idem = idempotency_key(request.headers.get("idempotency-key"))
    raw = await read_body(request, state.settings.max_request_bytes)
    body = decode_json(raw, TaskRequest)
    kind, task_input = body.resolve()
    now = coord.clock()
    not_before = start_time(
        body.not_before, body.delay_seconds, now, state.settings.max_schedule_days
    )
    if body.callback_url is not None:
        check_url(body.callback_url, state.webhook_networks, "callbackUrl")
    if body.callback_url is not None:
        await state.outbox.callback_added()
    release = None
    if idem is not None:
        task_id = await state.idempotency.recall(key.name, idem, raw)
        if task_id is not None:
            row = await state.store.reader.submitted(task_id)
            return JSON(created(row), headers={"idempotent-replayed": "true"})
        release = state.idempotency.hold(key.name, idem)
    try:
        remembered = None
        if idem is not None:
            remembered = IdempotencyRecord(key.name, idem, hashlib.sha256(raw).hexdigest())
        callback = None
        if body.callback_url is not None:
            callback = Callback(body.callback_url, new_secret())
        submitted = await coord.book.submit(
            kind,
            task_input,
            gold=body.gold,
            not_before=not_before,
            idempotency=remembered,
            callback=callback,
            target_error=body.target_error,
            replicas=body.replicas,
            quorum=body.quorum,
            max_replicas=body.max_replicas,
            lease_seconds=body.lease_seconds,
            deadline_seconds=body.deadline_seconds,
        )
    finally:
        if release is not None:
            release()
    answer = TaskCreated(
        task_id=submitted.task_id,
        status=submitted.status,
        kind=kind,
        microtasks=submitted.microtasks,
        not_before=not_before,
        callback_secret=callback.secret if callback is not None else None,
    )
    location = f"/api/v1/tasks/{submitted.task_id}"
    return JSON(answer, status_code=201, headers={"location": location})


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    """The fields every view of a task starts with (``TaskSummary``'s), from its row."""
    return {
        "task_id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "microtasks": row["microtasks"],
        "created_at": row["created_at"],
        "finished_at": row["finished_at"],
    }


async def _load(request: Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    require_scope(request, "read")
    reader = request.app.state.store.reader
    task_id = request.path_params["task_id"]
    row = await reader.task(task_id)
    if row is None:
        raise NotFound(f"no task {task_id!r}", taskId=task_id)
    return row, await reader.results_of_task(task_id)


def _votes(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_microtask: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_microtask.setdefault(r["microtask_id"], []).append(r)
    return by_microtask


def _checked(value: int | None) -> bool | None:
    return None if value is None else bool(value)


async def get_task(request: Request) -> JSON:
    """A task, and for each microtask how it was decided.

    Each decision says how sure it is (``error``, the estimated probability
    that it is wrong), who voted, what each vote weighed, which were checked
    and whether each agrees; the outputs themselves (large for some kinds)
    come with ``?outputs=true``, and always in the proof bundle. Known-answer
    items are reported apart from the task's own microtasks.
    """
    row, results = await _load(request)
    reader = request.app.state.store.reader
    with_outputs = query_bool(request, "outputs")
    agree = request.app.state.coordinator.kinds.get(row["kind"]).agree
    votes_of = _votes(results)
    microtasks: list[Decision] = []
    gold: list[GoldDecision] = []
    for mt in await reader.microtasks(row["id"]):
        decision = None if mt["decision"] is None else msgspec.json.decode(mt["decision"])
        votes = []
        for r in votes_of.get(mt["id"], []):
            output = msgspec.json.decode(r["output"])
            votes.append(
                Vote(
                    miner_id=r["miner_id"],
                    agrees=None if decision is None else agree(decision, output),
                    credibility=None if r["error"] is None else 1.0 - r["error"],
                    checked=_checked(r["checked"]),
                    revoked=bool(r["revoked"]),
                    output=output if with_outputs else None,
                )
            )
        detail = {
            "microtask_id": mt["id"],
            "index": mt["idx"],
            "status": mt["status"],
            "decision": decision,
            "error": mt["error"],
            "votes": votes,
            "reason": mt["reason"] or None,
        }
        if mt["gold"] is None:
            microtasks.append(Decision(**detail))
        else:
            checked = [v.checked for v in votes if v.checked is not None]
            passed = all(checked) if checked else None
            expected = msgspec.json.decode(mt["gold"])
            gold.append(GoldDecision(**detail, expected=expected, passed=passed))
    return JSON(
        Task(
            **_summary(row),
            replicas=row["replicas"],
            quorum=row["quorum"],
            max_replicas=row["max_replicas"],
            lease_seconds=row["lease_seconds"],
            target_error=row["target_error"],
            revision=row["revision"],
            deadline=row["deadline"],
            reason=row["reason"],
            decided=sum(mt.status == lifecycle.DECIDED for mt in microtasks),
            output=None if row["output"] is None else msgspec.json.decode(row["output"]),
            microtask_details=microtasks,
            gold=GoldReport(
                items=len(gold),
                passed=sum(g.passed is True for g in gold),
                failed=sum(g.passed is False for g in gold),
                details=gold,
            ),
        )
    )


async def get_proof(request: Request) -> JSON:
    """Everything needed to re-derive a task's decisions offline; see docs/protocol.md."""
    row, results = await _load(request)
    votes_of = _votes(results)
    microtasks = await request.app.state.store.reader.microtasks(row["id"])
    return JSON(
        Proof(
            format=PROOF_FORMAT,
            task={
                **msgspec.to_builtins(TaskSummary(**_summary(row))),
                "input": msgspec.json.decode(row["input"]),
                "replicas": row["replicas"],
                "quorum": row["quorum"],
                "maxReplicas": row["max_replicas"],
                "targetError": row["target_error"],
                "revision": row["revision"],
                "output": None if row["output"] is None else msgspec.json.decode(row["output"]),
            },
            rule={"checkedError": CHECKED_ERROR, "network": "IPv4 /24, IPv6 /48"},
            microtasks=[
                ProvenMicrotask(
                    microtask_id=mt["id"],
                    index=mt["idx"],
                    input=mt["input"],
                    status=mt["status"],
                    decision=mt["decision"],
                    error=mt["error"],
                    reason=mt["reason"],
                    gold=mt["gold"],
                    votes=[
                        SignedVote(
                            assignment_id=r["assignment_id"],
                            miner_id=r["miner_id"],
                            public_key=r["public_key"],
                            output=r["output"],
                            signature=r["signature"],
                            version=r["version"],
                            network=r["network"],
                            error=r["error"],
                            checked=_checked(r["checked"]),
                            revoked=bool(r["revoked"]),
                        )
                        for r in votes_of.get(mt["id"], [])
                    ],
                )
                for mt in microtasks
            ],
        )
    )


async def list_tasks(request: Request) -> JSON:
    require_scope(request, "read")
    status = request.query_params.get("status")
    if status is not None and status not in lifecycle.TASK_STATES:
        raise InvalidInput(f"status must be one of {', '.join(lifecycle.TASK_STATES)}")
    limit = query_int(request, "limit", 50, 1, 500)
    before_raw = request.query_params.get("before")
    try:
        before = float(before_raw) if before_raw is not None else None
        if before is not None and not math.isfinite(before):
            raise ValueError
    except ValueError:
        raise InvalidInput("before must be a timestamp from a previous page's 'next'") from None
    kind = request.query_params.get("kind")
    prefix = request.query_params.get("prefix") or None
    if prefix is not None and not TASK_ID_PREFIX.fullmatch(prefix):
        raise InvalidInput("prefix must be the start of a task id (hex digits and '-')")
    rows = await request.app.state.store.reader.tasks(status, kind, limit, before, prefix)
    tasks = [
        TaskListed(
            task_id=row["id"],
            kind=row["kind"],
            status=row["status"],
            microtasks=row["microtasks"],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
            decided=row["decided"],
        )
        for row in rows
    ]
    following = tasks[-1].created_at if len(tasks) == limit else None
    return JSON(TaskPage(tasks=tasks, next=following))


async def tasks(request: Request) -> JSON:
    """One route for both methods, so that a 405 names them both in ``Allow``."""
    return await (create_task if request.method == "POST" else list_tasks)(request)


routes = [
    Route("/api/v1/tasks", tasks, methods=["GET", "POST"]),
    Route("/api/v1/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/api/v1/tasks/{task_id}/proof", get_proof, methods=["GET"]),
]
