"""Live results (SPEC "Live results"): queue position and ETA, `Prefer: wait`, the event stream, the background
pool of the embedded default, and crash recovery through a real Celery worker on Redis."""

import json
import time
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from avatar_creator import events, selectors, services
from avatar_creator.api import streams
from avatar_creator.models import Preview, PreviewStatus
from tests.factories import make_preview, make_project
from tests.fake_image_api import Reply
from tests.services import redis_url, require_redis
from tests.worker import start_worker_fixture  # noqa: F401 - used as a fixture

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "Professional Indonesian woman with modern hijab, smiling"


@pytest.fixture
def project(alice):
    return make_project(alice)


def generate(api, project, **fields):
    url = f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview"
    return api.post(url, {"prompt": PROMPT, **fields}, format="json", HTTP_PREFER="respond-async")


def detail(preview_id) -> str:
    return f"/api/avatar-creator/previews/{preview_id}"


def parse_events(chunks) -> list[dict]:
    """The `preview` events of a text/event-stream body: [{"id": int, "data": {...}}]."""
    found = []
    for block in "".join(chunks).split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if fields.get("event") == "preview":
            found.append({"id": int(fields["id"]), "data": json.loads(fields["data"])})
    return found


def stream_text(response) -> list[str]:
    return [chunk.decode() if isinstance(chunk, bytes) else chunk for chunk in response.streaming_content]


@pytest.fixture(autouse=True)
def nothing_left_behind(monkeypatch):
    """The embedded default's pool starts with a process's first request; its sweep then runs every preview a restart
    left queued and re-queues stuck ones (queue.py; tests/test_faults.py and test_operations.py test that). Here
    previews are queued or stuck on purpose, and must stay so even when a test's request is the process's first (a
    test run alone)."""
    monkeypatch.setattr(services, "previews_left_queued", lambda **kwargs: [])
    monkeypatch.setattr(services, "previews_reap_stuck", lambda **kwargs: 0)


# Queue position and ETA


def test_preview_json_reports_queue_position_and_eta(alice_api, alice, project):
    now = timezone.now()
    for seconds in (4, 6):  # two recent generations of this model: 5 s each on average
        done = make_preview(alice, project, status=PreviewStatus.SUCCEEDED)
        Preview.objects.filter(pk=done.pk).update(generator="offline", duration_ms=seconds * 1000, finished_at=now)
    queued = [make_preview(alice, project, created_at=now - timedelta(seconds=30 - i)) for i in range(3)]
    Preview.objects.filter(pk__in=[p.pk for p in queued]).update(generator="offline")

    preview = alice_api.get(detail(queued[2].pk)).json()["preview"]

    assert (preview["queuePosition"], preview["attempts"], preview["nextAttemptAt"]) == (3, 0, None)
    # Two previews ahead on two generation slots, then its own generation: 5 s + 5 s.
    assert preview["etaSeconds"] == 10
    first = alice_api.get(detail(queued[0].pk)).json()["preview"]
    assert (first["queuePosition"], first["etaSeconds"]) == (1, 5)


def test_preview_json_queue_positions_of_one_batch_follow_the_seeds(alice_api, alice, project):
    created = timezone.now()  # a batch's previews are created together
    batch = [make_preview(alice, project, seed=seed, created_at=created) for seed in (42, 41, 43)]

    positions = [alice_api.get(detail(p.pk)).json()["preview"]["queuePosition"] for p in batch]

    assert positions == [2, 1, 3]


def test_queue_positions_count_every_queued_preview_ahead_from_sql_compiled_once(alice, project, monkeypatch):
    """The count behind queuePosition (selectors.py, a PreparedCount): earlier previews first, a batch's in seed order,
    only queued ones; its SQL is compiled once, then only run."""
    now = timezone.now()
    batch_time = now - timedelta(seconds=5)
    previews = [
        make_preview(alice, project, created_at=now - timedelta(seconds=9), seed=1),
        make_preview(alice, project, created_at=batch_time, seed=3),
        make_preview(alice, project, created_at=batch_time, seed=2),
        make_preview(alice, project, created_at=batch_time, seed=4),
        make_preview(alice, project, created_at=now - timedelta(seconds=1), seed=7),
    ]
    make_preview(alice, project, status=PreviewStatus.RUNNING, created_at=now - timedelta(seconds=20))
    make_preview(alice, project, status=PreviewStatus.FAILED, created_at=batch_time, seed=1)
    compiles = []
    ahead = selectors._QUEUED_AHEAD
    monkeypatch.setattr(ahead, "_compiled", {})
    compile_once = ahead._compile
    monkeypatch.setattr(ahead, "_compile", lambda alias: compiles.append(alias) or compile_once(alias))

    assert [selectors.preview_queue_position(preview=p) for p in previews] == [1, 3, 2, 4, 5]
    assert compiles == ["default"]


