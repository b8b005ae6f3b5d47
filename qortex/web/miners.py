"""Miner routes over HTTP: registration, the signed-result endpoint, and the list."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.routing import Route

from qortex.errors import InvalidInput, NotFound, ResultRefused, Unauthorized
from qortex.signing import input_digest, miner_id_of, parse_public_key, result_message, verify
from qortex.store import facts as f
from qortex.web.auth import require_key
from qortex.web.http import JSON, query_int, read_json


class Registration(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    public_key: str
    name: str = ""
    kinds: list[str] = []
    software: str = ""


class SignedResult(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    assignment_id: str
    microtask_id: str
    output: str
    signature: str


async def register(request: Request) -> JSON:
    body = await read_json(request, Registration)
    try:
        key = parse_public_key(body.public_key)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="publicKey") from None
    public_key = bytes(key).hex()
    miner_id = miner_id_of(bytes(key))
    coord = request.app.state.coordinator
    if await coord.store.reader.miner(miner_id) is not None:
        # Registration proves nothing about who sends it, so it never rewrites a miner.
        return JSON({"minerId": miner_id, "publicKey": public_key}, status_code=200)
    now = coord.clock()
    kinds = msgspec.json.encode(body.kinds).decode()
    row = (miner_id, public_key, body.name[:100], body.software[:100], kinds, now, now)
    await coord.store.writer.write([(f.INSERT_MINER, row)])
    return JSON({"minerId": miner_id, "publicKey": public_key}, status_code=201)


async def post_result(request: Request) -> JSON:
    """The same signed result as over the socket, for miners that prefer HTTP for it."""
    miner_id = request.path_params["miner_id"]
    body = await read_json(request, SignedResult)
    coord = request.app.state.coordinator
    public_key = coord.public_key(miner_id)
    if public_key is None:
        row = await coord.store.reader.miner(miner_id)
        if row is None:
            raise NotFound(f"no miner {miner_id!r}; register it first", minerId=miner_id)
        public_key = row["public_key"]
    output = body.output.encode()
    lease = coord.table.leases.get(body.assignment_id)
    if lease is None:  # over or unknown: it cannot count, and no input says what was signed
        try:
            coord.table.take(miner_id, body.assignment_id, body.microtask_id, coord.clock())
        except ResultRefused as refusal:
            coord.refuse(miner_id, body.assignment_id, refusal, attributable=False)
            raise
    digest = input_digest(bytes(lease.microtask.input))
    message = result_message(body.assignment_id, body.microtask_id, digest, output)
    if not verify(parse_public_key(public_key), message, body.signature):
        refusal = ResultRefused("bad_signature", "the signature does not verify for this miner")
        coord.refuse(miner_id, body.assignment_id, refusal, attributable=False)
        raise Unauthorized(refusal.message, reason=refusal.reason)
    await coord.accept(miner_id, body.assignment_id, body.microtask_id, output, body.signature)
    return JSON({"status": "accepted", "assignmentId": body.assignment_id})


async def list_miners(request: Request) -> JSON:
    require_key(request)
    limit = query_int(request, "limit", 100, 1, 1000)
    offset = query_int(request, "offset", 0, 0, 10**9)
    coord = request.app.state.coordinator
    rows = await coord.store.reader.miners(limit, offset)
    miners = []
    for row in rows:
        conn = coord.connections.get(row["id"])
        miners.append(
            {
                "minerId": row["id"],
                "publicKey": row["public_key"],
                "name": row["name"],
                "software": row["software"],
                "kinds": msgspec.json.decode(row["kinds"]),
                "connected": conn is not None,
                "slots": conn.info.slots if conn else None,
                "busy": len(coord.table.miners[row["id"]].leases) if conn else 0,
                "accepted": row["accepted"],
                "refused": row["refused"],
                "firstSeen": row["first_seen"],
                "lastSeen": row["last_seen"],
            }
        )
    return JSON({"miners": miners, "connected": len(coord.connections)})


routes = [
    Route("/api/v1/miners/register", register, methods=["POST"]),
    Route("/api/v1/miners", list_miners, methods=["GET"]),
    Route("/internal/miner/{miner_id}/result", post_result, methods=["POST"]),
]
