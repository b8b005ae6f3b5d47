"""``GET /metrics``: the coordinator's counters in Prometheus' text format.

The numbers are read from the coordinator when a scrape arrives, so counting
costs nothing on the hot path; the registry belongs to the app, not the
process, like everything else here.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qortex.coordinator import Coordinator
from qortex.web.auth import require_scope
from qortex.webhooks.outbox import Outbox


class CoordinatorCollector:
    def __init__(self, coord: Coordinator) -> None:
        self.coord = coord

    def collect(self) -> Iterator[Metric]:
        s = self.coord.snapshot()
        yield CounterMetricFamily(
            "qortex_results_accepted", "Results counted", value=s.results_accepted
        )
        refused = CounterMetricFamily(
            "qortex_results_refused", "Results refused, by reason", labels=["reason"]
        )
        for reason, count in sorted(s.results_refused.items()):
            refused.add_metric([reason], count)
        yield refused
        closed = CounterMetricFamily(
            "qortex_miner_closes",
            "Miner sockets closed by the coordinator, by code",
            labels=["code"],
        )
        for code, count in sorted(s.miner_closes.items()):
            closed.add_metric([str(code)], count)
        yield closed
        yield CounterMetricFamily(
            "qortex_microtasks_decided", "Decided", value=s.microtasks_decided
        )
        yield CounterMetricFamily(
            "qortex_microtasks_inconclusive", "Given up", value=s.microtasks_inconclusive
        )
        yield CounterMetricFamily(
            "qortex_copies_reassigned", "Copies expired or released", value=s.copies_reassigned
        )
        yield CounterMetricFamily("qortex_throttled", "Requests answered 429", value=s.throttled)
        yield CounterMetricFamily("qortex_commits", "SQLite transactions", value=s.commits)
        yield GaugeMetricFamily("qortex_miners_connected", "Miners", value=s.miners_connected)
        yield GaugeMetricFamily("qortex_leases_out", "Copies leased", value=s.leases_out)
        yield GaugeMetricFamily(
            "qortex_microtasks_open", "Waiting for a decision", value=s.microtasks_open
        )
        yield GaugeMetricFamily("qortex_tasks_running", "Running tasks", value=s.tasks_running)
        yield GaugeMetricFamily(
            "qortex_event_subscribers", "SSE streams", value=s.event_subscribers
        )
        yield GaugeMetricFamily(
            "qortex_tasks_scheduled", "Tasks waiting for their notBefore", value=s.tasks_scheduled
        )


class OutboxCollector:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def collect(self) -> Iterator[Metric]:
        attempts = CounterMetricFamily(
            "qortex_webhook_attempts",
            "Webhook delivery attempts since start, by outcome",
            labels=["outcome"],
        )
        for outcome in ("delivered", "retried", "failed"):
            attempts.add_metric([outcome], self.outbox.outcomes[outcome])
        yield attempts
        yield GaugeMetricFamily(
            "qortex_webhooks", "Webhook subscriptions", value=len(self.outbox.subscriptions)
        )


def registry_for(coord: Coordinator, outbox: Outbox) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CoordinatorCollector(coord))  # type: ignore[arg-type]
    registry.register(OutboxCollector(outbox))  # type: ignore[arg-type]
    return registry


async def metrics(request: Request) -> Response:
    require_scope(request, "read")
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"])]
