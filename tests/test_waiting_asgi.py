"""The waiting routes as production serves them: lumiku.asgi under a real uvicorn server, a real socket, the event
bus on real Redis (and a real Celery worker for the waiting generate-preview). See avatar_creator/api/waiting.py.

The server runs in a thread of this process, so it reads the test database and these settings."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
import redis
from django.db import connection

from avatar_creator import events, services
from avatar_creator.api import streams
from avatar_creator.errors import http_status_for
from avatar_creator.models import Avatar, CreditAccount, CreditHold, CreditLedgerEntry, Preview, PreviewStatus
from tests.factories import make_preview, make_project
from tests.fake_image_api import Reply
from tests.polling import wait_until
from tests.services import redis_url, require_redis
from tests.test_credits_concurrency import _at_once as at_once
from tests.worker import start_worker_fixture  # noqa: F401 - used as a fixture

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "Professional Indonesian woman with modern hijab, smiling"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(settings, monkeypatch, *, root_path=""):
    """lumiku.asgi's application under uvicorn on 127.0.0.1 (behind `root_path`, a script prefix, when given), events
    through real Redis; yields its port."""
    import uvicorn

    from lumiku.asgi import application

    require_redis()
    settings.AVATAR_EVENTS_URL = redis_url()
    # The server's threads close their connections after each request or read, so none outlives the test database.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    port = free_port()
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, lifespan="off", log_level="warning", root_path=root_path
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    assert wait_until(lambda: instance.started, timeout=20, interval=0.05), "uvicorn did not start"
    yield port
    instance.should_exit = True
    thread.join(20)


@pytest.fixture
def server(settings, monkeypatch):
    yield from _serve(settings, monkeypatch)


@pytest.fixture
def prefixed_server(settings, monkeypatch):
    """The same, mounted under /lumiku by a proxy that strips the prefix (uvicorn's --root-path): the scope's
    `root_path` is /lumiku and its `path` carries the prefix, as the ASGI specification says."""
    yield from _serve(settings, monkeypatch, root_path="/lumiku")


@pytest.fixture
def project(alice):
    return make_project(alice)


def request(port, method, path, *, token=None, headers=None, body=None, timeout=30):
    """(status, headers, parsed JSON body) of one call on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    sent = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    if body is not None:
        sent["Content-Type"] = "application/json"
        body = json.dumps(body)
    conn.request(method, path, body=body, headers=sent)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, response, json.loads(raw) if raw else None


def detail(preview_id) -> str:
    return f"/api/avatar-creator/previews/{preview_id}"


def later(seconds, change, *args):
    """Change previews from another thread, as a worker would (its own database connection, closed after)."""

    def run():
        try:
            change(*args)
        finally:
            connection.close()

    timer = threading.Timer(seconds, run)
    timer.start()
    return timer


def cancel(*preview_ids):
    for preview_id in preview_ids:
        services.preview_cancel(preview=Preview.objects.get(pk=preview_id))


class EventReader:
    """A text/event-stream read off a raw socket: (id, data) of each `preview` event, comments counted."""

    def __init__(self, port, path, *, token=None, last_event_id=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.conn.request("GET", path, headers=headers)
        self.response = self.conn.getresponse()
        self.comments = 0

    def next_event(self) -> dict | None:
        """The next `preview` event; None at the end of the stream."""
        fields = {}
        while True:
            line = self.response.readline().decode()
            if not line:
                return None
            line = line.rstrip("\n")
            if not line:
                if fields.get("event") == "preview":
                    return {"id": int(fields["id"]), "data": json.loads(fields["data"])}
                fields = {}
            elif line.startswith(":"):
                self.comments += 1
            else:
                name, _, value = line.partition(": ")
                fields[name] = value

    def close(self):
        self.conn.close()


def subscribers(preview_id) -> int:
    client = redis.Redis.from_url(redis_url())
    return dict(client.pubsub_numsub(events.preview_channel(preview_id)))[events.preview_channel(preview_id).encode()]


def listening_connections() -> int:
    """Redis connections subscribed to something, on the tests' Redis db."""
    client = redis.Redis.from_url(redis_url())
    db = client.connection_pool.connection_kwargs.get("db", 0)
    return sum(1 for entry in client.client_list() if int(entry["db"]) == db and int(entry["sub"]) > 0)


# Prefer: wait


def test_prefer_wait_answers_when_the_preview_changes_with_django_headers(server, alice, project):
    queued = make_preview(alice, project)
    later(0.5, cancel, queued.pk)
    started = time.monotonic()
    status, response, body = request(server, "GET", detail(queued.pk), token=alice.token, headers={"Prefer": "wait=20"})
    elapsed = time.monotonic() - started

    assert (status, body["preview"]["status"], response.getheader("Preference-Applied")) == (200, "canceled", "wait=20")
    assert 0.5 <= elapsed < 3
    # The headers Django's middleware adds are there, as on any other answer.
    assert len(response.getheader("X-Request-ID")) == 32
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert int(response.getheader("Content-Length")) == len(json.dumps(body, separators=(",", ":")).encode())


def test_prefer_wait_on_head_waits_too_and_answers_headers_only(server, alice, project):
    queued = make_preview(alice, project)
    later(0.5, cancel, queued.pk)
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    conn.request("HEAD", detail(queued.pk), headers={"Authorization": f"Bearer {alice.token}", "Prefer": "wait=20"})
    response = conn.getresponse()
    assert (response.status, response.getheader("Preference-Applied"), response.read()) == (200, "wait=20", b"")
    conn.close()
    assert 0.5 <= time.monotonic() - started < 3
    assert int(response.getheader("Content-Length")) > 0


def counted_requests(settings) -> dict:
    """The request metrics as scraped: {(family, method, route, status): value} of the count and the seconds."""
    from django.test import Client
    from prometheus_client.parser import text_string_to_metric_families

    scraped = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}").content.decode()
    families = {family.name: family for family in text_string_to_metric_families(scraped)}
    found = {}
    for family, suffix in (("lumiku_http_requests", "_total"), ("lumiku_http_request_duration_seconds", "_sum")):
        for sample in families[family].samples:
            if sample.name == family + suffix:
                labels = sample.labels
                found[(family, labels["method"], labels["route"], labels.get("status"))] = sample.value
    return found


def test_metrics_count_each_client_request_once_as_the_client_saw_it(server, alice, project, settings):
    """A wait reads the status through Django again after each change, and the event stream checks with the status
    read: each is still one request in the metrics, under its own route, timed until its answer started. A client
    that leaves a wait before its answer is counted too, with status 499 (client closed request)."""
    from django.urls import resolve

    settings.METRICS_TOKEN = "metrics-token-for-tests"
    requests = partial(counted_requests, settings)
    queued, streamed, left = (make_preview(alice, project) for _ in range(3))
    before = requests()
    later(0.4, cancel, queued.pk)
    assert request(server, "GET", detail(queued.pk), token=alice.token, headers={"Prefer": "wait=20"})[0] == 200
    reader = EventReader(server, f"{detail(streamed.pk)}/events", token=alice.token)
    reader.next_event()
    cancel(streamed.pk)
    assert reader.next_event() is not None and reader.next_event() is None
    reader.close()
    assert request(server, "GET", "/api/auth/me", token=alice.token)[0] == 200
    status_read, stream = resolve(detail(queued.pk)).route, resolve(f"{detail(queued.pk)}/events").route
    leaving = http.client.HTTPConnection("127.0.0.1", server, timeout=5)
    leaving.request("GET", detail(left.pk), headers={"Authorization": f"Bearer {alice.token}", "Prefer": "wait=60"})
    wait_until(lambda: subscribers(left.pk), interval=0.05)
    leaving.close()
    closed = ("lumiku_http_requests", "GET", status_read, "499")
    wait_until(lambda: requests().get(closed, 0) != before.get(closed, 0), interval=0.05)
    after = requests()

    grew = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    counts = {key[1:]: value for key, value in grew.items() if key[0] == "lumiku_http_requests"}
    seconds = {key[1:3]: value for key, value in grew.items() if key[0] != "lumiku_http_requests"}
    assert counts == {
        ("GET", status_read, "200"): 1,
        ("GET", stream, "200"): 1,
        ("GET", "api/auth/me/?$", "200"): 1,
        ("GET", status_read, "499"): 1,
    }
    assert seconds[("GET", status_read)] >= 0.4  # the whole wait, not the last read's few milliseconds


def test_waits_behind_a_script_prefix_hold_no_thread_and_count_under_their_route(prefixed_server, alice, project,
                                                                                settings):  # fmt: skip
    """Behind a proxy's prefix the waits are still served without a thread each: more of them than the server has
    request threads, and a cheap request is answered meanwhile (were they Django's, it would queue behind them);
    the metrics count them under the status read's route."""
    from django.urls import resolve

    from lumiku.asgi import WEB_THREADS

    settings.METRICS_TOKEN = "metrics-token-for-tests"
    previews = [make_preview(alice, project) for _ in range(WEB_THREADS + 4)]
    before = counted_requests(settings)
    with ThreadPoolExecutor(len(previews)) as pool:
        calls = [
            pool.submit(request, prefixed_server, "GET", detail(p.pk), token=alice.token, headers={"Prefer": "wait=30"})
            for p in previews
        ]
        wait_until(lambda: sum(subscribers(p.pk) for p in previews) >= len(previews), timeout=15)
        cheap_started = time.monotonic()
        assert request(prefixed_server, "GET", "/api/auth/me", token=alice.token)[0] == 200
        cheap = time.monotonic() - cheap_started
        cancel(*[p.pk for p in previews])
        answers = [call.result(timeout=40) for call in calls]

    assert [(status, body["preview"]["status"]) for status, _, body in answers] == [(200, "canceled")] * len(previews)
    assert cheap < 2
    grew = counted_requests(settings)
    key = ("lumiku_http_requests", "GET", resolve(detail(previews[0].pk)).route, "200")
    assert grew[key] - before.get(key, 0) == len(previews)


def test_prefer_wait_answers_the_current_state_when_the_time_is_up(server, alice, project):
    queued = make_preview(alice, project)
    started = time.monotonic()
    status, response, body = request(server, "GET", detail(queued.pk), token=alice.token, headers={"Prefer": "wait=1"})
    assert (status, body["preview"]["status"], response.getheader("Preference-Applied")) == (200, "queued", "wait=1")
    assert 1 <= time.monotonic() - started < 3


def test_prefer_wait_refuses_like_the_status_read(server, alice, bob, project, anon):
    queued = make_preview(alice, project)
    status, response, body = request(server, "GET", detail(queued.pk), token=bob.token, headers={"Prefer": "wait=30"})
    assert (status, body["error"]["code"], response.getheader("Preference-Applied")) == (404, "NOT_FOUND", None)
    status, _, body = request(server, "GET", detail(queued.pk), headers={"Prefer": "wait=30"})
    assert (status, body["error"]["code"]) == (401, "UNAUTHENTICATED")


def test_waits_hold_no_thread_and_let_go_when_the_client_leaves(server, alice, project):
    """Forty waiting calls at once, more than the server has threads for requests: all wait together, a cheap request
    is answered meanwhile, the thread count does not grow with them (the naive way holds forty), and they share one
    Redis connection; a client that hangs up ends its wait (its Redis subscription goes)."""
    from lumiku.asgi import WEB_THREADS

    previews = [make_preview(alice, project) for _ in range(40)]
    assert len(previews) > WEB_THREADS
    before = threading.active_count()
    with ThreadPoolExecutor(40) as pool:
        calls = [
            pool.submit(request, server, "GET", detail(p.pk), token=alice.token, headers={"Prefer": "wait=30"})
            for p in previews
        ]
        wait_until(lambda: sum(subscribers(p.pk) for p in previews) >= 40, timeout=15)
        waiting = sum(subscribers(p.pk) for p in previews)
        during = threading.active_count()
        listening = listening_connections()
        cheap_started = time.monotonic()
        assert request(server, "GET", "/api/auth/me", token=alice.token)[0] == 200
        cheap = time.monotonic() - cheap_started
        cancel(*[p.pk for p in previews])
        answers = [call.result(timeout=30) for call in calls]

    assert [body["preview"]["status"] for _, _, body in answers] == ["canceled"] * 40
    assert (waiting, cheap < 2) == (40, True)
    # The 40 client threads of this test, plus at most the request threads and the event loop's small shared pool.
    assert during - before <= 40 + WEB_THREADS + 12, (before, during)
    # One Redis connection carries all forty subscriptions.
    assert listening == 1

    leaving = make_preview(alice, project)
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=5)
    conn.request("GET", detail(leaving.pk), headers={"Authorization": f"Bearer {alice.token}", "Prefer": "wait=60"})
    wait_until(lambda: subscribers(leaving.pk), interval=0.05)
    assert subscribers(leaving.pk) == 1
    conn.close()
    wait_until(lambda: not subscribers(leaving.pk), interval=0.05)
    assert subscribers(leaving.pk) == 0


