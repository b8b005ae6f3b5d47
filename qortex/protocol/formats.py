"""The fixed shapes of identifiers, and the bounds of every free-text field a stranger sends.

Anything a party without the API key can make Qortex store or hold passes
through one of these types when it is decoded, at the edge: a WebSocket frame
or an HTTP body that breaks one is refused before any event or row is written.
The same ``Meta`` constraints flow into the OpenAPI document, so clients see
them too. docs/security.md lists each bound.
"""

from __future__ import annotations

import re
from typing import Annotated

from msgspec import Meta

#: An assignment (one copy of a microtask given to one miner): 96 random bits.
ASSIGNMENT_ID = r"^[0-9a-f]{24}$"
#: A microtask: its task's UUID and its index in the task.
MICROTASK_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:(0|[1-9][0-9]{0,8})$"
#: A miner: the first 128 bits of the SHA-256 of its public key, in hex.
MINER_ID = r"^[0-9a-f]{32}$"
#: A raw ed25519 public key in hex, either case.
PUBLIC_KEY = r"^[0-9a-fA-F]{64}$"

#: Characters of a miner's name and of its software string.
MAX_LABEL = 100
#: Kinds a miner may declare, and characters of each kind name.
MAX_KINDS = 16
MAX_KIND_NAME = 64

AssignmentId = Annotated[
    str, Meta(pattern=ASSIGNMENT_ID, description="24 lowercase hex digits", examples=["0" * 24])
]
MicrotaskId = Annotated[
    str,
    Meta(
        pattern=MICROTASK_ID,
        max_length=46,
        description="`<task uuid>:<index>`",
        examples=["3f0c0d4e-0000-4000-8000-000000000000:0"],
    ),
]
PublicKey = Annotated[
    str,
    Meta(
        pattern=PUBLIC_KEY,
        description="a raw ed25519 public key, 64 hex digits",
        examples=["d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"],
    ),
]
Label = Annotated[str, Meta(max_length=MAX_LABEL)]
KindName = Annotated[str, Meta(max_length=MAX_KIND_NAME)]
KindList = Annotated[list[KindName], Meta(max_length=MAX_KINDS)]

_MINER_ID = re.compile(MINER_ID)
_TASK_ID = re.compile(MICROTASK_ID.split(":", 1)[0] + "$")


def is_miner_id(text: str) -> bool:
    return _MINER_ID.match(text) is not None


def is_task_id(text: str) -> bool:
    return _TASK_ID.match(text) is not None
