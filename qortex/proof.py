"""Re-checking a task's proof bundle offline, trusting nothing but the math.

A bundle (``GET /api/v1/tasks/{id}/proof``) holds the task, every signed
result and every decision. It holds up when each result's signature verifies
under the key its miner id is derived from, and each decision is backed by at
least ``quorum`` results from distinct miners that agree with it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import msgspec

from qortex.core.kinds import KindRegistry
from qortex.signing import miner_id_of, parse_public_key, result_message, verify


def check_proof(bundle: dict[str, Any], kinds: KindRegistry) -> list[str]:
    """Every problem found; an empty list means the bundle holds up."""
    if bundle.get("format") != "qortex-proof-v1":
        return ["not a qortex-proof-v1 bundle"]
    problems: list[str] = []
    task = bundle["task"]
    kind = kinds.get(task["kind"])
    valid: dict[str, dict[str, Any]] = defaultdict(dict)  # microtask -> miner -> output
    for r in bundle["results"]:
        where = f"result {r['assignmentId']}"
        try:
            key = parse_public_key(r["publicKey"])
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if miner_id_of(bytes(key)) != r["minerId"]:
            problems.append(f"{where}: miner id does not match its public key")
            continue
        message = result_message(r["assignmentId"], r["microtaskId"], r["output"].encode())
        if not verify(key, message, r["signature"]):
            problems.append(f"{where}: signature does not verify")
            continue
        valid[r["microtaskId"]][r["minerId"]] = msgspec.json.decode(r["output"])
    for mt in bundle["microtasks"]:
        if mt["status"] != "decided":
            continue
        decision = msgspec.json.decode(mt["decision"])
        votes = sum(kind.agree(decision, out) for out in valid[mt["microtaskId"]].values())
        if votes < task["quorum"]:
            problems.append(
                f"microtask {mt['microtaskId']}: {votes} signed result(s) back the decision,"
                f" quorum is {task['quorum']}"
            )
    return problems
