"""``create_app(settings)``: the whole coordinator as one ASGI app.

The lifespan opens the store, recovers the coordinator from it and makes sure
a client API key exists; routes come from one small module per concern.
Errors are answered outermost-first as JSON: our own exceptions carry their
status, Starlette's carry theirs, and anything else is a logged 500.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.routing import Route

from qortex import __version__
from qortex.coordinator import Coordinator
from qortex.core.kinds import KindRegistry
from qortex.core.limits import Limiter
from qortex.errors import QortexError, TooManyRequests
from qortex.events import EventBus
from qortex.plugins import load_kinds
from qortex.settings import Settings
from qortex.store.database import Store
from qortex.store.facts import INSERT_META
from qortex.web import (
    apidocs,
    control,
    metrics,
    miners,
    openapi,
    pages,
    reputation,
    socket,
    sse,
    tasks,
)
from qortex.web.auth import META_KEY, hash_key, new_key
from qortex.web.http import JSON
from qortex.web.verifier import Verifier

log = logging.getLogger("qortex")


async def _api_key_hash(settings: Settings, store: Store) -> tuple[str, str | None]:
    """The configured key's hash, or the stored one, or a new key's hash and the key.

    A new key is kept in memory only: ``adopt_new_key`` stores its hash once
    the server listens, so a start that fails leaves neither a stored hash
    nobody knows the key to, nor a saved key replaced by one that never worked.
    """
    if settings.api_key:
        return hash_key(settings.api_key), None
    stored = await store.reader.meta(META_KEY)
    if stored:
        return stored, None
    key = new_key()
    return hash_key(key), key


async def adopt_new_key(app: Starlette) -> str | None:
    """Store the hash of the key this start made, and return the key to show once."""
    key: str | None = app.state.new_api_key
    if key is not None:
        await app.state.store.writer.write([(INSERT_META, (META_KEY, hash_key(key)))])
        app.state.new_api_key = None
    return key


async def health(request: Request) -> JSON:
    state = request.app.state
    coord = state.coordinator
    try:
        database = "ok" if await state.store.reader.ping() else "unreachable"
    except Exception as exc:  # the point of a health check is to report, not raise
        database = f"unreachable: {exc}"
    ok = database == "ok" and state.store.writer.failure is None
    return JSON(
        {
            "status": "ok" if ok else "failing",
            "version": __version__,
            "baseUrl": str(request.base_url),  # as clients see it, behind a trusted proxy too
            "database": database,
            "uptimeSeconds": round(coord.clock() - coord.started_at, 3),
            "minersConnected": len(coord.connections),
            "tasksRunning": len(coord.table.tasks),
            "leasesOut": len(coord.table.leases),
            "kinds": list(coord.kinds),
        },
        status_code=200 if ok else 503,
    )


async def _qortex_error(request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, QortexError)
    headers = None
    if isinstance(exc, TooManyRequests):
        request.app.state.coordinator.stats.throttled += 1
        headers = {"retry-after": str(exc.retry_after)}
    return JSON(exc.to_json(), status_code=exc.status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, HTTPException)
    return JSON(
        {"error": "HTTPError", "message": exc.detail},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _server_error(request: Request, exc: Exception) -> JSON:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSON({"error": "InternalError", "message": "internal server error"}, status_code=500)


def create_app(
    settings: Settings,
    kinds: KindRegistry | None = None,
    clock: Callable[[], float] | None = None,
    rng: random.Random | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
    on_started: Callable[[], None] | None = None,
) -> Starlette:
    """The coordinator as an ASGI app.

    ``on_fatal`` runs if the store can no longer commit; ``on_started`` once
    recovery has rebuilt memory from the file and the app is about to serve.
    A client API key made on this start is kept until the runner, once the
    server listens, calls ``adopt_new_key`` to store it and show it.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        registry = kinds if kinds is not None else load_kinds(settings)
        store = await Store.open(settings.db, settings.sync, settings.commit_batch)
        store.writer.on_failure = on_fatal
        bus = EventBus()
        extra = {"clock": clock} if clock is not None else {}
        coordinator = Coordinator(settings, store, registry, bus, rng=rng, **extra)
        app.state.settings = settings
        app.state.store = store
        app.state.bus = bus
        app.state.coordinator = coordinator
        app.state.verifier = Verifier(settings.verify_threads) if settings.verify_threads else None
        coordinator.verifier = app.state.verifier
        app.state.api_limiter = Limiter(settings.api_rate, settings.api_burst)
        app.state.metrics = metrics.registry_for(coordinator)
        try:
            app.state.api_key_hash, app.state.new_api_key = await _api_key_hash(settings, store)
            await coordinator.start()
            if on_started is not None:
                on_started()
        except BaseException:
            await store.close()  # its threads would otherwise keep the process alive
            raise
        try:
            yield
        finally:
            await coordinator.stop()
            await store.close()
            if app.state.verifier is not None:
                app.state.verifier.close()

    routes = [
        Route("/health", health, methods=["GET"]),
        *tasks.routes,
        *sse.routes,
        *miners.routes,
        *reputation.routes,
        *control.routes,
        *socket.routes,
        *pages.routes,
        *metrics.routes,
        *openapi.routes,
        *apidocs.routes,
    ]
    middleware = []
    if settings.cors_origins:  # otherwise browsers keep other sites' pages out
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "PATCH"],
                allow_headers=["x-api-key", "content-type", "last-event-id"],
            )
        )
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            QortexError: _qortex_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
