"""The coordinator the fault classes attack: one per test process, with six honest CLI miners.

Its deadlines are short (1.5 s leases, 0.5 s heartbeats, 2 s handshake) so every
one of them comes within a test; companions are off, so a copy an attacker
holds stays out until its deadline; the keepalive ping is pushed out of the
unread flood's window; the client's request rate is not under test here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.campaign import FaultRun
from tests.faults.frames import HANDSHAKE, HEARTBEAT, LEASE, MINER_BURST, MINER_RATE, REPLICAS
from tests.helpers import Server, start_miners

LONG_ROUNDS = 15


@pytest.fixture(scope="session")
def fault_server(tmp_path_factory: pytest.TempPathFactory, long: bool) -> Iterator[FaultRun]:
    tmp = tmp_path_factory.mktemp("faults")
    server = Server(
        tmp,
        replicas=REPLICAS,
        lease_seconds=LEASE,
        heartbeat_seconds=HEARTBEAT,
        handshake_seconds=HANDSHAKE,
        patience_seconds=0,
        ws_ping_seconds=120,
        api_rate=100000,
        api_burst=100000,
        miner_rate=MINER_RATE,
        miner_burst=MINER_BURST,
    ).start()
    try:
        # Six: a miner never gets a copy it let expire again, and on a busy machine (a
        # flood keeps the coordinator's loop busy for a second or more) all three copies
        # of a microtask may expire at once; a quorum of 3 of 3 still finds three others.
        miners = start_miners(server, 6, tmp / "honest-keys")
        try:
            yield FaultRun(server, long)
        finally:
            miners.stop()
    finally:
        server.stop()


@pytest.fixture
def rounds(long: bool) -> int:
    return LONG_ROUNDS if long else 1
