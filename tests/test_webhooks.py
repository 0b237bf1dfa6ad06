"""Webhooks (SPEC "Live results"): the user's secret, Standard Webhooks signatures, retries, the SSRF guard.

The receiver is a real local HTTP server; loopback is allowed only where a test says AVATAR_WEBHOOK_ALLOW_PRIVATE.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from avatar_creator import webhooks
from avatar_creator.models import Preview, PreviewStatus
from tests.factories import make_preview, make_project
from tests.worker import start_worker_fixture  # noqa: F401 - used as a fixture

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "Professional Indonesian woman with modern hijab, smiling"


class Receiver:
    """Answers each POST with the next scripted status (then 200) and records what it got."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status in (301, 302, 307):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/lumiku"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.stop()


@pytest.fixture
def allow_private(settings):
    settings.AVATAR_WEBHOOK_ALLOW_PRIVATE = True


def expected_signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_webhook_secret_is_one_per_user(alice_api, bob_api):
    first = alice_api.get("/api/auth/webhook-secret").json()
    again = alice_api.get("/api/auth/webhook-secret").json()
    other = bob_api.get("/api/auth/webhook-secret").json()
    assert first["success"] is True and first["secret"].startswith("whsec_")
    assert len(base64.b64decode(first["secret"].removeprefix("whsec_"))) == 24
    assert (again["secret"], other["secret"] != first["secret"]) == (first["secret"], True)


def test_webhook_secret_needs_authentication(anon):
    response = anon.get("/api/auth/webhook-secret")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "UNAUTHENTICATED")


def test_webhook_is_posted_signed_when_the_preview_finishes(allow_private, receiver, alice_api, alice, settings):
    settings.AVATAR_PUBLIC_URL = "https://avatars.example.com"
    secret = alice_api.get("/api/auth/webhook-secret").json()["secret"]
    project = make_project(alice)
    url = f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview"
    preview = alice_api.post(url, {"prompt": PROMPT, "webhook": receiver.url}, format="json").json()["preview"]
    deadline = time.monotonic() + 10
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.05)

    (delivery,) = receiver.requests
    headers, body = delivery["headers"], delivery["body"]
    assert delivery["path"] == "/hooks/lumiku"
    assert headers["webhook-id"] == f"msg_{preview['id'].replace('-', '')}"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 30
    assert headers["webhook-signature"] == expected_signature(
        secret, headers["webhook-id"], headers["webhook-timestamp"], body
    )
    payload = json.loads(body)
    assert (payload["type"], payload["data"]["id"], payload["data"]["status"]) == (
        "preview.completed", preview["id"], "succeeded",
    )  # fmt: skip
    # Outside a request, links are made absolute with the site's public address.
    assert (
        payload["data"]["imageUrl"] == f"https://avatars.example.com/api/avatar-creator/previews/{preview['id']}/image"
    )
    deadline = time.monotonic() + 5
    while Preview.objects.get(pk=preview["id"]).webhook_delivered_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Preview.objects.get(pk=preview["id"]).webhook_delivered_at is not None


def test_webhook_failing_answers_are_retried_with_backoff_then_delivered_once(allow_private, receiver, alice):
    receiver.statuses = [500, 302]
    preview = make_preview(alice, make_project(alice), status=PreviewStatus.SUCCEEDED)
    Preview.objects.filter(pk=preview.pk).update(webhook_url=receiver.url)

    waits = [webhooks.webhook_deliver(preview_id=preview.pk, attempt=attempt) for attempt in range(4)]

    # 500, then a redirect (never followed), then 200; the fourth call finds it delivered and sends nothing.
    assert waits == [5.0, 300.0, None, None]
    assert [r["path"] for r in receiver.requests] == ["/hooks/lumiku"] * 3
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1


def test_webhook_retries_span_more_than_a_day():
    assert sum(webhooks.RETRY_SCHEDULE) >= 24 * 3600


def test_webhook_gives_up_after_the_last_retry(allow_private, receiver, alice):
    receiver.statuses = [503]
    preview = make_preview(alice, make_project(alice), status=PreviewStatus.FAILED)
    Preview.objects.filter(pk=preview.pk).update(webhook_url=receiver.url)
    last = len(webhooks.RETRY_SCHEDULE)
    assert webhooks.webhook_deliver(preview_id=preview.pk, attempt=last) is None
    assert Preview.objects.get(pk=preview.pk).webhook_delivered_at is None


@pytest.mark.parametrize(
    "webhook",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://0.0.0.0/hook",
        "http://93.184.215.14/hook",
        "ftp://93.184.215.14/hook",
        "https://user:pw@93.184.215.14/hook",
        "not a url",
    ],
)
def test_webhook_to_a_private_address_or_without_https_is_refused(alice_api, alice, webhook):
    project = make_project(alice)
    url = f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview"
    response = alice_api.post(url, {"prompt": PROMPT, "webhook": webhook}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], list(error["details"])) == ("VALIDATION_ERROR", ["webhook"])
    assert Preview.objects.count() == 0


def test_webhook_to_an_address_that_turned_private_is_not_called(settings, receiver, alice):
    preview = make_preview(alice, make_project(alice), status=PreviewStatus.SUCCEEDED)
    Preview.objects.filter(pk=preview.pk).update(webhook_url=receiver.url)
    settings.AVATAR_WEBHOOK_ALLOW_PRIVATE = False
    assert webhooks.webhook_deliver(preview_id=preview.pk) is None
    assert receiver.requests == []


def test_webhook_retry_runs_on_the_celery_worker(allow_private, receiver, start_worker, alice_api, alice):
    receiver.statuses = [500]
    start_worker(AVATAR_WEBHOOK_ALLOW_PRIVATE="true")
    project = make_project(alice)
    url = f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview"
    preview = alice_api.post(url, {"prompt": PROMPT, "webhook": receiver.url}, format="json").json()["preview"]
    deadline = time.monotonic() + 30
    while Preview.objects.get(pk=preview["id"]).webhook_delivered_at is None and time.monotonic() < deadline:
        time.sleep(0.2)

    assert Preview.objects.get(pk=preview["id"]).webhook_delivered_at is not None
    # The first answer was a 500; the task tried again 5 s later, with the same message id.
    assert len(receiver.requests) == 2
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1
