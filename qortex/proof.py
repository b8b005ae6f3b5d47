"""Re-deriving a task's decisions offline from its proof bundle, trusting nothing but the math.

A bundle (``GET /api/v1/tasks/{id}/proof``) holds each microtask's exact input,
every signed result with the voter's public key, what each vote weighed and
whether it was checked, and each decision with its estimated error. It holds
up when every signature verifies over the assignment, the microtask, the
SHA-256 of the input *as it appears in the bundle* and the output (so an
edited input, output or vote breaks a signature), and when the same rule the
coordinator applies (:mod:`qortex.core.quorum`) decides each microtask the
same way from the votes that count, and the task's output is what its kind
assembles from the decisions.
"""

from __future__ import annotations

from typing import Any

import msgspec

from qortex.core.credibility import Vote
from qortex.core.kinds import KindRegistry
from qortex.core.quorum import Policy, Tally
from qortex.signing import input_digest, miner_id_of, parse_public_key, result_message, verify

PROOF_FORMAT = "qortex-proof-v2"
#: Float slack when comparing a recomputed error with the recorded one.
SLACK = 1e-9

_decode = msgspec.json.decode


def check_proof(bundle: dict[str, Any], kinds: KindRegistry) -> list[str]:
    """Every problem found; an empty list means the bundle holds up."""
    if bundle.get("format") != PROOF_FORMAT:
        return [f"not a {PROOF_FORMAT} bundle"]
    task = bundle["task"]
    kind = kinds.get(task["kind"])
    policy = Policy(task["replicas"], task["quorum"], task["maxReplicas"], 1.0, task["targetError"])
    problems: list[str] = []
    decisions = []
    for mt in bundle["microtasks"]:
        digest = input_digest(mt["input"].encode())
        tally = Tally()
        for vote in mt["votes"]:
            problem = _signature_problem(vote, mt["microtaskId"], digest)
            if problem:
                problems.append(problem)
            elif not vote["revoked"]:
                error = 1.0 if vote["error"] is None else vote["error"]
                counted = Vote(vote["minerId"], vote["network"] or vote["minerId"], error)
                tally = tally.adding(counted, _decode(vote["output"]), kind.agree)
        where = f"microtask {mt['microtaskId']}"
        if mt["status"] == "decided":
            decision = _decode(mt["decision"])
            problems += _decision_problems(where, tally, policy, decision, kind.agree)
            if mt["gold"] is not None and not kind.agree(_decode(mt["gold"]), decision):
                problems.append(f"{where}: the known-answer item was decided wrongly")
            if mt["gold"] is None:
                decisions.append(decision)
    if task["status"] == "completed" and not problems:
        expected = kind.assemble(task["input"], decisions)
        if msgspec.json.encode(expected) != msgspec.json.encode(task["output"]):
            problems.append("the task's output is not what its decisions assemble to")
    return problems


def _signature_problem(vote: dict[str, Any], microtask_id: str, digest: str) -> str | None:
    where = f"result {vote['assignmentId']}"
    if vote.get("version") != 2:
        return f"{where}: signed with protocol v{vote.get('version')}; not checkable here"
    try:
        key = parse_public_key(vote["publicKey"])
    except ValueError as exc:
        return f"{where}: {exc}"
    if miner_id_of(bytes(key)) != vote["minerId"]:
        return f"{where}: miner id does not match its public key"
    message = result_message(vote["assignmentId"], microtask_id, digest, vote["output"].encode())
    if not verify(key, message, vote["signature"]):
        return f"{where}: signature does not verify (input, output or ids edited?)"
    return None


def _decision_problems(
    where: str, tally: Tally, policy: Policy, decision: Any, agree: Any
) -> list[str]:
    best, error = tally.best()
    if best is None:
        return [f"{where}: decided without any counted vote"]
    if not agree(best.output, decision):
        return [f"{where}: the most credible answer is not the decision"]
    if error > policy.target_error * (1 + SLACK):
        return [f"{where}: estimated error {error:.3g} is over the target {policy.target_error:g}"]
    distinct = len({v.miner_id for v in best.votes})
    if distinct < policy.quorum:
        return [f"{where}: {distinct} miner(s) back the decision, quorum is {policy.quorum}"]
    return []