def test_preview_json_has_no_position_once_finished(alice_api, alice, project):
    done = make_preview(alice, project, status=PreviewStatus.SUCCEEDED)
    preview = alice_api.get(detail(done.pk)).json()["preview"]
    assert (preview["queuePosition"], preview["etaSeconds"], preview["nextAttemptAt"]) == (None, None, None)


def test_preview_waiting_for_a_retry_keeps_its_reason_and_start(alice_api, alice, project):
    start = timezone.now() + timedelta(seconds=20)
    waiting = make_preview(alice, project, attempts=1, error_code="MODEL_LOADING", error_message="Loading.")
    Preview.objects.filter(pk=waiting.pk).update(next_attempt_at=start)
    preview = alice_api.get(detail(waiting.pk)).json()["preview"]
    assert (preview["status"], preview["error"]) == ("queued", {"code": "MODEL_LOADING", "message": "Loading."})
    assert preview["nextAttemptAt"] == start.isoformat().replace("+00:00", "Z")


# The embedded default: a background pool


def test_generate_preview_async_answers_before_the_image_exists(flux, alice_api, project):
    flux.script(Reply("ok", delay=1.0))
    started = time.monotonic()
    response = generate(alice_api, project)
    elapsed = time.monotonic() - started
    assert response.status_code == 202
    assert response.json()["preview"]["status"] in ("queued", "running")
    assert elapsed < 0.9
    finished = alice_api.get(response["Location"], HTTP_PREFER="wait=10").json()["preview"]
    assert finished["status"] == "succeeded"


# Prefer: wait


def test_preview_prefer_wait_answers_as_soon_as_it_finishes(flux, alice_api, project):
    flux.script(Reply("ok", delay=0.5))
    preview_id = generate(alice_api, project).json()["preview"]["id"]
    started = time.monotonic()
    response = alice_api.get(detail(preview_id), HTTP_PREFER="wait=20")
    elapsed = time.monotonic() - started
    assert response["Preference-Applied"] == "wait=20"
    assert response.json()["preview"]["status"] == "succeeded"
    assert elapsed < 5


def test_preview_prefer_wait_answers_the_current_state_when_the_time_is_up(alice_api, alice, project):
    queued = make_preview(alice, project)  # nobody runs it
    started = time.monotonic()
    response = alice_api.get(detail(queued.pk), HTTP_PREFER="wait=1")
    elapsed = time.monotonic() - started
    assert (response.status_code, response["Preference-Applied"]) == (200, "wait=1")
    assert response.json()["preview"]["status"] == "queued"
    assert 0.9 <= elapsed < 3


def test_preview_prefer_wait_is_capped_at_sixty_seconds(alice_api, alice, project):
    done = make_preview(alice, project, status=PreviewStatus.SUCCEEDED)
    response = alice_api.get(detail(done.pk), HTTP_PREFER="wait=3600")
    assert response["Preference-Applied"] == "wait=60"


# The event stream (WSGI: a blocking iterator)


def test_preview_events_follow_every_state_to_the_end(flux, alice_api, project):
    flux.script(Reply("loading", estimated_time=0.1, delay=0.3), Reply("ok", delay=0.3))
    preview_id = generate(alice_api, project).json()["preview"]["id"]
    response = alice_api.get(f"{detail(preview_id)}/events")
    assert (response.status_code, response["Content-Type"]) == (200, "text/event-stream")

    events = parse_events(stream_text(response))

    ids = [event["id"] for event in events]
    assert ids == sorted(set(ids))
    states = [event["data"]["status"] for event in events]
    assert states[-1] == "succeeded"
    assert "running" in states
    retry = next(e["data"] for e in events if e["data"]["status"] == "queued" and e["data"]["error"])
    assert retry["error"]["code"] == "MODEL_LOADING"
    assert retry["nextAttemptAt"] is not None
    assert events[-1]["data"]["imageUrl"] == f"http://testserver/api/avatar-creator/previews/{preview_id}/image"


def test_preview_events_resume_after_the_last_event_id(alice_api, alice, project):
    running = make_preview(alice, project, status=PreviewStatus.RUNNING, started_at=timezone.now())
    Preview.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now())
    first = alice_api.get(f"{detail(running.pk)}/events")
    chunks = iter(first.streaming_content)
    (seen,) = parse_events([next(chunks).decode()])
    first.close()
    services.preview_cancel(preview=running)

    resumed = alice_api.get(f"{detail(running.pk)}/events", HTTP_LAST_EVENT_ID=str(seen["id"]))
    events = parse_events(stream_text(resumed))

    assert [event["data"]["status"] for event in events] == ["canceled"]
    assert events[0]["id"] > seen["id"]


def test_preview_events_of_a_finished_preview_already_seen_send_nothing(alice_api, alice, project):
    done = make_preview(alice, project, status=PreviewStatus.SUCCEEDED)
    first = parse_events(stream_text(alice_api.get(f"{detail(done.pk)}/events")))
    again = alice_api.get(f"{detail(done.pk)}/events", HTTP_LAST_EVENT_ID=str(first[0]["id"]))
    assert ([e["data"]["status"] for e in first], stream_text(again)) == (["succeeded"], [""])


