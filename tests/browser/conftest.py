"""Real headless Chromium (Debian's, never a downloaded one) driving the miner page.

The sync Playwright API is used from plain (non-asyncio) test functions. One
browser serves the whole module; every tab gets its own browser context, so
its own IndexedDB and therefore its own miner identity.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Server, timeout, wait_until

try:
    from playwright import sync_api
except ImportError:  # the test extra is not installed: the browser fixture skips
    sync_api = None

# No internet here: without these flags Chromium keeps dialling Google services.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def ms(seconds: float) -> float:
    """A Playwright timeout, scaled like every other test timeout."""
    return timeout(seconds) * 1000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if sync_api is None:
        pytest.skip("playwright is not installed (pip install -e .[test])")
    if executable is None:
        pytest.skip("Debian's chromium is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path, replicas=3).start()
    yield srv
    srv.stop()


class Tabs:
    """Opens miner tabs, one browser context (one identity) each, and closes them all."""

    def __init__(self, browser: Any, server: Server) -> None:
        self.browser = browser
        self.server = server
        self.contexts: list[Any] = []
        self.errors: list[str] = []

    def new(self, viewport: dict[str, int] | None = None, **options: Any) -> Any:
        """A blank page in a fresh context: set routes on it before ``goto``."""
        context = self.browser.new_context(viewport=viewport or DESKTOP, **options)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        return page

    def goto(self, page: Any, path: str = "/", connected: bool = True) -> Any:
        page.goto(self.server.url + path)
        if connected:
            wait_connected(page)
        return page

    def open(self, path: str = "/", viewport: dict[str, int] | None = None, **options: Any) -> Any:
        return self.goto(self.new(viewport, **options), path)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def tabs(browser: Any, server: Server) -> Iterator[Tabs]:
    opened = Tabs(browser, server)
    yield opened
    opened.close()
    assert opened.errors == [], "uncaught errors in the page"


def wait_connected(page: Any, seconds: float = 15) -> None:
    page.wait_for_function(
        "() => window.qortexMiner && window.qortexMiner.state === 'connected'",
        timeout=ms(seconds),
    )


def miner_status(page: Any) -> dict[str, Any]:
    return page.evaluate("() => ({...window.qortexMiner})")


def wait_task(client: httpx.Client, task_id: str, seconds: float = 30) -> dict[str, Any]:
    """Poll a task until it finished; answer its final state."""

    def finished() -> dict[str, Any] | None:
        answer = client.get(f"/api/v1/tasks/{task_id}")
        if answer.status_code == 429:  # the tab's own requests share the address's budget
            return None
        assert answer.status_code == 200, answer.text
        task = answer.json()
        return task if task["status"] in ("completed", "failed") else None

    task = wait_until(finished, seconds, f"task {task_id} finished")
    assert task["status"] == "completed", task
    return task


def voters(*tasks: dict[str, Any]) -> set[str]:
    return {
        vote["minerId"]
        for task in tasks
        for microtask in task["microtaskDetails"]
        for vote in microtask["votes"]
    }


def connected_miners(client: httpx.Client) -> dict[str, dict[str, Any]]:
    miners = client.get("/api/v1/miners").json()["miners"]
    return {m["minerId"]: m for m in miners if m["connected"]}
