"""The operator's console and the API docs in real headless Chromium, against a real
coordinator with real CLI miners; no request may leave for another host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import DESKTOP, PHONE, Tabs, ms, wait_task
from tests.helpers import (
    API_KEY,
    TWEETS,
    MinerProcesses,
    Server,
    StuckMiner,
    start_miners,
    timeout,
    wait_until,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path, replicas=1).start()
    yield srv
    srv.stop()


class Requests:
    """Every URL a page asks for; the console and the docs must stay on the coordinator."""

    def __init__(self, page: Any, server: Server) -> None:
        self.origin = urlsplit(server.url).netloc
        self.elsewhere: list[str] = []
        self.seen: list[str] = []
        page.on("request", self._record)

    def _record(self, request: Any) -> None:
        url = request.url
        self.seen.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob"):
            return
        if parts.netloc != self.origin:
            self.elsewhere.append(url)


def open_console(tabs: Tabs, viewport: dict[str, int] = DESKTOP, **options: Any) -> Any:
    page = tabs.new(viewport, **options)
    requests = Requests(page, tabs.server)
    tabs.goto(page, "/dashboard", connected=False)
    page.get_by_test_id("api-key").fill(API_KEY)
    page.get_by_test_id("sign-in").click()
    page.wait_for_function(
        "() => document.documentElement.dataset.ready === 'true'", timeout=ms(10)
    )
    page.wait_for_function("() => document.getElementById('live').dataset.state === 'on'")
    page.requests = requests
    return page


LIGHT_BG = "rgb(244, 245, 247)"  # base.css --bg, light scheme (Chromium's default)


def looks(page: Any) -> dict[str, str]:
    """What the stylesheets decided for the body and the first card."""
    return page.evaluate(
        """() => {
          const body = getComputedStyle(document.body);
          const card = getComputedStyle(document.querySelector('.card'));
          return { background: body.backgroundColor, fontSize: body.fontSize,
                   cardRadius: card.borderTopLeftRadius };
        }"""
    )


def row(page: Any, kind: str, ident: str) -> Any:
    return page.locator(f"#{kind} tr[data-{kind[:-1]}-id='{ident}']")


def test_sign_in_is_refused_with_a_wrong_key_and_the_key_never_in_a_url(tabs: Tabs) -> None:
    page = tabs.new()
    requests = Requests(page, tabs.server)
    tabs.goto(page, "/dashboard", connected=False)
    page.get_by_test_id("api-key").fill("qx_wrong")
    page.get_by_test_id("sign-in").click()
    page.get_by_text("That key was refused.").wait_for(timeout=ms(5))
    assert page.evaluate("() => sessionStorage.length") == 0
    page.get_by_test_id("api-key").fill(API_KEY)
    page.get_by_test_id("sign-in").click()
    page.wait_for_function("() => document.documentElement.dataset.ready === 'true'")
    assert page.evaluate("() => sessionStorage.getItem('qortex.console.key')") == API_KEY
    assert page.evaluate("() => localStorage.length") == 0
    assert all(API_KEY not in url for url in requests.seen)
    # A reload in the same tab stays signed in.
    page.reload()
    page.wait_for_function("() => document.documentElement.dataset.ready === 'true'")
    assert requests.elsewhere == []
    # The shared base sheet sets the palette, the console's own sheet its type size.
    assert looks(page) == {"background": LIGHT_BG, "fontSize": "15px", "cardRadius": "12px"}
    assert {"/static/base.css", "/static/dashboard.css"} <= {
        urlsplit(url).path for url in requests.seen
    }


def test_a_task_and_a_new_miner_are_watched_live(
    tabs: Tabs, server: Server, tmp_path: Path
) -> None:
    page = open_console(tabs)
    miners = start_miners(server, 1, tmp_path / "keys")
    try:
        with server.client() as client:
            # Connected is counted at once; the listing shows a miner once its row commits.
            (miner,) = wait_until(
                lambda: client.get("/api/v1/miners").json()["miners"], 10, "the miner listed"
            )
            miner_id = miner["minerId"]
            # The new miner appears, online, without a reload.
            row(page, "miners", miner_id).locator(".dot.on").wait_for(timeout=ms(10))

            task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS}).json()["taskId"]
            task_row = row(page, "tasks", task_id)
            task_row.wait_for(timeout=ms(10))
            wait_task(client, task_id)
            page.wait_for_function(
                f"() => document.querySelector(\"#tasks tr[data-task-id='{task_id}']\")"
                "?.dataset.status === 'completed'",
                timeout=ms(10),
            )
            assert f"{len(TWEETS)}/{len(TWEETS)}" in task_row.inner_text()
            # Its credit grew with each accepted result.
            credit = row(page, "miners", miner_id).locator("[data-testid=credit]")
            page.wait_for_function(
                f"() => document.querySelector(\"#miners tr[data-miner-id='{miner_id}'] "
                f"[data-testid=credit]\")?.textContent === '{len(TWEETS)}'",
                timeout=ms(10),
            )
            assert credit.inner_text() == str(len(TWEETS))
            events = page.get_by_test_id("events")
            assert "task.completed" in events.inner_text()
            assert page.get_by_test_id("n-completed").inner_text() == "1"

            # The task's detail: microtasks, votes, and the proof to download.
            task_row.click()
            detail = page.get_by_test_id("detail")
            detail.get_by_test_id("microtasks").wait_for()
            assert detail.locator("tbody tr").count() == len(TWEETS)
            with page.expect_download() as download:
                detail.get_by_role("button", name="Download proof").click()
            assert download.value.suggested_filename == f"proof-{task_id}.json"
            detail.get_by_role("button", name="Close").click()

        ARTIFACTS.mkdir(exist_ok=True)
        page.wait_for_timeout(0)
        page.screenshot(path=str(ARTIFACTS / "console-desktop.png"))
        phone = open_console(tabs, PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
        row(phone, "tasks", task_id).wait_for(timeout=ms(10))
        # Opened later, it still shows the latest events: it replays the log's tail.
        phone.locator("#events li[data-type='task.completed']").wait_for(timeout=ms(10))
        assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        phone.screenshot(path=str(ARTIFACTS / "console-phone.png"), full_page=True)
        assert page.requests.elsewhere == [] and phone.requests.elsewhere == []
    finally:
        miners.stop()


def test_cancel_a_running_task_and_ban_a_miner(tabs: Tabs, server: Server, tmp_path: Path) -> None:
    stuck = StuckMiner(server, slots=4)
    page = open_console(tabs)
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        with server.client() as client:
            task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS[:2]}).json()["taskId"]
            stuck.take(1)  # a copy is out (a new miner earns one slot), never to come back
            row(page, "tasks", task_id).click()
            page.get_by_test_id("cancel-task").click()
            page.wait_for_function(
                f"() => document.querySelector(\"#tasks tr[data-task-id='{task_id}']\")"
                "?.dataset.status === 'cancelled'",
                timeout=ms(10),
            )
            assert client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "cancelled"
            page.get_by_role("button", name="Close").click()
    finally:
        stuck.close()

    miners = start_miners(server, 1, tmp_path / "keys")
    with server.client() as client:
        miner_id = client.get("/api/v1/miners", params={"connected": "true"}).json()["miners"][0][
            "minerId"
        ]
        row(page, "miners", miner_id).click()
        page.get_by_test_id("ban-miner").click()
        # The banned miner process is closed with 4011 and stops: reconnecting cannot help.
        assert miners.proc.wait(timeout(15)) != 0
        assert "4011" in miners.log.read_text()
        wait_until(lambda: client.get("/health").json()["minersConnected"] == 0, 10, "gone")
        page.get_by_test_id("detail").get_by_text("banned from the console").wait_for()
        page.get_by_role("button", name="Close").click()
        page.locator("#miner-connected").select_option("")
        page.wait_for_function(
            f"() => document.querySelector(\"#miners tr[data-miner-id='{miner_id}']\")"
            "?.dataset.status === 'banned'",
            timeout=ms(10),
        )
        # Started again with the same key, it is refused at its hello.
        again = MinerProcesses(server, 1, tmp_path / "keys")
        assert again.proc.wait(timeout(15)) != 0
        assert "4011" in again.log.read_text()
        assert client.get(f"/api/v1/miners/{miner_id}").json()["status"] == "banned"
    assert page.requests.elsewhere == []


def test_docs_try_it_out_on_health_stays_on_the_machine(tabs: Tabs, server: Server) -> None:
    page = tabs.new()
    requests = Requests(page, server)
    tabs.goto(page, "/docs", connected=False)
    operation = page.locator("#operations-service-get_health")
    operation.wait_for(timeout=ms(15))
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    response = operation.locator(".live-responses-table tbody .response-col_description")
    response.first.wait_for(timeout=ms(10))
    assert '"status": "ok"' in response.first.inner_text()
    assert any(url.endswith("/health") for url in requests.seen)
    assert requests.elsewhere == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs.png"))


def test_the_miner_page_shows_the_volunteers_credit_and_rank(tabs: Tabs, server: Server) -> None:
    page = tabs.open("/")
    with server.client() as client:
        task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS}).json()["taskId"]
        wait_task(client, task_id)
    # Every accepted result earned the kind's cost (1 for sentiment); the tab asks again
    # within a few seconds of its accepted count changing.
    page.wait_for_function(
        f"() => window.qortexMiner.credit === {len(TWEETS)} && window.qortexMiner.rank === 1",
        timeout=ms(20),
    )
    assert page.get_by_test_id("credit").inner_text() == str(len(TWEETS))
    assert page.get_by_test_id("rank").inner_text() == "#1"
    assert page.get_by_role("link", name="Console").get_attribute("href") == "dashboard"
    # The same base sheet as the console's, with the miner page's own sizes on top.
    assert looks(page) == {"background": LIGHT_BG, "fontSize": "16px", "cardRadius": "14px"}
