"""After a fault class has run: what the server recorded about its attackers, and what it logged.

The counts in ``GET /api/v1/miners``, the ``result.refused`` and
``microtask.reassigned`` events and the stored results are read while the
coordinator keeps running (the file is opened read-only; WAL lets a reader
in beside the writer), so each comparison is retried for a few seconds
while the last commits land.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from tests.faults.frames import SCALE
from tests.faults.tally import Tally, agree

if TYPE_CHECKING:
    from tests.faults.campaign import Campaign

#: (tally, check, doc section, answer found, answers the doc allows)
Finding = tuple[Tally, str, str, str, tuple[str, ...]]


async def check_miner_counts(c: Campaign) -> None:
    """``refused``/``accepted`` of each attacker identity in ``GET /api/v1/miners``."""
    deadline = time.monotonic() + 10 * SCALE
    while True:
        rows: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            response = await c.request(
                None, "GET", "/api/v1/miners", params={"limit": 1000, "offset": offset}
            )
            page = response.json()["miners"]
            rows.update({row["minerId"]: row for row in page})
            if len(page) < 1000:
                break
            offset += 1000
        diffs = {}
        for miner_id, ident in c.identities.items():
            want = (
                sum(n for r, n in ident.refused.items() if r != "withdrawn"),
                ident.acks + ident.http_accepted,
            )
            row = rows.get(miner_id)
            have = (row["refused"], row["accepted"]) if row else None
            diffs[miner_id] = (want, have)
        if (
            all(agree(c.identities[mid], w, h) for mid, (w, h) in diffs.items() if h is not None)
            or time.monotonic() > deadline
        ):
            break
        await asyncio.sleep(0.25)
    for miner_id, (want, have) in diffs.items():
        if have is None:
            # Never completed a handshake (a refused hello, a bad answer): never recorded.
            continue
        ok = agree(c.identities[miner_id], want, have)
        c.identities[miner_id].tally.expect(
            "GET /api/v1/miners refused/accepted = answers seen",
            "§7 (refusals counted except withdrawn and HTTP bad_signature)",
            "match" if ok else f"server {have} != seen {want}",
            "match",
        )


async def check_database(c: Campaign) -> None:
    """Events and stored results, compared with what the attackers saw."""
    deadline = time.monotonic() + 10 * SCALE
    while True:
        findings = _database_findings(c)
        if all(got in ok for *_, got, ok in findings) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    for tally, check, doc, got, ok in findings:
        tally.expect(check, doc, got, *ok)


def _database_findings(c: Campaign) -> list[Finding]:
    found: list[Finding] = []
    conn = sqlite3.connect(f"file:{c.db}?mode=ro", uri=True, timeout=10)
    try:
        events: dict[str, Counter[str]] = {}
        for miner_id, data in conn.execute(
            "SELECT miner_id, data FROM events WHERE type = 'result.refused'"
        ):
            if miner_id in c.identities:
                events.setdefault(miner_id, Counter())[json.loads(data)["reason"]] += 1
        for miner_id, ident in c.identities.items():
            seen = Counter({r: n for r, n in ident.refused.items() if r != "withdrawn"})
            have = events.get(miner_id, Counter())
            ok = +have == +seen or (ident.dropped_unread and not +seen - +have)
            got = "match" if ok else f"events {dict(have)} != seen {dict(seen)}"
            found.append(
                (
                    ident.tally,
                    "result.refused events per reason = refusals seen",
                    "§7",
                    got,
                    ("match",),
                )
            )
        for tally, check, doc, assignment_id, status in c.db_checks:
            row = conn.execute(
                "SELECT json_extract(data, '$.reason') FROM events"
                " WHERE type = 'microtask.reassigned'"
                " AND json_extract(data, '$.assignmentId') = ?",
                (assignment_id,),
            ).fetchone()
            found.append((tally, check, doc, f"closed {row[0]}" if row else "no event", status))
        for tally, assignment_id, _sent in c.signature_checks:
            row = conn.execute(
                "SELECT signature FROM results WHERE assignment_id = ?", (assignment_id,)
            ).fetchone()
            stored = row[0] if row else None
            ok = stored is not None and len(stored) == 128 and stored == stored.lower()
            found.append(
                (
                    tally,
                    "stored signature is 128 lowercase hex",
                    "§5.6, §13.1 proof",
                    "canonical" if ok else f"stored {stored!r:.40}",
                    ("canonical",),
                )
            )
        for tally, check, doc, assignment_id, want in c.stored_checks:
            row = conn.execute(
                "SELECT 1 FROM results WHERE assignment_id = ?", (assignment_id,)
            ).fetchone()
            got = "stored" if row else "not stored"
            found.append((tally, check, doc, got, ("stored" if want else "not stored",)))
    finally:
        conn.close()
    return found


def check_server_log(c: Campaign, start: int) -> None:
    """Errors the server logged from byte ``start`` on. uvicorn's own report of a text message
    that is not UTF-8 (it then closes 1007, as documented) is not counted: it is not Qortex's."""
    with open(c.log, "rb") as f:
        f.seek(start)
        lines = f.read().decode(errors="replace").splitlines()
    crashes = [line for line in lines if "Exception in ASGI application" in line]
    errors = [
        line
        for line in lines
        if line.startswith("ERROR") or " ERROR " in line
        if "Invalid UTF-8 sequence received from client" not in line
    ]
    causes: Counter[str] = Counter()
    crashing = False
    for line in lines:
        if "Exception in ASGI application" in line:
            crashing = True
        elif crashing and line and not line.startswith((" ", "Traceback")):
            head = line.split(":")[0]
            if head.endswith(("Error", "Exception")):
                causes[head] += 1
                crashing = False
    c.server_side["logErrors"] = len(errors)
    c.server_side["handlerCrashes"] = len(crashes)
    c.server_side["crashCauses"] = dict(causes)
    c.server_side["logErrorSample"] = errors[:5]
