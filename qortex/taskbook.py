"""A task's life outside placement: its rule, its submission, and its end.

Submitting validates and splits the input, mixes known-answer items in at
random positions, and returns once the task is durable. A task ends once its
last decision is durable: its output is assembled from the decisions (known
answers left out) and recorded, or it fails with the reason.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from qortex.coordinator_state import CoordinatorCalls, CoordinatorState
from qortex.core import lifecycle
from qortex.core.quorum import Policy
from qortex.core.work import NO_GOLD, Task
from qortex.errors import InvalidInput, TooManyRequests
from qortex.gcpause import collector_paused
from qortex.scheduler import Scheduler
from qortex.store import facts as f

_json = msgspec.json.Encoder()
_decode = msgspec.json.decode

MAX_REPLICAS_LIMIT = 64


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A client's Idempotency-Key, remembered with the task it created."""

    owner: str  # the API key's name: keys are remembered per API key
    key: str
    body_sha256: str  # the same key with another body is refused


@dataclass(frozen=True, slots=True)
class Callback:
    """Where the task's end is posted, and the secret its posts are signed with."""

    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class Submitted:
    """What a submit recorded, enough to answer it without reading the task back."""

    task_id: str
    status: str  # running, or scheduled
    microtasks: int


class TaskBook:
    def __init__(self, state: CoordinatorState, calls: CoordinatorCalls) -> None:
        self._state = state
        self._calls = calls
        #: Starts each scheduled task at its time (:meth:`start_scheduled`).
        self.scheduler = Scheduler(self.start_scheduled, state.clock)

    def policy(self, **given: Any) -> Policy:
        """A task's rule: the settings, with the client's floors and target where it gave them."""
        s = self._state.settings
        replicas = given.get("replicas")
        if replicas is None:
            quorum, max_replicas = s.quorum, s.max_replicas
            replicas = s.replicas
        else:
            quorum = replicas // 2 + 1
            max_replicas = max(s.max_replicas, 2 * replicas - 1)
        quorum = given.get("quorum") or quorum
        max_replicas = given.get("max_replicas") or max_replicas
        if max_replicas > MAX_REPLICAS_LIMIT:
            raise InvalidInput(f"at most {MAX_REPLICAS_LIMIT} replicas", field="max_replicas")
        lease = min(given.get("lease_seconds") or s.lease_seconds, s.lease_limit_seconds)
        target = given.get("target_error") or s.target_error
        return Policy(replicas, quorum, max(max_replicas, replicas), lease, target)

    async def submit(
        self,
        kind_name: str,
        task_input: Any,
        gold: list[Any] | None = None,
        not_before: float | None = None,
        idempotency: IdempotencyRecord | None = None,
        callback: Callback | None = None,
        **params: Any,
    ) -> Submitted:
        """Validate, split and record a task; returns what was recorded once it is durable.

        Known-answer items (``gold``: expected outputs for inputs the client
        chose) are shuffled among the real microtasks, so nothing tells them
        apart, and left out of the task's output. ``idempotency`` and
        ``callback`` commit with the task, so a crash keeps all or none. A task
        with ``not_before`` is recorded as scheduled and reaches the dispatch
        table only when this book's :attr:`scheduler` starts it.
        """
        state = self._state
        kind = state.kinds.get(kind_name)
        normalised = kind.validate(task_input)
        policy = self.policy(**params)
        parts = [msgspec.Raw(_json.encode(part)) for part in kind.split(normalised)]
        if not parts:
            raise InvalidInput("the task splits into no microtasks: nothing to do", field="input")
        known = [(msgspec.Raw(_json.encode(g.input)), g.output) for g in gold or []]
        total = len(parts) + len(known)
        if not_before is None and state.table.open + total > state.settings.max_pending:
            raise TooManyRequests(
                f"{state.table.open} microtasks are waiting already (limit"
                f" {state.settings.max_pending}); try again when miners have caught up",
                retry_after=5,
            )
        gold_at = dict(zip(sorted(state.rng.sample(range(total), len(known))), known, strict=True))
        real = iter(parts)
        inputs = [gold_at[i][0] if i in gold_at else next(real) for i in range(total)]
        task_id = str(uuid.uuid4())
        now = state.clock()
        unit: list[f.Fact] = [
            f.task(
                task_id,
                kind.name,
                _json.encode(normalised).decode(),
                policy.replicas,
                policy.quorum,
                policy.max_replicas,
                policy.lease_seconds,
                total,
                now,
                policy.target_error,
                scheduled=not_before is not None,
            )
        ]
        unit += [
            f.microtask(
                task_id,
                i,
                bytes(raw).decode(),
                _json.encode(gold_at[i][1]).decode() if i in gold_at else None,
            )
            for i, raw in enumerate(inputs)
        ]
        if idempotency is not None:
            i = idempotency
            unit.append(f.idempotency(i.owner, i.key, i.body_sha256, task_id, now))
        if callback is not None:
            unit.append(f.callback(task_id, callback.url, callback.secret))
        events = [
            state.events.new(
                "task.created",
                now,
                task_id,
                kind=kind.name,
                microtasks=total,
                replicas=policy.replicas,
                quorum=policy.quorum,
                targetError=policy.target_error,
            )
        ]
        deadline_seconds = params.get("deadline_seconds")
        if deadline_seconds is not None:  # the operator's console (qortex.control)
            unit.append(f.task_deadline(task_id, now + deadline_seconds))
            state.task_deadlines.add(now + deadline_seconds, task_id)
        if not_before is not None:
            unit.append(f.schedule(task_id, not_before))
            events.append(state.events.new("task.scheduled", now, task_id, notBefore=not_before))
            await self._calls.write(unit, events)
            self.scheduler.add(task_id, not_before)
            return Submitted(task_id, lifecycle.SCHEDULED, total)
        committed = self._calls.write(unit, events)
        with collector_paused():
            expected = {i: g[1] for i, g in gold_at.items()}
            state.table.add_task(task_id, kind.name, policy, inputs, expected)
        self._calls.schedule_fill()
        await committed
        return Submitted(task_id, lifecycle.RUNNING, total)

    async def start_scheduled(self, task_id: str) -> None:
        """Offer a scheduled task's microtasks from now on, once its start is durable."""
        state = self._state
        row = await state.store.reader.scheduled(task_id)
        if row is None or row["status"] != lifecycle.SCHEDULED:
            return  # started before a restart, or gone
        parts = await state.store.reader.inputs(task_id)
        inputs = [msgspec.Raw(part["input"].encode()) for part in parts]
        gold = {p["idx"]: _decode(p["gold"]) for p in parts if p["gold"] is not None}
        now = state.clock()
        event = state.events.new(
            "task.started", now, task_id, kind=row["kind"], notBefore=row["not_before"]
        )
        unit = [f.task_started(task_id), f.schedule_started(task_id, now)]
        await self._calls.write(unit, [event])
        policy = Policy(
            row["replicas"],
            row["quorum"],
            row["max_replicas"],
            row["lease_seconds"],
            row["target_error"],
        )
        state.table.add_task(task_id, row["kind"], policy, inputs, gold)
        self._calls.schedule_fill()

    def finish_later(self, task: Task, after: asyncio.Future[None]) -> None:
        """Record a task's end once its last decision is durable."""
        self._calls.spawn(self._finish(task, after))

    async def _finish(self, task: Task, after: asyncio.Future[None]) -> None:
        """Assemble and record a task's output once its last decision is durable."""
        state = self._state
        await after
        if task.state == lifecycle.RUNNING or state.table.tasks.get(task.id) is not task:
            return  # reopened meanwhile: it finishes again later
        kind = state.kinds.get(task.kind)
        now = state.clock()
        status, output_text, reason = task.state, None, ""
        if status == lifecycle.COMPLETED:
            row = await state.store.reader.task(task.id)
            assert row is not None
            decisions = [mt.decision for mt in task.microtasks if mt.gold is NO_GOLD]
            try:
                output = kind.assemble(_decode(row["input"]), decisions)
                output_text = _json.encode(output).decode()
            except Exception as exc:  # a plugin's bug fails the task, with the reason
                status, reason = lifecycle.FAILED, f"assembling the output failed: {exc!r}"[:300]
        else:
            failed = sum(mt.state == lifecycle.INCONCLUSIVE for mt in task.microtasks)
            reason = f"{failed} microtask(s) inconclusive"
        if status == lifecycle.COMPLETED:
            event = state.events.new(
                "task.completed",
                now,
                task.id,
                kind=task.kind,
                status=status,
                microtasks=len(task.microtasks),
            )
        else:
            event = state.events.new(
                "task.failed",
                now,
                task.id,
                kind=task.kind,
                status=status,
                inconclusive=sum(mt.state == lifecycle.INCONCLUSIVE for mt in task.microtasks),
                reason=reason,
            )
        await self._calls.write([f.finished(task.id, status, output_text, now)], [event])
        if task.state != lifecycle.RUNNING:
            state.table.drop_task(task.id)
