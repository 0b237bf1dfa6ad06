"""Prometheus metrics at `GET /metrics` (prometheus_client), for operators at scale.

- Requests: `lumiku_http_requests_total{method, route, status}` and `lumiku_http_request_duration_seconds{method,
  route}`, counted by MetricsMiddleware in each web process (`route` is the URL pattern, never the raw path); under
  lumiku.asgi by CountedRequests, once per client request however many Django calls a waiting route makes. A
  server with several worker processes (granian --workers) sets PROMETHEUS_MULTIPROC_DIR (an empty folder per start;
  the image's entrypoint empties it) so every worker's counts are summed.
- The product, read from the database at scrape time so that the web processes and the Celery workers agree:
  `lumiku_generation_duration_seconds{model}` (a histogram of the generator calls of finished previews),
  `lumiku_generation_failures_total{code}` (previews that ended failed, by error code),
  `lumiku_preview_queue_depth{status}` (queued and running previews now) and
  `lumiku_credits_charged_total{reason}` (credits taken from balances, from the append-only ledger).

`/metrics` is off unless METRICS_TOKEN is set; the scraper then sends `Authorization: Bearer <METRICS_TOKEN>`. Like
the health probes it is answered before the Host check, so a scraper may use the container's address.
"""

import logging
import os
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import get_script_prefix
from django.db.models import Count, Q, Sum
from django.http import HttpResponse
from django.urls import Resolver404, resolve
from django.utils.crypto import constant_time_compare
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from lumiku.middleware import DualModeMiddleware

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds: FLUX answers in 20-30 s on the real model, the offline generator in well under one.
GENERATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 15, 20, 25, 30, 45, 60, 90, 120, 180)

