"""The pages' own files: everything a page or module names is served, and nothing unused ships.

The pages load plain files (no build step), so a file renamed or a module
split without its new file listed shows up here as a 404 or as a file no page
reaches, before any browser runs.
"""

from __future__ import annotations

import re
from importlib.resources import files

from starlette.testclient import TestClient

STATIC = files("qortex.web").joinpath("static")
PAGES = ("miner.html", "dashboard.html", "docs.html")
# src="static/x.js", href="static/x.css"; from "./x.js"; new URL("x.js", import.meta.url)
IN_HTML = re.compile(r'(?:src|href)="static/([^"]+)"')
IN_MODULE = re.compile(
    r'(?:from\s+|import\s*\(\s*)"\./([^"]+)"|new URL\("([^"/]+\.js)", import\.meta\.url\)'
)
TYPES = {"js": "text/javascript", "css": "text/css", "html": "text/html"}


def reached() -> set[str]:
    """Every static file the pages reach, following imports from module to module."""
    seen: set[str] = set()
    todo = [name for page in PAGES for name in IN_HTML.findall(STATIC.joinpath(page).read_text())]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name.endswith(".js"):
            for found in IN_MODULE.findall(STATIC.joinpath(name).read_text()):
                todo.append(found[0] or found[1])
    return seen


def test_every_file_a_page_reaches_is_served_with_its_type(client: TestClient) -> None:
    names = reached()
    assert {"base.css", "miner.js", "miner-connection.js", "worker.js", "ticker.js"} <= names
    for name in sorted(names):
        answer = client.get(f"/static/{name}", headers={"x-api-key": ""})
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].startswith(TYPES[name.rsplit(".", 1)[1]]), name


def test_no_static_file_ships_that_no_page_reaches() -> None:
    shipped = {entry.name for entry in STATIC.iterdir() if entry.is_file()}
    assert shipped - set(PAGES) - reached() == set()