# The event stream


def test_event_stream_sends_each_change_then_ends(server, alice, project):
    queued = make_preview(alice, project)
    reader = EventReader(server, f"{detail(queued.pk)}/events", token=alice.token)
    assert reader.response.status == 200
    assert reader.response.getheader("Content-Type") == "text/event-stream"
    assert reader.response.getheader("Cache-Control") == "no-cache"
    first = reader.next_event()
    later(0.3, cancel, queued.pk)
    started = time.monotonic()
    second = reader.next_event()
    assert time.monotonic() - started < 2
    assert reader.next_event() is None  # the stream ended after the finished state
    reader.close()

    assert [first["data"]["status"], second["data"]["status"]] == ["queued", "canceled"]
    assert second["id"] > first["id"]
    assert second["data"] == request(server, "GET", detail(queued.pk), token=alice.token)[2]["preview"]


def test_event_stream_resumes_and_beats(server, alice, project, monkeypatch):
    monkeypatch.setattr(streams, "HEARTBEAT_SECONDS", 0.3)
    done = make_preview(alice, project, status=PreviewStatus.SUCCEEDED)
    reader = EventReader(server, f"{detail(done.pk)}/events", token=alice.token)
    event = reader.next_event()
    reader.close()
    # Resumed with the last id: nothing is sent again, and the stream ends (the preview is finished).
    again = EventReader(server, f"{detail(done.pk)}/events", token=alice.token, last_event_id=event["id"])
    assert again.next_event() is None
    again.close()

    queued = make_preview(alice, project)
    beating = EventReader(server, f"{detail(queued.pk)}/events", token=alice.token)
    beating.next_event()
    later(1.0, cancel, queued.pk)
    assert beating.next_event()["data"]["status"] == "canceled"
    assert beating.comments >= 2
    beating.close()


