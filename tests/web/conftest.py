from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from qortex.settings import Settings
from qortex.signing import Signer
from qortex.web.app import create_app
from tests.helpers import API_KEY
from tests.web.socketminer import SocketMiner


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        db=str(tmp_path / "qortex.db"), api_key=API_KEY, replicas=3, max_request_bytes=64 * 1024
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers={"x-api-key": API_KEY}) as c:
        yield c


@pytest.fixture
def connect(client: TestClient) -> Iterator[Any]:
    with contextlib.ExitStack() as stack:

        def open_miner(signer: Signer | None = None, slots: int = 1) -> SocketMiner:
            ws = stack.enter_context(client.websocket_connect("/ws/miner"))
            miner = SocketMiner(ws, signer, slots)
            miner.handshake()
            return miner

        yield open_miner