def test_preview_events_report_a_preview_queued_again_ahead(alice_api, alice, project, held_queue):
    """The reaper queues again a preview whose worker died: older than mine, it stands ahead of it again."""
    earlier = make_preview(alice, project, status=PreviewStatus.RUNNING, attempts=1,
                           created_at=timezone.now() - timedelta(seconds=5))  # fmt: skip
    Preview.objects.filter(pk=earlier.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    mine = make_preview(alice, project)
    response = alice_api.get(f"{detail(mine.pk)}/events")
    chunks = iter(response.streaming_content)
    (before,) = parse_events([next(chunks).decode()])

    assert services.previews_requeue_stale() == 1
    (after,) = parse_events([next(chunks).decode()])
    response.close()

    assert (before["data"]["queuePosition"], after["data"]["queuePosition"]) == (1, 2)


def test_preview_events_report_queue_position_moves(alice_api, alice, project):
    ahead = make_preview(alice, project, created_at=timezone.now() - timedelta(seconds=5))
    mine = make_preview(alice, project)
    response = alice_api.get(f"{detail(mine.pk)}/events")
    chunks = iter(response.streaming_content)
    (before,) = parse_events([next(chunks).decode()])

    services.preview_cancel(preview=ahead)
    (after,) = parse_events([next(chunks).decode()])
    response.close()

    assert (before["data"]["queuePosition"], after["data"]["queuePosition"]) == (2, 1)
    assert after["id"] > before["id"]


def test_preview_events_send_a_heartbeat_comment_while_idle(alice_api, alice, project, monkeypatch):
    monkeypatch.setattr(streams, "HEARTBEAT_SECONDS", 0.2)
    queued = make_preview(alice, project)
    response = alice_api.get(f"{detail(queued.pk)}/events")
    chunks = iter(response.streaming_content)
    first, second = next(chunks).decode(), next(chunks).decode()
    response.close()
    assert first.startswith("id: ") and "event: preview" in first
    assert second == ": heartbeat\n\n"


def test_preview_events_of_another_users_preview_is_404(alice, bob_api, anon, project):
    preview = make_preview(alice, project)
    response = bob_api.get(f"{detail(preview.pk)}/events")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "NOT_FOUND")
    unauthenticated = anon.get(f"{detail(preview.pk)}/events")
    assert (unauthenticated.status_code, unauthenticated.json()["error"]["code"]) == (401, "UNAUTHENTICATED")


def test_preview_events_accept_the_browser_session(client, alice, project):
    done = make_preview(alice, project, status=PreviewStatus.SUCCEEDED)
    client.force_login(alice)
    events = parse_events(stream_text(client.get(f"{detail(done.pk)}/events")))
    assert [event["data"]["id"] for event in events] == [str(done.pk)]


# Crash recovery through a real worker


def test_worker_killed_mid_generation_runs_again_within_a_minute(start_worker, fake_image_api, alice_api, alice):
    fake_image_api.script(Reply("ok", delay=4))
    first = start_worker()
    project = make_project(alice)
    preview_id = generate(alice_api, project, seed=21).json()["preview"]["id"]
    deadline = time.monotonic() + 15
    while not fake_image_api.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    first.kill()
    killed_at = time.monotonic()
    start_worker()

    # Celery beat's job: the reaper, every few seconds here.
    preview = Preview.objects.get(pk=preview_id)
    while not preview.is_finished and time.monotonic() - killed_at < 60:
        services.previews_reap_stuck()
        time.sleep(1)
        preview.refresh_from_db()

    assert (preview.status, preview.attempts) == (PreviewStatus.SUCCEEDED, 2)
    assert time.monotonic() - killed_at < 60
    assert [request.json["parameters"]["seed"] for request in fake_image_api.requests] == [21, 21]


def test_a_preview_leaving_the_queue_is_published_on_redis_in_order(settings):
    """Its own channel, then the queue's: one round trip to Redis (events.publish pipelines them)."""
    require_redis()
    settings.AVATAR_EVENTS_URL = redis_url()
    listener = redis.Redis.from_url(redis_url()).pubsub()
    preview_id = "5e171e11-0000-4000-8000-000000000001"
    listener.subscribe(events.preview_channel(preview_id), events.QUEUE_CHANNEL)
    try:
        confirmed = [listener.get_message(timeout=2) for _ in range(2)]
        assert [m["type"] for m in confirmed] == ["subscribe", "subscribe"]
        events.preview_changed(preview_id, version=7, queue_moved=True)
        received = [listener.get_message(timeout=2) for _ in range(2)]
    finally:
        listener.close()
    assert [(m["channel"].decode(), m["data"].decode()) for m in received] == [
        (events.preview_channel(preview_id), "7"),
        (events.QUEUE_CHANNEL, preview_id),
    ]
