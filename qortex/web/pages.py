"""What a browser loads: the miner page, the console, their files, and each kind's JavaScript.

Everything is plain files shipped inside the package (no build step, no CDN),
and every URL the page uses is relative, so the page works unchanged behind a
tunnel or a reverse proxy that mounts Qortex under a path prefix.
"""

from __future__ import annotations

import re
from importlib.resources import files
from importlib.resources.abc import Traversable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from qortex.core.kinds import Kind
from qortex.errors import NotFound
from qortex.shapes import KindInfo, Kinds
from qortex.web.http import JSON

_FILE = re.compile(r"[A-Za-z0-9_.-]+\.(js|txt|json)")
_TYPES = {"js": "text/javascript", "txt": "text/plain", "json": "application/json"}
_STATIC = StaticFiles(packages=[("qortex.web", "static")])


def _html(name: str) -> Response:
    html = files("qortex.web").joinpath("static", name).read_bytes()
    return Response(html, media_type="text/html", headers={"cache-control": "no-cache"})


def _page(request: Request) -> Response:
    return _html("miner.html")


def _dashboard(request: Request) -> Response:
    """The operator's console; it signs in with the API key itself, in the tab."""
    return _html("dashboard.html")


def _browser(kind: Kind) -> Traversable | None:
    module = kind.browser_module
    return module if module is not None and module.is_file() else None


def _module(request: Request) -> Traversable:
    name = request.path_params["name"]
    kinds = request.app.state.coordinator.kinds
    module = _browser(kinds.get(name)) if name in kinds else None
    if module is None:
        raise NotFound(f"no browser implementation for kind {name!r}")
    return module


async def kind_module(request: Request) -> Response:
    module = _module(request)
    return Response(
        module.read_bytes(), media_type="text/javascript", headers={"cache-control": "no-cache"}
    )


async def kind_file(request: Request) -> Response:
    """One of the files a kind declares in ``browser_files``, and nothing else of its folder."""
    filename = request.path_params["file"]
    match = _FILE.fullmatch(filename)
    if match is None:
        raise NotFound(f"no file {filename!r}")
    module = _module(request)
    kind = request.app.state.coordinator.kinds.get(request.path_params["name"])
    declared = filename in getattr(kind, "browser_files", ())
    directory = getattr(module, "parent", None)  # pathlib and zipfile paths both have one
    target = directory.joinpath(filename) if declared and directory is not None else None
    if target is None or getattr(target, "is_symlink", bool)() or not target.is_file():
        raise NotFound(f"no file {filename!r} for kind {request.path_params['name']!r}")
    return Response(
        target.read_bytes(), media_type=_TYPES[match[1]], headers={"cache-control": "no-cache"}
    )


async def list_kinds(request: Request) -> JSON:
    """The kinds this coordinator runs, which of them a browser can compute, and their limits.

    ``limits`` (a kind's optional attribute) lets a client fit its input to
    this coordinator, as ``qortex submit`` does when it splits a long file.
    """
    kinds = request.app.state.coordinator.kinds
    listed = []
    for name in kinds:
        kind = kinds.get(name)
        limits = dict(getattr(kind, "limits", None) or {})
        listed.append(KindInfo(name, kind.browser_module is not None, limits))
    return JSON(Kinds(listed))


routes = [
    Route("/", _page, methods=["GET"]),
    Route("/mine", _page, methods=["GET"]),
    Route("/dashboard", _dashboard, methods=["GET"]),
    Route("/api/v1/kinds", list_kinds, methods=["GET"]),
    Route("/kinds/{name}.js", kind_module, methods=["GET"]),
    Route("/kinds/{name}/{file}", kind_file, methods=["GET"]),
    Mount("/static", app=_STATIC, name="static"),
]
