"""What the HTTP fuzzing shares: the checks, the configuration, and the two request hooks.

Used by ``benchmarks/fuzz_http.py`` (schemathesis against a real ``qortex
serve``) and by the suite's in-process fuzz (``tests/web/test_openapi.py``),
so that both hold the coordinator to the same rules. It imports nothing from
its neighbours, so both can import it.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.config import SchemathesisConfig

from qortex.errors import InvalidInput
from qortex.signing import Signer, result_message
from qortex.webhooks.destinations import check_url

RESULT = "/internal/miner/{minerId}/result"
#: Schemathesis' own checks, and this project's: every 4xx says what was wrong.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "ignored_auth",
    "error_has_json_message",
)
#: Where an acceptable webhook or callback URL is sent instead: a closed loopback port.
NOWHERE = "http://127.0.0.1:9/hook"


def json_message(response: Any) -> str | None:
    """The ``message`` of a JSON error answer, if it has a non-empty one."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) and message else None


@schemathesis.check
def error_has_json_message(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx says what was wrong, as JSON with a non-empty ``message``."""
    if 400 <= response.status_code < 500:
        assert json_message(response), f"{response.status_code} without a JSON message"
    return None


def config(
    api_key: str,
    seed: int,
    examples: int,
    stateful: bool = True,
    max_steps: int | None = None,
    stream_seconds: float = 0.25,
    request_timeout: float | None = None,
) -> SchemathesisConfig:
    """Every generation mode, deterministic, with the checks above and the API key.

    An event stream never ends: a request to it keeps what arrives in
    ``stream_seconds``, or the first event.
    """
    stateful_phase: dict[str, Any] = {"enabled": stateful}
    if max_steps is not None:
        stateful_phase["max-steps"] = max_steps
    timeout = {} if request_timeout is None else {"request-timeout": request_timeout}
    return SchemathesisConfig.from_dict(
        {
            "seed": seed,
            "generation": {
                "mode": "all",
                "max-examples": examples,
                "deterministic": True,
                "database": "none",
            },
            "auth": {"openapi": {"apiKey": {"api_key": api_key}}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "phases": {"stateful": stateful_phase},
            **timeout,
            "operations": [
                {
                    "include-path": "/api/v1/events",
                    "request-timeout": stream_seconds,
                    "max-stream-events": 1,
                }
            ],
        }
    )


def keep_on_loopback(body: Any) -> None:
    """A webhook or callback URL the coordinator would accept goes to a closed loopback port.

    The fuzzing reaches nothing beyond this machine: a generated host name
    would be looked up (and posted to) on the real network.
    """
    if not isinstance(body, dict):
        return
    for field in ("url", "callbackUrl"):
        url = body.get(field)
        if isinstance(url, str):
            try:
                check_url(url, [])
            except InvalidInput:
                continue
            body[field] = NOWHERE


def sign_some_results(case: Any, signer: Signer) -> None:
    """Half the well-formed results are signed by ``signer``, a registered miner.

    So they reach the coordinator (and are refused there: no such assignment,
    so no input to sign for). A hook on the call, not on generation: a
    ``map_case`` hook slows generation five-fold.
    """
    body = case.body
    fields = ("assignmentId", "microtaskId", "output", "signature")
    if (
        case.operation.path == RESULT
        and isinstance(body, dict)
        and all(isinstance(body.get(f), str) for f in fields)
        and len(body["output"]) % 2
    ):
        case.path_parameters = {"minerId": signer.miner_id}
        message = result_message(
            body["assignmentId"], body["microtaskId"], "", body["output"].encode()
        )
        body["signature"] = signer.sign(message)
