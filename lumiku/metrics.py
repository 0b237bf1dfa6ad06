"""Prometheus metrics at `GET /metrics` (prometheus_client), for operators at scale.

- Requests: `lumiku_http_requests_total{method, route, status}` and `lumiku_http_request_duration_seconds{method,
  route}`, counted by MetricsMiddleware in each web process (`route` is the URL pattern, never the raw path). A
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
from django.db.models import Count, Q, Sum
from django.http import HttpResponse
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


def _count(request, response, started: float) -> None:
    match = getattr(request, "resolver_match", None)
    route = (match.route or match.view_name) if match is not None else "unmatched"
    method = request.method if request.method in _METHODS else "OTHER"
    REQUESTS.labels(method, route, str(response.status_code)).inc()
    REQUEST_DURATION.labels(method, route).observe(time.perf_counter() - started)


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
