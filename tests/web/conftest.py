from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from qortex.settings import Settings
from qortex.web.app import create_app
from tests.helpers import API_KEY


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        db=str(tmp_path / "qortex.db"), api_key=API_KEY, replicas=3, max_request_bytes=64 * 1024
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers={"x-api-key": API_KEY}) as c:
        yield c
