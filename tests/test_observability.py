"""Issue 12, operators at scale: Prometheus metrics at /metrics and JSON logs carrying a request id and the preview id
across the web process and a real Celery worker."""

import io
import json
import logging

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import resolve
from prometheus_client.parser import text_string_to_metric_families

from avatar_creator.models import Preview, PreviewStatus
from lumiku.observability import ContextFilter, JsonFormatter, RequestIdMiddleware
from tests.factories import make_preview, make_project
from tests.fake_image_api import Reply
from tests.test_celery_worker import PROMPT, poll
from tests.worker import start_worker_fixture  # noqa: F401 (the start_worker fixture)

TOKEN = "metrics-token-for-tests"


@pytest.fixture
def scrape(settings, db):
    settings.METRICS_TOKEN = TOKEN

    def get() -> dict:
        response = Client(HTTP_HOST="10.0.3.7:8000").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=")
        return {family.name: family for family in text_string_to_metric_families(response.content.decode())}

    return get


def samples(family, name: str) -> dict:
    return {tuple(sorted(sample.labels.items())): sample.value for sample in family.samples if sample.name == name}


# /metrics


@pytest.mark.django_db
def test_metrics_are_off_without_a_token(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 404


@pytest.mark.django_db
def test_metrics_refuse_a_wrong_token(settings):
    settings.METRICS_TOKEN = TOKEN
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"lumiku_" not in response.content


def test_metrics_count_requests_by_route_and_status(scrape, alice):
    client = Client()
    before = samples(scrape()["lumiku_http_requests"], "lumiku_http_requests_total")
    client.get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {alice.token}")
    client.get("/api/auth/me")
    client.get("/api/no-such-thing")

    after = samples(scrape()["lumiku_http_requests"], "lumiku_http_requests_total")

    def grew(route: str, status: str) -> float:
        key = (("method", "GET"), ("route", route), ("status", status))
        return after.get(key, 0) - before.get(key, 0)

    assert (grew("api/auth/me/?$", "200"), grew("api/auth/me/?$", "401"), grew("^api/", "404")) == (1, 1, 1)
    durations = samples(scrape()["lumiku_http_request_duration_seconds"], "lumiku_http_request_duration_seconds_count")
    assert durations[(("method", "GET"), ("route", "api/auth/me/?$"))] >= 2


def test_metrics_generation_duration_by_model(scrape, alice):
    project = make_project(alice)
    for milliseconds, model in (
        (800, "offline"),
        (22_000, "XLabs-AI/flux-RealismLora"),
        (27_000, "XLabs-AI/flux-RealismLora"),
    ):
        preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED)
        Preview.objects.filter(pk=preview.pk).update(duration_ms=milliseconds, model_used=model)

    family = scrape()["lumiku_generation_duration_seconds"]

    buckets = samples(family, "lumiku_generation_duration_seconds_bucket")
    flux = (("model", "XLabs-AI/flux-RealismLora"),)
    assert buckets[(("le", "20"), *flux)] == 0
    assert buckets[(("le", "25"), *flux)] == 1
    assert buckets[(("le", "30"), *flux)] == 2
    assert buckets[(("le", "+Inf"), *flux)] == 2
    assert buckets[(("le", "1"), ("model", "offline"))] == 1
    assert samples(family, "lumiku_generation_duration_seconds_sum")[flux] == 49.0


def test_metrics_failures_by_code(scrape, alice):
    project = make_project(alice)
    make_preview(alice, project, status=PreviewStatus.FAILED, error_code="GENERATION_TIMEOUT")
    make_preview(alice, project, status=PreviewStatus.FAILED, error_code="GENERATION_TIMEOUT")
    make_preview(alice, project, status=PreviewStatus.FAILED, error_code="GENERATOR_AUTH_FAILED")
    make_preview(alice, project, status=PreviewStatus.QUEUED, error_code="MODEL_LOADING")  # a retry, not a failure

    failures = samples(scrape()["lumiku_generation_failures"], "lumiku_generation_failures_total")

    assert failures == {(("code", "GENERATION_TIMEOUT"),): 2, (("code", "GENERATOR_AUTH_FAILED"),): 1}


