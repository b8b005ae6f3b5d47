"""The crash campaign's checks: the file, held to every record the clients and miners kept."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from qortex.kinds.sentiment import SentimentKind
from tests.crash.clients import LARGE_TWEETS, Follower, ProtocolMiner, Submitter
from tests.crash.run import Run


def verify(
    run: Run,
    db: Path,
    submitter: Submitter,
    follower: Follower,
    protocol_miners: list[ProtocolMiner],
    miners_out: Path,
    closed_at: int,
) -> None:
    conn = sqlite3.connect(db)
    try:
        _verify(run, conn, submitter, follower, protocol_miners, miners_out, closed_at)
    finally:
        conn.close()


def _verify(
    run: Run,
    conn: sqlite3.Connection,
    submitter: Submitter,
    follower: Follower,
    protocol_miners: list[ProtocolMiner],
    miners_out: Path,
    closed_at: int,
) -> None:
    kind = SentimentKind()
    tasks = {
        row[0]: row[1:]
        for row in conn.execute("SELECT id, status, microtasks, output, input FROM tasks")
    }
    microtasks: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in conn.execute("SELECT task_id, idx, id, status, decision FROM microtasks"):
        microtasks[row[0]].append(row[1:])

    # 1. Every 201 is a task that ended, each microtask decided with the honest label.
    acknowledged = dict(submitter.accepted)
    acknowledged.update(run.large_tweets)
    missing, unfinished, wrong, failed, completed = [], [], [], [], 0
    for task_id, tweets in acknowledged.items():
        row = tasks.get(task_id)
        if row is None:
            missing.append(task_id)
            continue
        status = row[0]
        mts = sorted(microtasks[task_id])
        if status == "completed":
            completed += 1
            honest = [kind.compute(text) for text in tweets]
            bad = [
                mt
                for mt, label in zip(mts, honest, strict=False)
                if mt[2] != "decided" or mt[3] is None or json.loads(mt[3]) != label
            ]
            output = json.loads(row[2]) if row[2] is not None else None
            labels = [o.get("label") for o in output] if isinstance(output, list) else None
            if bad or len(mts) != len(tweets) or labels != honest:
                wrong.append(task_id)
        elif status == "failed":
            if any(mt[2] == "inconclusive" for mt in mts):
                failed.append(task_id)
            else:
                wrong.append(task_id)
        else:
            unfinished.append(task_id)
    run.figures.update(
        tasksSubmitted=len(acknowledged),
        tasksChecked=len(acknowledged) - len(missing),
        tasksCompleted=completed,
        tasksFailedInconclusive=len(failed),
        tasksLost=len(missing),
    )
    run.check(
        "tasks",
        not (missing or unfinished or wrong),
        f"{len(acknowledged)} acknowledged: {completed} completed with the right labels, "
        f"{len(failed)} failed (inconclusive), {len(missing)} missing, "
        f"{len(unfinished)} not finished, {len(wrong)} wrong"
        + (f" e.g. {(missing + unfinished + wrong)[:3]}" if missing or unfinished or wrong else ""),
    )

    # 1b. Every task in the file (with or without a 201) ended, with all its microtasks.
    unacknowledged = [t for t in tasks if t not in acknowledged]
    open_tasks = [t for t, row in tasks.items() if row[0] == "running"]
    partial = [t for t, row in tasks.items() if len(microtasks[t]) != row[1]]
    run.figures["tasksUnacknowledged"] = len(unacknowledged)
    run.figures["tasksInFile"] = len(tasks)
    run.check(
        "every_task_ends",
        not (open_tasks or partial),
        f"{len(tasks)} tasks in the file ({len(unacknowledged)} committed without a 201 reaching"
        f" the client): {len(open_tasks)} still running, {len(partial)} with missing microtasks",
    )
    large_in_file = [t for t, row in tasks.items() if row[1] == LARGE_TWEETS]
    run.figures["largeCommitted"] = len(large_in_file)

    # 2. Every acked result is stored.
    stored = {row[0] for row in conn.execute("SELECT assignment_id FROM results")}
    acked = set().union(*(p.acked for p in protocol_miners)) if protocol_miners else set()
    lost_results = acked - stored
    cli_accepted = _cli_accepted(miners_out)
    cli_stored = conn.execute(
        "SELECT COUNT(*) FROM results r JOIN miners m ON m.id = r.miner_id"
        " WHERE m.name LIKE 'cli-%'"
    ).fetchone()[0]
    run.figures.update(
        resultsAcked=len(acked),
        resultsChecked=len(acked) - len(lost_results),
        resultsLost=len(lost_results),
        resultsStored=len(stored),
        cliResultsAccepted=cli_accepted,
        cliResultsStored=cli_stored,
    )
    cli_ok = cli_accepted is None or cli_stored >= cli_accepted
    run.check(
        "acked_results",
        not lost_results and cli_ok and bool(acked),
        f"{len(acked)} results acked to the protocol miners, {len(lost_results)} not in results"
        + (f" e.g. {sorted(lost_results)[:3]}" if lost_results else "")
        + f"; CLI miners counted {cli_accepted} acks, {cli_stored} of their results stored",
    )

    # 3. One decision per microtask: the column, the logged quorum events, the seen ones.
    decided = {
        row[0]: row[1]
        for row in conn.execute("SELECT id, decision FROM microtasks WHERE status = 'decided'")
    }
    logged: dict[str, list[str]] = defaultdict(list)
    for (data,) in conn.execute("SELECT data FROM events WHERE type = 'microtask.quorum'"):
        event = json.loads(data)
        if event.get("status") == "decided":
            logged[event["microtaskId"]].append(json.dumps(event["decision"]))
    two = []
    for mt_id, decisions in logged.items():
        column = decided.get(mt_id)
        if (
            len(set(decisions)) > 1
            or column is None
            or json.loads(column) != json.loads(decisions[0])
        ):
            two.append(mt_id)
    for mt_id, seen in follower.quorum.items():
        column = decided.get(mt_id)
        if len(seen) > 1 or column is None or {json.dumps(json.loads(column))} != seen:
            two.append(mt_id)
    silent = [mt_id for mt_id in decided if mt_id not in logged]
    repeated = sum(len(d) > 1 for d in logged.values())
    null_decided = conn.execute(
        "SELECT COUNT(*) FROM microtasks WHERE status = 'decided' AND decision IS NULL"
    ).fetchone()[0]
    run.figures.update(microtasksDecided=len(decided), quorumEventsRepeated=repeated)
    run.check(
        "one_decision",
        not (two or silent or null_decided),
        f"{len(decided)} microtasks decided; {len(set(two))} with two decisions, "
        f"{len(silent)} without a quorum event, {null_decided} decided without a decision, "
        f"{repeated} with the same decision logged more than once",
    )

    # 4. The log has no hole; the stream saw every id exactly once, as logged.
    ids = [row[0] for row in conn.execute("SELECT id FROM events ORDER BY id")]
    types = {i: (t, hash(d)) for i, t, d in conn.execute("SELECT id, type, data FROM events")}
    top = ids[-1] if ids else 0
    holes = top - len(ids) if ids and ids[0] >= 1 else len(ids)
    gap_at = next((i + 1 for i, v in enumerate(ids) if v != i + 1), None)
    seen = Counter(follower.ids)
    duplicates = sum(n - 1 for n in seen.values() if n > 1)
    unseen = [i for i in range(1, closed_at + 1) if i not in seen]
    not_logged = [i for i in seen if i not in types]
    retyped = [i for i, t in follower.types.items() if i in types and types[i] != t]
    run.figures.update(
        eventsLogged=len(ids),
        eventsSeen=len(follower.ids),
        eventsSeenUnique=len(seen),
        eventsAfterStreamClosed=top - closed_at,
        duplicatesSeen=duplicates,
        gaps=holes,
        sseConnects=follower.connects,
    )
    run.check(
        "event_log",
        holes == 0 and gap_at is None,
        f"{len(ids)} events logged, ids 1..{top}"
        + (f"; first hole at {gap_at}, {holes} missing" if gap_at is not None else ", no hole"),
    )
    run.check(
        "event_stream",
        not (duplicates or unseen or not_logged or retyped or follower.backwards),
        f"{len(follower.ids)} received over {follower.connects} connections: {duplicates} twice, "
        f"{len(unseen)} of 1..{closed_at} never, {len(not_logged)} not in the log, "
        f"{len(retyped)} not as logged (type or data), {follower.backwards} out of order"
        + (f"; unseen e.g. {unseen[:5]}" if unseen else "")
        + (f"; not logged e.g. {not_logged[:5]}" if not_logged else "")
        + (f"; retyped e.g. {retyped[:5]}" if retyped else ""),
    )

    # 5. No lease left (leases live in memory only: /health is where they are seen).
    drain = run.figures.get("drainHealth", {})
    run.figures["leasedLeft"] = drain.get("leasesOut")
    run.check(
        "no_lease_left",
        drain.get("leasesOut") == 0,
        f"/health said {drain.get('leasesOut')} leases out once all was done",
    )

    # 5b. Counters committed with the rows they count; miners told gone after a restart.
    drift = conn.execute(
        "SELECT COUNT(*) FROM miners m WHERE m.accepted !="
        " (SELECT COUNT(*) FROM results r WHERE r.miner_id = m.id)"
    ).fetchone()[0]
    run.figures["minersGoneAtRestart"] = conn.execute(
        "SELECT COUNT(*) FROM events WHERE type = 'miner.disconnected'"
        " AND json_extract(data, '$.reason') = 'coordinator restarted'"
    ).fetchone()[0]
    run.check(
        "miner_counts",
        drift == 0,
        f"{drift} miners whose accepted count differs from their stored results",
    )

    # 6. The large submits: atomic, and a 201 means the task is there.
    acked_large = [r["taskId"] for r in run.large if r["taskId"]]
    run.check(
        "large_submit",
        all(t in tasks for t in acked_large)
        and all(len(microtasks[t]) == LARGE_TWEETS for t in large_in_file),
        f"{len(run.large)} kills during a {LARGE_TWEETS:,}-tweet POST "
        f"({sum(bool(r['inFlight']) for r in run.large)} with the POST still in flight): "
        f"{len(acked_large)} got a 201, {len(large_in_file)} committed, each whole",
    )
    run.figures["lost"] = len(missing) + len(lost_results) + len(not_logged) + len(retyped)
    run.figures["refusedToProtocolMiners"] = dict(
        sum((p.refused for p in protocol_miners), Counter())
    )
    run.figures["submitStatuses"] = dict(submitter.statuses)
    run.figures["protocolMiners"] = [
        {
            "connects": p.connects,
            "sent": p.sent,
            "acked": len(p.acked),
            "cancelled": p.cancelled,
            "errors": dict(p.errors),
        }
        for p in protocol_miners
    ]


def _cli_accepted(path: Path) -> int | None:
    """The CLI miners' own count of acks, from the line ``qortex miner`` prints as it stops."""
    found = re.findall(r"\d+ miner\(s\): .*?(\d+) accepted,", path.read_text())
    return sum(int(n) for n in found) if found else None


# -- output ------------------------------------------------------------------------
