"""Miner routes over HTTP: registration and the signed-result endpoint."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.routing import Route

from qortex.core.credibility import network_of
from qortex.errors import Forbidden, InvalidInput, NotFound, ResultRefused, Unauthorized
from qortex.protocol.formats import (
    AssignmentId,
    KindList,
    Label,
    MicrotaskId,
    PublicKey,
    is_miner_id,
)
from qortex.shapes import Registered, ResultAccepted
from qortex.signing import miner_id_of, parse_public_key, result_message, verify
from qortex.web.http import JSON, read_json, require_writable


class Registration(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    public_key: PublicKey
    name: Label = ""
    kinds: KindList = []
    software: Label = ""


class SignedResult(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    assignment_id: AssignmentId
    microtask_id: MicrotaskId
    output: str
    signature: str


async def register(request: Request) -> JSON:
    limits = request.app.state.address_limits
    limits.check("register", request)
    require_writable(request)
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
        return JSON(Registered(miner_id, public_key), status_code=200)
    limits.check("identity", request)
    await coord.register(miner_id, public_key, body.name, body.software, body.kinds)
    return JSON(Registered(miner_id, public_key), status_code=201)


async def post_result(request: Request) -> JSON:
    """The same signed result as over the socket, for miners that prefer HTTP for it."""
    miner_id = request.path_params["miner_id"]
    if not is_miner_id(miner_id):
        raise InvalidInput("minerId must be 32 lowercase hex digits", field="minerId")
    request.app.state.address_limits.check("result", request)
    require_writable(request)
    body = await read_json(request, SignedResult)
    coord = request.app.state.coordinator
    if coord.ledger.banned(miner_id):
        raise Forbidden("this miner is banned: it failed a check", minerId=miner_id)
    public_key = coord.public_key(miner_id)
    if public_key is None:
        row = await coord.store.reader.miner(miner_id)
        if row is None:
            raise NotFound(f"no miner {miner_id!r}; register it first", minerId=miner_id)
        public_key = row["public_key"]
    key = parse_public_key(public_key)
    output = body.output.encode()

    def signed(input_sha256: str) -> bool:
        message = result_message(body.assignment_id, body.microtask_id, input_sha256, output)
        return verify(key, message, body.signature)

    conn = coord.connections.get(miner_id)
    host = request.client.host if request.client else ""
    network = conn.network if conn else network_of(host, miner_id)
    done = coord.intake.receive(
        miner_id,
        body.assignment_id,
        body.microtask_id,
        output,
        body.signature,
        signed,
        network,
        attributable=False,
    )
    try:
        await done
    except ResultRefused as refusal:
        if refusal.reason == "bad_signature":
            raise Unauthorized(refusal.message, reason=refusal.reason) from None
        raise
    return JSON(ResultAccepted("accepted", body.assignment_id))


routes = [
    Route("/api/v1/miners/register", register, methods=["POST"]),
    Route("/internal/miner/{miner_id}/result", post_result, methods=["POST"]),
]