def test_metrics_queue_depth(scrape, alice):
    project = make_project(alice)
    for status in (PreviewStatus.QUEUED, PreviewStatus.QUEUED, PreviewStatus.RUNNING, PreviewStatus.SUCCEEDED):
        make_preview(alice, project, status=status)

    depth = samples(scrape()["lumiku_preview_queue_depth"], "lumiku_preview_queue_depth")

    assert depth == {(("status", "queued"),): 2, (("status", "running"),): 1}


def test_metrics_credits_charged(scrape, make_user):
    make_user("spender", credits=30)  # signup 100, then an adjustment of -70

    charged = samples(scrape()["lumiku_credits_charged"], "lumiku_credits_charged_total")

    assert charged == {(("reason", "adjustment"),): 70}


# Request ids and JSON logs


@pytest.mark.django_db
def test_request_id_is_made_and_echoed():
    response = Client().get("/healthz/x")
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("given", "kept"), [("trace-abc.123", True), ("trace\n", False), ("bad id", False), ("x" * 65, False)]
)
def test_request_id_from_the_caller_is_kept_only_when_sane(given, kept):
    response = Client().get("/api/no-such-thing", HTTP_X_REQUEST_ID=given)
    assert (response["X-Request-ID"] == given) is kept


def _json_log_of(view, path: str, **headers) -> tuple[dict, HttpResponse]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.observability")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        request = RequestFactory().get(path, **headers)
        request.resolver_match = resolve(path)
        response = RequestIdMiddleware(lambda request: view(log, request))(request)
    finally:
        log.removeHandler(handler)
    return json.loads(stream.getvalue().strip()), response


def test_json_log_line_carries_the_request_and_preview_ids(alice):
    preview = make_preview(alice, make_project(alice))

    def view(log, request):
        log.info("looked at %s", "the preview")
        return HttpResponse("ok")

    entry, response = _json_log_of(view, f"/api/avatar-creator/previews/{preview.pk}", HTTP_X_REQUEST_ID="trace-1")

    assert (entry["message"], entry["level"], entry["logger"]) == (
        "looked at the preview",
        "INFO",
        "tests.observability",
    )
    assert (entry["request_id"], entry["preview_id"]) == ("trace-1", str(preview.pk))
    assert response["X-Request-ID"] == "trace-1"


def test_json_log_line_outside_a_preview_route_has_no_preview_id():
    def view(log, request):
        log.warning("plain")
        return HttpResponse("ok")

    entry, response = _json_log_of(view, "/api/auth/me")

    assert (entry["request_id"], entry["preview_id"]) == (response["X-Request-ID"], "-")


def test_worker_logs_carry_the_request_id_and_preview_id(start_worker, fake_image_api, alice_api, alice):
    worker = start_worker(LOG_FORMAT="json")
    fake_image_api.script(Reply("server_error"), Reply("ok"))
    url = f"/api/avatar-creator/projects/{make_project(alice).pk}/avatars/generate-preview"
    headers = {"HTTP_PREFER": "respond-async", "HTTP_X_REQUEST_ID": "trace-ops-12345"}
    preview_id = alice_api.post(url, {"prompt": PROMPT}, format="json", **headers).json()["preview"]["id"]
    assert poll(alice_api, preview_id)["status"] == "succeeded", worker.log()

    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    retrying = [line for line in lines if "retrying" in line["message"]]
    assert retrying, worker.log()
    assert {(line["request_id"], line["preview_id"]) for line in retrying} == {("trace-ops-12345", preview_id)}


def test_grafana_dashboard_queries_only_exposed_metrics(scrape, alice, make_user):
    import re
    from pathlib import Path

    make_user("spender", credits=30)
    project = make_project(alice)
    preview = make_preview(alice, project, status=PreviewStatus.FAILED, error_code="GENERATION_FAILED")
    Preview.objects.filter(pk=preview.pk).update(duration_ms=1000, model_used="offline")
    Client().get("/api/auth/me")
    exposed = {sample.name for family in scrape().values() for sample in family.samples}
    dashboard = json.loads((Path(__file__).resolve().parent.parent / "docker" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\blumiku_[a-z_]+", target["expr"])
    }
    assert len(queried) == 7
    assert queried - exposed == set()
