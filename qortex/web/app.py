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
from functools import partial

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from qortex import __version__
from qortex.coordinator import Coordinator
from qortex.core.kinds import KindRegistry
from qortex.core.limits import Limiter
from qortex.errors import QortexError, ServiceUnavailable, TooManyRequests
from qortex.events import EventBus
from qortex.keys import KeyRing
from qortex.logs import AccessLog
from qortex.plugins import load_kinds
from qortex.settings import Settings
from qortex.shapes import Error, Health
from qortex.store.database import Store
from qortex.web import (
    apidocs,
    control,
    eventlog,
    keys,
    metrics,
    miners,
    openapi,
    pages,
    reputation,
    socket,
    sse,
    tasks,
    webhooks,
)
from qortex.web.addresses import AddressLimits
from qortex.web.channel import MinerChannel, send_miners_away
from qortex.web.http import JSON
from qortex.web.submit import Idempotency
from qortex.web.verifier import Verifier
from qortex.webhooks.destinations import networks
from qortex.webhooks.outbox import Outbox

log = logging.getLogger("qortex")


async def adopt_new_key(app: Starlette) -> str | None:
    """Make the first admin key once the server listens; returns it, to be shown once.

    Until then the file holds no key nobody knows, and a start that fails
    before listening never replaces a key saved for the CLI that still works.
    """
    if not app.state.needs_first_key:
        return None
    app.state.needs_first_key = False
    key, _ = await app.state.keys.create("admin", ("admin",), app.state.coordinator.clock())
    return key


async def health(request: Request) -> JSON:
    state = request.app.state
    seen = state.coordinator.snapshot()
    try:
        database = "ok" if await state.store.reader.ping() else "unreachable"
    except Exception as exc:  # the point of a health check is to report, not raise
        database = f"unreachable: {exc}"
    writer = state.store.writer
    ok = database == "ok" and writer.failure is None
    writes = "ok" if writer.unavailable is None else f"refused: {writer.unavailable}"
    status = "ok" if ok and writer.unavailable is None else "degraded" if ok else "failing"
    return JSON(
        Health(
            status=status,
            version=__version__,
            base_url=str(request.base_url),  # as clients see it, behind a trusted proxy too
            database=database,
            writes=writes,
            uptime_seconds=round(seen.uptime_seconds, 3),
            miners_connected=seen.miners_connected,
            tasks_running=seen.tasks_running,
            leases_out=seen.leases_out,
            kinds=list(seen.kinds),
        ),
        status_code=200 if status == "ok" else 503,
    )


async def _qortex_error(request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, QortexError)
    headers = None
    if isinstance(exc, TooManyRequests):
        request.app.state.coordinator.count_throttled()
    if isinstance(exc, TooManyRequests | ServiceUnavailable):
        headers = {"retry-after": str(exc.retry_after)}
    error = Error(type(exc).__name__, exc.message, exc.detail or None)
    return JSON(error, status_code=exc.status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, HTTPException)
    return JSON(Error("HTTPError", exc.detail), status_code=exc.status_code, headers=exc.headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client closed before its request was read: nobody to answer, nothing to log."""
    log.debug("client went away during %s %s", request.method, request.url.path)
    return Response(status_code=400)


async def _server_error(request: Request, exc: Exception) -> JSON:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSON(Error("InternalError", "internal server error"), status_code=500)


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
        bus = EventBus(settings.subscriber_bytes)
        extra = {"clock": clock} if clock is not None else {}
        verifier = Verifier(settings.verify_threads) if settings.verify_threads else None
        coordinator = Coordinator(
            settings, store, registry, bus, rng=rng, verifier=verifier, **extra
        )
        app.state.settings = settings
        app.state.store = store
        app.state.bus = bus
        app.state.coordinator = coordinator
        app.state.verifier = verifier
        app.state.api_limiter = Limiter(settings.api_rate, settings.api_burst)
        app.state.idempotency = Idempotency(store.reader)
        app.state.webhook_networks = networks(settings.webhook_allow_networks)
        outbox = app.state.outbox = Outbox(store, bus, settings, coordinator.clock)
        app.state.metrics = metrics.registry_for(coordinator, outbox)
        app.state.address_limits = AddressLimits(settings, coordinator.clock)
        store.writer.on_unavailable = partial(send_miners_away, coordinator)
        try:
            app.state.keys = KeyRing(store)
            app.state.needs_first_key = await app.state.keys.load(
                settings.api_key, coordinator.clock()
            )
            await coordinator.start()
            await outbox.start()
            if on_started is not None:
                on_started()
        except BaseException:
            await store.close()  # its threads would otherwise keep the process alive
            raise
        try:
            yield
        finally:
            await outbox.stop()
            await coordinator.stop()
            await store.close()
            if app.state.verifier is not None:
                app.state.verifier.close()

    routes = [
        Route("/health", health, methods=["GET"]),
        *tasks.routes,
        *eventlog.routes,
        *sse.routes,
        *keys.routes,
        *webhooks.routes,
        *miners.routes,
        *reputation.routes,
        *control.routes,
        *socket.routes,
        *pages.routes,
        *metrics.routes,
        *openapi.routes,
        *apidocs.routes,
    ]
    middleware = [Middleware(AccessLog)]
    if settings.cors_origins:  # otherwise browsers keep other sites' pages out
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["x-api-key", "content-type", "last-event-id", "idempotency-key"],
            )
        )
    application = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            QortexError: _qortex_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _server_error,
        },
    )
    # ``qortex serve`` answers /ws/miner with this, off ASGI (qortex.web.wire).
    application.state.miner_endpoint = partial(MinerChannel, application.state)
    return application