def test_event_stream_of_another_users_preview_is_404_and_needs_auth(server, alice, bob, project):
    preview = make_preview(alice, project)
    status, _, body = request(server, "GET", f"{detail(preview.pk)}/events", token=bob.token)
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
    status, _, body = request(server, "GET", f"{detail(preview.pk)}/events")
    assert (status, body["error"]["code"]) == (401, "UNAUTHENTICATED")


def test_event_stream_ends_its_subscription_when_the_client_leaves(server, alice, project):
    queued = make_preview(alice, project)
    reader = EventReader(server, f"{detail(queued.pk)}/events", token=alice.token)
    reader.next_event()
    assert subscribers(queued.pk) == 1
    reader.close()
    wait_until(lambda: not subscribers(queued.pk), interval=0.05)
    assert subscribers(queued.pk) == 0


# The default (waiting) generate-preview, with a real Celery worker


def test_waiting_generate_preview_is_woken_and_answers_as_under_wsgi(server, start_worker, fake_image_api, alice):
    fake_image_api.script(Reply("ok", delay=1), Reply("ok", delay=1))
    start_worker()
    project = make_project(alice)
    path = f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview"
    started = time.monotonic()
    status, response, body = request(server, "POST", path, token=alice.token, body={"prompt": PROMPT, "count": 2})
    elapsed = time.monotonic() - started

    assert status == 200, body
    assert [p["status"] for p in body["previews"]] == ["succeeded", "succeeded"]
    assert body["preview"] == body["previews"][0]
    assert all(p["imageBase64"] and p["thumbnailBase64"] for p in body["previews"])
    assert body["message"] == "Preview generated successfully. Review and save if you like it."
    assert response.getheader("Location") is None and response.getheader("Preference-Applied") is None
    assert len(response.getheader("X-Request-ID")) == 32
    assert elapsed < 10