_registry = CollectorRegistry()
REQUESTS = Counter("lumiku_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=_registry)
REQUEST_DURATION = Histogram(
    "lumiku_http_request_duration_seconds",
    "Time to answer an HTTP request (until the response object exists; streams continue after it).",
    ["method", "route"],
    registry=_registry,
)


class DatabaseCollector:
    """The product's figures, counted from the database on every scrape."""

    def describe(self):
        return []

    def collect(self):
        from avatar_creator.models import CreditLedgerEntry, Preview, PreviewStatus

        try:
            durations = list(_generation_durations(Preview))
            failures = list(
                Preview.objects.filter(status__in=[PreviewStatus.FAILED, PreviewStatus.EXPIRED])
                .exclude(error_code="")
                .values_list("error_code")
                .annotate(count=Count("pk"))
                .order_by("error_code")
            )
            depth = dict(
                Preview.objects.filter(status__in=[PreviewStatus.QUEUED, PreviewStatus.RUNNING])
                .values_list("status")
                .annotate(count=Count("pk"))
                .order_by("status")
            )
            charged = list(
                CreditLedgerEntry.objects.filter(delta__lt=0)
                .values_list("reason")
                .annotate(total=Sum("delta"))
                .order_by("reason")
            )
        except Exception:
            logger.exception("The database metrics could not be read")
            yield GaugeMetricFamily("lumiku_metrics_database_up", "Whether the database metrics could be read.", 0)
            return
        yield GaugeMetricFamily("lumiku_metrics_database_up", "Whether the database metrics could be read.", 1)

        histogram = HistogramMetricFamily(
            "lumiku_generation_duration_seconds",
            "Generator call time of finished previews, by model.",
            labels=["model"],
        )
        for model, buckets, total_seconds in durations:
            histogram.add_metric([model], buckets, total_seconds)
        yield histogram

        failed = CounterMetricFamily(
            "lumiku_generation_failures", "Previews that ended failed, by error code.", labels=["code"]
        )
        for code, count in failures:
            failed.add_metric([code], count)
        yield failed

        queue = GaugeMetricFamily("lumiku_preview_queue_depth", "Previews waiting or running now.", labels=["status"])
        for status in (PreviewStatus.QUEUED, PreviewStatus.RUNNING):
            queue.add_metric([status.value], depth.get(status.value, 0))
        yield queue

        credits = CounterMetricFamily(
            "lumiku_credits_charged", "Credits taken from balances, by ledger reason.", labels=["reason"]
        )
        for reason, total in charged:
            credits.add_metric([reason], -total)
        yield credits


def _generation_durations(preview_model):
    """(model, cumulative buckets, sum of seconds) for every model, from one grouped query."""
    bounds = {f"le{index}": bound for index, bound in enumerate(GENERATION_BUCKETS)}
    rows = (
        preview_model.objects.exclude(duration_ms=None)
        .exclude(model_used="")
        .values("model_used")
        .annotate(
            count=Count("pk"),
            total_ms=Sum("duration_ms"),
            **{name: Count("pk", filter=Q(duration_ms__lte=bound * 1000)) for name, bound in bounds.items()},
        )
        .order_by("model_used")
    )
    for row in rows:
        buckets = [(f"{bound:g}", row[name]) for name, bound in bounds.items()] + [("+Inf", row["count"])]
        yield row["model_used"], buckets, (row["total_ms"] or 0) / 1000


_registry.register(DatabaseCollector())


def _scrape_registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return _registry
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(DatabaseCollector())
    return registry


def _scrape(request) -> HttpResponse:
    expected = f"Bearer {settings.METRICS_TOKEN}"
    if not constant_time_compare(request.headers.get("Authorization", ""), expected):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = HttpResponse(generate_latest(_scrape_registry()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


def _is_scrape(request) -> bool:
    return bool(settings.METRICS_TOKEN) and request.path_info.rstrip("/") == METRICS_PATH


# Under lumiku.asgi a client's request is counted by CountedRequests, once, as the client saw it: the waiting routes
# call Django several times for one request (the status read again after each change, generate-preview asked with
# respond-async first), and each call would otherwise be counted as a request of its own, with its own short time.
_COUNTED_ONCE = "lumiku.counted_once"
CLIENT_CLOSED = 499


def _observe(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "OTHER"
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_DURATION.labels(method, route).observe(seconds)


def _count(request, response, started: float) -> None:
    route = _route_label(getattr(request, "resolver_match", None))
    scope = getattr(request, "scope", None) or request.META.get("asgi.scope")  # a2wsgi keeps the ASGI scope here
    once = scope.get(_COUNTED_ONCE) if scope else None
    if once is not None:
        once.setdefault("call", (request.path_info, route))  # the first call's route names the client's request
        return
    _observe(request.method, route, response.status_code, time.perf_counter() - started)


class CountedRequests:
    """ASGI middleware in front of lumiku.asgi's whole application: each HTTP request is counted once, with the method
    and status the client saw and the time until its answer started (for a wait, the whole wait; for an event
    stream, until the stream opened), under the route of the first Django call made for it, or of the client's own
    path when that call asked another (the event stream checks with the status read). A client that left before its
    answer started (a wait it gave up on) is counted with status 499, nginx's "client closed request", and the time
    until the server noticed. The scrape itself, answered by no Django call, is not counted, as under WSGI."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        once: dict = {}
        started = time.perf_counter()

        def observe(status: int) -> None:
            called = once.get("call", (None, None))  # none when the client left before Django's call answered
            _observe(scope["method"], _route_asked(scope, *called), status, time.perf_counter() - started)

        async def counted_send(message):
            # Counted as the answer starts (the Django calls made for it are over by then), before the client has it;
            # an ASGI answer starts once (the Django calls' own answers go to their own `send`).
            if message["type"] == "http.response.start":
                once["answered"] = True
                if "call" in once:
                    observe(message["status"])
            await send(message)

        status = CLIENT_CLOSED
        try:
            await self.app({**scope, _COUNTED_ONCE: once}, receive, counted_send)
        except Exception:  # not a cancellation (a BaseException): that stays a client gone
            status = 500  # the server answers it so
            raise
        finally:
            if "answered" not in once:
                observe(status)


def _route_asked(scope, called_path: str | None, called_route: str | None) -> str:
    path = scope["path"].removeprefix(get_script_prefix(scope))  # request.path_info, as Django's ASGIRequest cuts it
    if path == called_path:
        return called_route
    try:
        return _route_label(resolve(path))
    except Resolver404:
        return _route_label(None)


def _route_label(match) -> str:
    """The `route` label of a request: its URL pattern (never the raw path), or "unmatched"."""
    return (match.route or match.view_name) if match is not None else "unmatched"


class MetricsMiddleware(DualModeMiddleware):
    def call(self, request):
        if _is_scrape(request):
            return _scrape(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _count(request, response, started)
        return response

    async def acall(self, request):
        if _is_scrape(request):
            return await sync_to_async(_scrape)(request)
        started = time.perf_counter()
        response = await self.get_response(request)
        _count(request, response, started)
        return response
