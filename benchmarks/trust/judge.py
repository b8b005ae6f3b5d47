"""Every decision held against the truth, and the figures of one cell.

Fields the coordinator does not (yet) report make their figure ``None``
(shown as n/a), never an exception: the harness has to run against the
engine as it is today and as it will be.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from trust.workload import Task


@dataclass
class Tally:
    microtasks: int = 0
    decided: int = 0
    wrong: int = 0
    inconclusive: int = 0
    pending: int = 0
    votes: int = 0
    adversary_votes: int = 0
    warm_decided: int = 0
    warm_votes: int = 0
    gold: int = 0
    gold_decided: int = 0
    gold_wrong: int = 0
    votes_listed: bool = False  # the coordinator lists votes at all
    notes: list[str] = field(default_factory=list)


Row = dict[str, Any]


def microtasks_of(detail: dict[str, Any]) -> tuple[list[Row], list[Row]]:
    """A task's own microtasks and its gold items, each in index order."""
    rows = sorted(detail.get("microtaskDetails") or [], key=lambda r: r.get("index", 0))
    real = [r for r in rows if not r.get("gold")]
    gold = [r for r in rows if r.get("gold")]
    apart = detail.get("gold")
    if isinstance(apart, dict):
        gold += sorted(apart.get("details") or [], key=lambda r: r.get("index", 0))
    return real, gold


def judge_task(
    tally: Tally,
    task: Task,
    detail: dict[str, Any],
    kind: Any,
    adversaries: set[str],
    warmup: dict[str, set[str]],
) -> None:
    """Add one task's microtasks to ``tally``.

    Gold items may be reported apart (``gold.details``) or among the task's
    microtasks with a ``gold`` flag; the task's own microtasks keep their
    order either way, so the n-th of them is judged against the n-th truth.
    """
    real, gold = microtasks_of(detail)
    if len(real) != len(task.truth):
        tally.notes.append(f"task {task.task_id}: {len(real)} microtasks, {len(task.truth)} sent")
    for row, truth in zip(real, task.truth, strict=False):
        tally.microtasks += 1
        status = row.get("status")
        tally.votes_listed |= "votes" in row
        voters = [str(v.get("minerId", "")) for v in row.get("votes") or []]
        tally.votes += len(voters)
        tally.adversary_votes += sum(v in adversaries for v in voters)
        if status == "decided":
            tally.decided += 1
            if not kind.agree(row.get("decision"), truth):
                tally.wrong += 1
            mt = str(row.get("microtaskId", ""))
            if not any(mt in warmup.get(v, ()) for v in voters):
                tally.warm_decided += 1
                tally.warm_votes += len(voters)
        elif status == "inconclusive":
            tally.inconclusive += 1
        else:
            tally.pending += 1
    expected = [g["output"] for g in task.body.get("gold", [])]
    for row, truth in zip(gold, expected, strict=False):
        tally.gold += 1
        if row.get("status") == "decided":
            tally.gold_decided += 1
            tally.gold_wrong += not kind.agree(row.get("decision"), truth)


def ratio(part: float, whole: float, scale: float = 1.0) -> float | None:
    return None if whole == 0 else scale * part / whole


def ban_times(identities: list[Any], banned: dict[str, tuple[float, str]]) -> dict[str, float]:
    """When each identity was banned: the ``miner.banned`` event, or else its 4011 close.

    The event is the authority when the coordinator sends any; the close code
    stands in only for a coordinator that sends none.
    """
    if banned:
        return {i.miner_id: banned[i.miner_id][0] for i in identities if i.miner_id in banned}
    return {i.miner_id: i.banned_at for i in identities if i.banned_at is not None}


def catch_times(identities: list[Any], banned: dict[str, tuple[float, str]]) -> dict[str, Any]:
    """From each liar's first lie to its ban."""
    when = ban_times(identities, banned)
    liars = [i for i in identities if i.first_lie_at is not None]
    times = [max(0.0, when[i.miner_id] - i.first_lie_at) for i in liars if i.miner_id in when]
    return {
        "liars": len(liars),
        "caught": len(times),
        "catchMedianS": statistics.median(times) if times else None,
        "catchMaxS": max(times) if times else None,
        "liesSent": sum(i.lies for i in identities),
    }


def figures(tally: Tally) -> dict[str, Any]:
    votes = tally.votes_listed
    return {
        "microtasks": tally.microtasks,
        "decided": tally.decided,
        "wrong": tally.wrong,
        "inconclusive": tally.inconclusive,
        "pending": tally.pending,
        "wrongPct": ratio(tally.wrong, tally.decided, 100),
        "inconclusivePct": ratio(tally.inconclusive, tally.microtasks, 100),
        "pendingPct": ratio(tally.pending, tally.microtasks, 100),
        "resultsPerDecided": ratio(tally.votes, tally.decided) if votes else None,
        "warmResultsPerDecided": ratio(tally.warm_votes, tally.warm_decided) if votes else None,
        "warmDecided": tally.warm_decided,
        "adversaryVotePct": ratio(tally.adversary_votes, tally.votes, 100) if votes else None,
        "gold": tally.gold,
        "goldWrong": tally.gold_wrong if tally.gold_decided else None,
    }
