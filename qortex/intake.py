"""One pipeline for every result, whichever endpoint it came through.

The socket and the HTTP result route only feed :meth:`Intake.receive`. A
result goes through the same steps whatever its way in: is its copy still
out (refused cheaply, before any signature check), does its signature verify
over the assignment, the microtask, the input's digest and the output, is it
checked (a known-answer item always; a kind's checker on every result of a
miner not yet credible and on a random share of the others), and what does it
change. Everything a plugin computes (the check, ``agree``) is worked out
before anything is mutated: a plugin that raises gives its microtask up with a
reason, never a half-changed table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec

from qortex.coordinator_state import CoordinatorCalls, CoordinatorState
from qortex.core.credibility import CHECKED_ERROR, Vote, check_probability
from qortex.core.kinds import Kind, checker_of, cost_of, preparer_of
from qortex.core.work import NO_GOLD, UNDECODED, Microtask, evaluate
from qortex.errors import ResultRefused
from qortex.protocol import messages as m
from qortex.store import facts as f
from qortex.taskbook import TaskBook
from qortex.trust import Trust

_decode = msgspec.json.decode

#: Checks a result's signature, given the input digest the coordinator knows.
Verify = Callable[[str], bool]


class Intake:
    def __init__(
        self, state: CoordinatorState, calls: CoordinatorCalls, trust: Trust, book: TaskBook
    ) -> None:
        self._state = state
        self._calls = calls
        self._trust = trust
        self._book = book
        kinds = state.kinds
        # The kinds the table says are checked (coordinator_state.empty_state), and their checks.
        self._checkers = {name: checker_of(kinds.get(name)) for name in state.table.checkable}
        self._prepare = {name: preparer_of(kinds.get(name)) for name in state.table.checkable}
        self._credit = {name: cost_of(kinds.get(name)) for name in kinds}  # volunteer credit

    def receive(
        self,
        miner_id: str,
        assignment_id: str,
        microtask_id: str,
        output: bytes,
        signature: str,
        verify: Verify,
        network: str,
        attributable: bool = True,
    ) -> asyncio.Future[None]:
        """Take a result in; the future resolves once it and its consequences are durable.

        It fails with :class:`ResultRefused` if the result may not count.
        ``attributable`` says whether a bad signature is the named miner's
        doing (over its own socket) or could be anyone's (over HTTP).
        """
        state = self._state
        future: asyncio.Future[None] = state.loop.create_future()
        try:
            lease = state.table.take(miner_id, assignment_id, microtask_id, state.clock())
        except ResultRefused as refusal:
            self.refuse(miner_id, assignment_id, refusal, attributable)
            future.set_exception(refusal)
            return future
        digest = lease.microtask.input_digest()

        def verified(ok: bool) -> None:
            if not ok:
                refusal = ResultRefused("bad_signature", "the result signature does not verify")
                self.refuse(miner_id, assignment_id, refusal, attributable)
                future.set_exception(refusal)
                return
            try:
                done = self.accept(
                    miner_id, assignment_id, microtask_id, output, signature, network
                )
            except ResultRefused as refusal:
                future.set_exception(refusal)
                return
            _chain(done, future)

        if state.verifier is None:
            verified(verify(digest))
        else:
            state.verifier.submit(lambda: verify(digest), verified)
        return future

    def accept(
        self,
        miner_id: str,
        assignment_id: str,
        microtask_id: str,
        output: bytes,
        signature: str,
        network: str,
    ) -> asyncio.Future[None]:
        """Count a result whose signature verified; see :meth:`receive`."""
        state, calls = self._state, self._calls
        now = state.clock()
        try:
            lease = state.table.take(miner_id, assignment_id, microtask_id, now)
            try:
                value = _decode(output)
            except msgspec.DecodeError:
                raise ResultRefused("bad_output", "output is not a JSON text") from None
        except ResultRefused as refusal:
            self.refuse(miner_id, assignment_id, refusal)
            raise
        mt = lease.microtask
        kind = state.kinds.get(mt.kind)
        error = state.ledger.vote_error(miner_id, network, now)
        # Work out every verdict first: plugin code may raise.
        plan = failure = None
        checked: bool | None = None
        try:
            checked = self._check(mt, kind, error, value)
            if checked is not False:
                vote = Vote(miner_id, network, CHECKED_ERROR if checked else error)
                plan = evaluate(lease, vote, value, kind.agree)
        except Exception as exc:  # a plugin's bug must not leave half-changed state
            failure = f"the {kind.name} kind failed on this microtask: {exc!r}"[:300]
        # Then change things.
        counted = CHECKED_ERROR if checked else error
        credit = 0.0 if checked is False else self._credit[mt.kind]
        unit: list[f.Fact] = [
            # The output as the miner sent it: stored as these bytes, not decoded again.
            f.result(
                assignment_id, mt.id, miner_id, output, signature, now, network, counted, checked
            ),
            f.accepted(miner_id, credit, now),
        ]
        events = [
            state.events.new(
                "microtask.result",
                now,
                mt.task_id,
                miner_id,
                microtaskId=mt.id,
                assignmentId=assignment_id,
                checked=checked,
            )
        ]
        state.stats.accepted += 1
        conn = state.connections.get(miner_id)
        if conn is not None:
            conn.accepted += 1
        if checked is False:
            state.table.returned(lease)
            refusal = ResultRefused("failed_check", "the result failed a check: banned")
            farewell = m.encoder.encode(m.Refused(assignment_id, refusal.reason, refusal.message))
            reason = f"result {assignment_id} failed a check"
            committed = self._trust.ban(miner_id, reason, unit, farewell)
            calls.schedule_fill()
            return _refused_after(committed, refusal)
        if checked:
            self._trust.passed(miner_id, now, unit, events)
        outcome = state.table.fail(mt, failure, lease) if plan is None else state.table.apply(plan)
        if outcome.decided or outcome.inconclusive:
            calls.settle(outcome, now, unit, events)
        committed = calls.write(unit, events)
        if outcome.task is not None:
            self._book.finish_later(outcome.task, committed)
        calls.schedule_fill()
        return committed

    def _check(self, mt: Microtask, kind: Kind, error: float, value: Any) -> bool | None:
        """True or False if this result is checked, None if not (the miner cannot tell)."""
        if mt.gold is not NO_GOLD:
            return bool(kind.agree(mt.gold, value))
        check = self._checkers.get(mt.kind)
        if check is None:
            return None
        state = self._state
        rate = check_probability(error, mt.policy.target_error, state.settings.check_rate)
        if rate < 1.0 and state.rng.random() >= rate:
            return None
        if mt.value is UNDECODED:  # once per microtask, however many results are checked
            mt.value = self._prepare[mt.kind](_decode(mt.input))
        return bool(check(mt.value, value))

    def refuse(
        self, miner_id: str, assignment_id: str, refusal: ResultRefused, attributable: bool = True
    ) -> None:
        """Count a refusal; charge it to the miner only if the miner really sent it.

        A result for a copy cancelled a moment earlier (``withdrawn``) is an
        honest race, and an unverified HTTP result could come from anyone, so
        neither is held against the miner it names.
        """
        state = self._state
        state.stats.refused[refusal.reason] += 1
        if not attributable or refusal.reason == "withdrawn":
            return
        conn = state.connections.get(miner_id)
        if conn is not None:
            conn.refused += 1
        now = state.clock()
        event = state.events.new(
            "result.refused", now, None, miner_id, assignmentId=assignment_id, reason=refusal.reason
        )
        self._calls.write([f.refused(miner_id, now)], [event])


def _chain(source: asyncio.Future[None], target: asyncio.Future[None]) -> None:
    def copy(done: asyncio.Future[None]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.cancel()
        elif done.exception() is not None:
            target.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            target.set_result(None)

    source.add_done_callback(copy)


def _refused_after(committed: asyncio.Future[None], refusal: ResultRefused) -> asyncio.Future[None]:
    """A future that fails with ``refusal`` once ``committed`` is durable."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def done(source: asyncio.Future[None]) -> None:
        if not future.done():
            future.set_exception(refusal)

    committed.add_done_callback(done)
    return future