def test_waiting_generate_preview_failure_and_refusals(server, start_worker, fake_image_api, alice, settings):
    fake_image_api.script(Reply("bad_request"))
    start_worker()
    project = make_project(alice)
    path = f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview"
    status, _, body = request(server, "POST", path, token=alice.token, body={"prompt": PROMPT})
    failed = Preview.objects.get(pk=body["error"]["details"]["previewId"])
    assert failed.status == PreviewStatus.FAILED
    assert (status, body["error"]["code"]) == (http_status_for(failed.error_code), failed.error_code)

    # Refused before anything is created: Django's answer as is.
    status, _, body = request(server, "POST", path, token=alice.token, body={"prompt": "short"})
    assert (status, body["error"]["code"]) == (400, "VALIDATION_ERROR")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    status, _, body = request(server, "POST", path, token=alice.token, body={"prompt": PROMPT + "x" * 5000})
    assert (status, body["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert Preview.objects.filter(owner=alice).count() == 1


def test_waiting_generate_preview_that_runs_out_of_time_says_where_to_follow(server, alice, settings, caplog):
    """No worker: the preview stays queued; the wait ends after AVATAR_SYNC_WAIT with 504 and `Location`, logged as
    Django logs a 5xx of its own."""
    from tests.worker import use_broker

    settings.AVATAR_SYNC_WAIT = 1
    use_broker(redis_url())
    try:
        project = make_project(alice)
        path = f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview"
        status, response, body = request(server, "POST", path, token=alice.token, body={"prompt": PROMPT})
    finally:
        use_broker(None)
        redis.Redis.from_url(redis_url()).flushdb()  # the task nobody took
    assert (status, body["error"]["code"]) == (504, "GENERATION_TIMEOUT")
    assert response.getheader("Location") == detail(body["error"]["details"]["previewId"])
    logged = [(r.levelname, r.getMessage(), r.status_code) for r in caplog.records if r.name == "django.request"]
    assert logged == [("ERROR", f"Gateway Timeout: {path}", 504)]


def test_a_wait_outlives_a_broken_bus_connection(server, alice, project):
    """The shared subscription's connection is killed mid-wait: the waiter reads its row again, the connection comes
    back subscribed, and the change after it still wakes the wait."""
    queued = make_preview(alice, project)
    client = redis.Redis.from_url(redis_url())
    db = client.connection_pool.connection_kwargs.get("db", 0)

    def kill_then_cancel():
        for entry in client.client_list():
            if int(entry["db"]) == db and int(entry["sub"]) > 0:
                client.client_kill_filter(_id=entry["id"])
        wait_until(lambda: subscribers(queued.pk), interval=0.05)
        cancel(queued.pk)

    waiting = ThreadPoolExecutor(1).submit(
        request, server, "GET", detail(queued.pk), token=alice.token, headers={"Prefer": "wait=20"}
    )
    wait_until(lambda: subscribers(queued.pk), interval=0.05)
    started = time.monotonic()
    later(0, kill_then_cancel)
    status, _, body = waiting.result(timeout=30)
    assert (status, body["preview"]["status"]) == (200, "canceled")
    assert time.monotonic() - started < 5


# The production server


def test_granian_serves_the_app_as_the_dockerfile_says(alice, project, tmp_path, settings):
    """The Dockerfile's command (its port aside) with the production settings on this test database: probes, a request
    with a body, `Prefer: wait` and the event stream, woken through Redis by a change made here."""
    from tests.worker import _database_url

    require_redis()
    settings.AVATAR_EVENTS_URL = redis_url()  # this process publishes where the server listens
    (cmd,) = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    command = json.loads(cmd[len("CMD ") :])
    port = free_port()
    command[command.index("--host") + 1], command[command.index("--port") + 1] = "127.0.0.1", str(port)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lumiku.settings.production",
        "DJANGO_SECRET_KEY": "test-only-" + "x" * 40,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": _database_url(),
        "DB_CONN_MAX_AGE": "0",
        "REDIS_URL": redis_url(),
        "AVATAR_GENERATOR": "offline",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "PRIVATE_MEDIA_ROOT": str(tmp_path / "private"),
        "LOG_LEVEL": "WARNING",
    }
    log = open(tmp_path / "granian.log", "wb")  # noqa: SIM115 - closed below
    command[0] = str(Path(sys.executable).with_name("granian"))
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if request(port, "GET", "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert request(port, "GET", "/readyz")[0] == 200, (tmp_path / "granian.log").read_text()

        # A body goes through to Django (granian's `receive` is not a coroutine: api/waiting.py adapts it).
        created = request(port, "POST", "/api/avatar-creator/projects", token=alice.token, body={"name": "Granian"})
        assert (created[0], created[2]["project"]["name"]) == (201, "Granian"), (tmp_path / "granian.log").read_text()

        queued = make_preview(alice, project)
        reader = EventReader(port, f"{detail(queued.pk)}/events", token=alice.token)
        assert reader.next_event()["data"]["status"] == "queued"
        later(0.5, cancel, queued.pk)
        started = time.monotonic()
        waited = request(port, "GET", detail(queued.pk), token=alice.token, headers={"Prefer": "wait=10"})
        assert time.monotonic() - started < 5
        assert (waited[0], waited[2]["preview"]["status"], waited[1].getheader("Preference-Applied")) == (
            200, "canceled", "wait=10",
        )  # fmt: skip
        event = reader.next_event()
        assert event["data"]["status"] == "canceled", (tmp_path / "granian.log").read_text()
        reader.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_plain_requests_share_the_processes_redis_connections(server, alice, project, settings):
    """Every request runs in an asyncio context of its own here; Django's cache objects are per context, but the
    Redis connections behind them are the process's (lumiku/cache.py): forty reads do not open forty connections."""
    settings.CACHES = {"default": {"BACKEND": "lumiku.cache.RedisCache", "LOCATION": redis_url()}}
    preview = make_preview(alice, project)
    client = redis.Redis.from_url(redis_url())
    assert request(server, "GET", detail(preview.pk), token=alice.token)[0] == 200
    before = client.info("stats")["total_connections_received"]
    for _ in range(40):
        assert request(server, "GET", detail(preview.pk), token=alice.token)[0] == 200
    assert client.info("stats")["total_connections_received"] - before <= 5


# The legacy one-call generate that waits (no Prefer): credits held by Django, the wait in front of it


def legacy_path(project) -> str:
    return f"/api/avatar-creator/projects/{project.pk}/avatars/generate"


def money(user) -> tuple[int, int, int]:
    """(balance, credits held, avatars) of a user."""
    return (
        CreditAccount.objects.get(user=user).balance,
        CreditHold.objects.filter(account__user=user).count(),
        Avatar.objects.filter(project__owner=user).count(),
    )


def test_legacy_waiting_generate_is_woken_saves_and_charges_as_under_wsgi(
    server, start_worker, fake_image_api, make_user, settings
):
    settings.AVATAR_SAVE_COST = 10
    user = make_user("dewi", credits=30)
    project = make_project(user)
    fake_image_api.script(Reply("ok", delay=1), Reply("ok", delay=1))
    start_worker()
    started = time.monotonic()
    status, response, body = request(
        server, "POST", legacy_path(project), token=user.token, body={"prompt": PROMPT, "name": "Ayu", "count": 2}
    )
    elapsed = time.monotonic() - started

    assert status == 201, body
    assert [avatar["name"] for avatar in body["avatars"]] == ["Ayu - Variation 1", "Ayu - Variation 2"]
    assert all(avatar["imageUrl"].startswith("http://127.0.0.1:") for avatar in body["avatars"])
    assert body["message"] == "2 of 2 avatar(s) generated and saved."
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("Preference-Applied") is None and len(response.getheader("X-Request-ID")) == 32
    assert money(user) == (10, 0, 2)
    assert [e.delta for e in CreditLedgerEntry.objects.filter(account__user=user).order_by("id")] == [
        100,
        -70,
        -10,
        -10,
    ]
    assert elapsed < 10


def test_legacy_waiting_generate_charges_only_what_it_saved(server, start_worker, fake_image_api, make_user, settings):
    """One variation of two fails for good: the other is saved and charged, the answer says 1 of 2, the rest of the
    hold goes back."""
    settings.AVATAR_SAVE_COST = 10
    user = make_user("fajar", credits=30)
    project = make_project(user)
    fake_image_api.script(Reply("ok", delay=0.5), Reply("bad_request"))
    start_worker()
    status, _, body = request(
        server, "POST", legacy_path(project), token=user.token, body={"prompt": PROMPT, "name": "Ayu", "count": 2}
    )

    assert status == 201, body
    assert len(body["avatars"]) == 1 and body["message"] == "1 of 2 avatar(s) generated and saved."
    assert money(user) == (20, 0, 1)
    assert sorted(Preview.objects.filter(owner=user).values_list("status", flat=True)) == ["failed", "succeeded"]


def test_legacy_waiting_generate_left_while_django_holds_lets_the_credits_go(server, make_user, settings, monkeypatch):
    """The caller hangs up while Django is still holding the credits and queueing: once Django has answered, the
    hold it made goes back (nobody is left to finish the generation)."""
    from avatar_creator.api import views
    from tests.worker import use_broker

    settings.AVATAR_SYNC_WAIT = 60
    user = make_user("gita", credits=100)
    project = make_project(user)
    begin = views.services.avatars_generate_begin

    def slow_begin(**asked):
        time.sleep(1)  # the client is gone by the time the credits are held
        return begin(**asked)

    monkeypatch.setattr(views.services, "avatars_generate_begin", slow_begin)
    use_broker(redis_url())
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server, timeout=5)
        headers = {"Authorization": f"Bearer {user.token}", "Content-Type": "application/json"}
        conn.request("POST", legacy_path(project), body=json.dumps({"name": "Ayu", "prompt": PROMPT}), headers=headers)
        time.sleep(0.3)
        conn.close()
        assert wait_until(lambda: Preview.objects.filter(owner=user).exists(), timeout=5, interval=0.05)
        assert wait_until(lambda: money(user)[1] == 0, timeout=5, interval=0.05), "the hold stayed"
    finally:
        use_broker(None)
        redis.Redis.from_url(redis_url()).flushdb()  # the task nobody took
    assert money(user) == (100, 0, 0)


def test_legacy_waiting_generate_race_charges_exactly_one_caller(server, start_worker, fake_image_api, make_user,
                                                                  settings):  # fmt: skip
    """Two callers at once with credit for one: Django's hold lets exactly one generate; the other is 402 at once."""
    settings.AVATAR_SAVE_COST = 10
    user = make_user("carol", credits=10)
    project = make_project(user)
    fake_image_api.script(Reply("ok", delay=1))
    start_worker()
    post = partial(
        request, server, "POST", legacy_path(project), token=user.token, body={"prompt": PROMPT, "name": "Ayu"}
    )
    answers = at_once([post, post])

    assert sorted(status for status, _, _ in answers) == [201, 402]
    refused = next(body for status, _, body in answers if status == 402)
    assert (refused["error"]["code"], refused["error"]["details"]) == (
        "INSUFFICIENT_CREDITS",
        {"required": 10, "balance": 0},
    )
    assert money(user) == (0, 0, 1)
    assert Preview.objects.filter(owner=user).count() == 1


def test_legacy_waiting_generate_holds_no_thread_and_charges_nothing_unanswered(server, make_user, settings):
    """More legacy calls at once than the server has threads for requests: all wait together without a thread each, a
    cheap request is answered meanwhile; each gets GENERATION_TIMEOUT when its time runs out, nothing charged, every
    hold let go. A caller that hangs up is charged nothing either: its hold goes at once, its preview stays."""
    from lumiku.asgi import WEB_THREADS
    from tests.worker import use_broker

    settings.AVATAR_SYNC_WAIT = 4
    settings.AVATAR_MAX_ACTIVE_PREVIEWS = 50
    settings.AVATAR_SAVE_COST = 1
    user = make_user("eka", credits=100)
    waiting = WEB_THREADS + 4
    body = {"name": "Ayu", "prompt": PROMPT}
    use_broker(redis_url())  # no worker: the previews stay queued, every call waits out its time
    try:
        project = make_project(user)
        before = threading.active_count()
        with ThreadPoolExecutor(waiting) as pool:
            calls = [pool.submit(request, server, "POST", legacy_path(project), token=user.token, body=body)
                     for _ in range(waiting)]  # fmt: skip
            # All of them wait at once (well within their 4 s), which no pool of WEB_THREADS could hold.
            wait_until(lambda: Preview.objects.filter(owner=user).count() >= waiting, timeout=3, interval=0.05)
            all_waiting, held = Preview.objects.filter(owner=user).count(), money(user)[1]
            during = threading.active_count()
            started = time.monotonic()
            assert request(server, "GET", "/api/auth/me", token=user.token)[0] == 200
            cheap = time.monotonic() - started
            answers = [call.result(timeout=30) for call in calls]

        settings.AVATAR_SYNC_WAIT = 60
        answered = list(Preview.objects.filter(owner=user).values_list("pk", flat=True))
        conn = http.client.HTTPConnection("127.0.0.1", server, timeout=5)
        headers = {"Authorization": f"Bearer {user.token}", "Content-Type": "application/json"}
        conn.request("POST", legacy_path(project), body=json.dumps(body), headers=headers)
        # This call's preview, not the latest of those answered above (on a busy machine a hold of theirs can still
        # be going back while this one's is taken).
        new = Preview.objects.filter(owner=user).exclude(pk__in=answered)
        assert wait_until(new.exists, interval=0.05)
        left = new.get()
        assert wait_until(lambda: money(user)[1] == 1, interval=0.05)
        assert wait_until(lambda: subscribers(left.pk), interval=0.05)
        conn.close()
        assert wait_until(lambda: money(user)[1] == 0, interval=0.05), "the hold of a caller who left stayed"
    finally:
        use_broker(None)
        redis.Redis.from_url(redis_url()).flushdb()  # the tasks nobody took

    assert (all_waiting, held, cheap < 1) == (waiting, waiting, True)
    # The client threads of this test, plus at most the request threads and the event loop's small shared pool.
    assert during - before <= waiting + WEB_THREADS + 12, (before, during)
    assert {(status, body["error"]["code"]) for status, _, body in answers} == {(504, "GENERATION_TIMEOUT")}
    assert money(user) == (100, 0, 0)
    assert Preview.objects.get(pk=left.pk).status == PreviewStatus.QUEUED


def test_a_wait_without_a_reachable_bus_reads_the_row_again(settings):
    """Redis unreachable when a wait starts: the wait is told, at most every second, to read its row again."""
    import asyncio

    settings.AVATAR_EVENTS_URL = "redis://127.0.0.1:1/0"

    async def follow():
        async with events.subscribe_async([events.preview_channel("gone")]) as subscription:
            started = time.monotonic()
            return await subscription.get(0.3), time.monotonic() - started

    with ThreadPoolExecutor(1) as pool:  # a loop of its own: the browser tests may hold one in this thread
        message, waited = pool.submit(asyncio.run, follow()).result(timeout=30)
    assert message == ("", "")
    assert 0.25 <= waited < 1
