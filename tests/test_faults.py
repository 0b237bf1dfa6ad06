"""Fault tolerance: workers that die mid-generation, a broker that is down, previews whose worker vanished,
storage that fails while saving. Real processes where the fault is a process (Celery worker, Redis, PostgreSQL).

After every scenario that touches credits the same invariant is checked: an avatar exists if and only if
exactly one save charge is linked to it, and every balance is the sum of its ledger.
"""

import base64
import re
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings as django_settings
from django.core.files.storage import storages
from django.db.backends.signals import connection_created
from django.db.models import F, QuerySet
from django.utils import timezone

from avatar_creator import generators, services, tasks
from avatar_creator.models import (
    ACTIVE_PREVIEW_STATUSES,
    Avatar,
    CreditAccount,
    CreditLedgerEntry,
    LedgerReason,
    Preview,
    PreviewStatus,
    preview_storage,
)
from avatar_creator.services import previews as previews_service
from lumiku.celery import app
from tests.factories import jpeg_bytes, make_preview, make_project, wait_finished
from tests.fake_image_api import Reply
from tests.worker import start_worker_fixture, use_broker  # noqa: F401 - start_worker is used as a fixture

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "Professional Indonesian woman with modern hijab, smiling"
# A worker that sweeps for orphaned (unacknowledged) messages every second and takes back any older than 6 s
# (long enough for the second worker to finish its own attempt before the message could look orphaned again).
FAST_REDELIVERY = {
    "LUMIKU_TEST_VISIBILITY_TIMEOUT": "6",
    "LUMIKU_TEST_RESTORE_INTERVAL": "1",
    "LUMIKU_TEST_RESTORE_THROTTLE": "1",
}
UUID_HEX = r"[0-9a-f]{32}"


def generate(api, project, *, asynchronous=False, **fields):
    headers = {"HTTP_PREFER": "respond-async"} if asynchronous else {}
    url = f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview"
    return api.post(url, {"prompt": PROMPT, **fields}, format="json", **headers)


def save(api, project, body):
    return api.post(f"/api/avatar-creator/projects/{project.pk}/avatars/save-preview", body, format="json")


def wait_for(condition, *, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def finished(preview_id) -> Preview | None:
    preview = Preview.objects.get(pk=preview_id)
    return preview if preview.is_finished else None


def balance(user) -> int:
    return CreditAccount.objects.get(user=user).balance


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_every_save_charged_once():
    """Charged if and only if saved: one AVATAR_SAVE entry per avatar, none without one, balances add up."""
    charged = CreditLedgerEntry.objects.filter(reason=LedgerReason.AVATAR_SAVE)
    assert sorted(map(str, charged.values_list("avatar_id", flat=True))) == sorted(
        map(str, Avatar.objects.values_list("pk", flat=True))
    )
    for account in CreditAccount.objects.all():
        assert account.balance == sum(account.entries.values_list("delta", flat=True))


# A worker killed in the middle of a generation


def test_worker_killed_mid_generation_is_redelivered_and_succeeds(start_worker, fake_image_api, alice_api, alice):
    fake_image_api.script(Reply("ok", delay=4))  # the first attempt is still waiting on the image API when killed
    first = start_worker(**FAST_REDELIVERY)
    project = make_project(alice)
    preview_id = generate(alice_api, project, asynchronous=True, seed=77).json()["preview"]["id"]
    wait_for(
        lambda: fake_image_api.requests and Preview.objects.get(pk=preview_id).status == PreviewStatus.RUNNING,
        timeout=15,
        what="the first worker to call the image API",
    )
    first.kill()
    assert Preview.objects.get(pk=preview_id).status == PreviewStatus.RUNNING  # orphaned mid-generation

    second = start_worker(**FAST_REDELIVERY)
    preview = wait_for(lambda: finished(preview_id), timeout=25, what="the redelivered preview")

    assert (preview.status, preview.attempts) == (PreviewStatus.SUCCEEDED, 2), second.log()
    assert [request.json["parameters"]["seed"] for request in fake_image_api.requests] == [77, 77]
    assert [preview_storage().exists(name) for name in (preview.image.name, preview.thumbnail.name)] == [True, True]
    saved = save(alice_api, project, {"previewId": preview_id, "name": "Survivor"})
    assert (saved.status_code, balance(alice)) == (201, 90)
    assert_every_save_charged_once()


def test_redelivery_after_a_crash_fits_inside_the_preview_deadline():
    """The production defaults (settings/base.py): a crashed worker's job comes back while its preview can still
    succeed, and a slow but live job is never taken back from its worker."""
    from lumiku.settings import base

    options = base.CELERY_BROKER_TRANSPORT_OPTIONS
    sweep = options["unacked_restore_interval"] * options["unacked_restore_throttle"]
    hard_time_limit = base.FLUX_TIMEOUT + 60  # tasks.run_preview's time_limit
    assert options["visibility_timeout"] > hard_time_limit
    assert options["visibility_timeout"] + sweep + base.FLUX_TIMEOUT < base.AVATAR_PREVIEW_DEADLINE


def test_worker_pool_process_killed_mid_generation_is_retried(start_worker, fake_image_api, alice_api, alice):
    fake_image_api.script(Reply("ok", delay=4))
    worker = start_worker()  # default (slow) redelivery: the main process itself must requeue the lost task
    project = make_project(alice)
    preview_id = generate(alice_api, project, asynchronous=True).json()["preview"]["id"]
    wait_for(lambda: fake_image_api.requests, timeout=15, what="the worker to call the image API")
    worker.kill_pool()

    preview = wait_for(lambda: finished(preview_id), timeout=20, what="the retried preview")

    assert (preview.status, preview.attempts) == (PreviewStatus.SUCCEEDED, 2), worker.log()
    assert len(fake_image_api.requests) == 2
    assert worker.process.poll() is None  # the worker survived the loss of its pool process


# The broker is unreachable when a preview is requested


@pytest.fixture
def broker_down():
    """Redis refusing connections (nothing listens on port 1)."""
    use_broker("redis://127.0.0.1:1/0")
    try:
        yield
    finally:
        use_broker(None)


@pytest.fixture
def broker_hanging():
    """A broker host that accepts the connection and then never answers (a hung or blackholed Redis)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    use_broker(f"redis://127.0.0.1:{listener.getsockname()[1]}/0")
    try:
        yield
    finally:
        use_broker(None)
        listener.close()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["waiting", "async"])
def test_broker_down_answers_503_and_fails_the_preview(broker_down, alice_api, alice, asynchronous):
    project = make_project(alice)
    started = time.monotonic()
    response = generate(alice_api, project, asynchronous=asynchronous)
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "QUEUE_UNAVAILABLE"
    assert elapsed < 5
    preview = Preview.objects.get()
    assert str(preview.pk) == error["details"]["previewId"]
    assert (preview.status, preview.error_code) == (PreviewStatus.FAILED, "QUEUE_UNAVAILABLE")
    assert preview.finished_at is not None
    polled = alice_api.get(f"/api/avatar-creator/previews/{preview.pk}").json()["preview"]
    assert (polled["status"], polled["error"]["code"]) == ("failed", "QUEUE_UNAVAILABLE")


def test_broker_hanging_answers_503_within_the_socket_timeout(broker_hanging, alice_api, alice):
    project = make_project(alice)
    started = time.monotonic()
    response = generate(alice_api, project, asynchronous=True)
    elapsed = time.monotonic() - started

    assert (response.status_code, response.json()["error"]["code"]) == (503, "QUEUE_UNAVAILABLE")
    # Bounded by the broker's socket_timeout (5 s), not by Celery's publish retries piling up.
    assert elapsed < 10
    assert Preview.objects.filter(status__in=ACTIVE_PREVIEW_STATUSES).count() == 0


def test_broker_down_legacy_generate_charges_nothing(broker_down, alice_api, alice):
    project = make_project(alice)
    url = f"/api/avatar-creator/projects/{project.pk}/avatars/generate"
    response = alice_api.post(url, {"prompt": PROMPT, "name": "Team", "count": 3}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (503, "QUEUE_UNAVAILABLE")
    # The three variations were admitted and created together; the broker refused each, so each is failed.
    assert list(Preview.objects.values_list("status", "error_code")) == [("failed", "QUEUE_UNAVAILABLE")] * 3
    assert (Avatar.objects.count(), balance(alice)) == (0, 100)
    assert_every_save_charged_once()


# The reaper: previews whose worker vanished


def test_reaper_task_in_a_worker_fails_previews_past_their_deadline(celery_worker, alice_api, alice):
    project = make_project(alice)
    # The worker's grace is FLUX_TIMEOUT (5 s in tests) + 30 s past the deadline.
    long_ago, just_now = timezone.now() - timedelta(minutes=2), timezone.now() - timedelta(seconds=5)
    running = make_preview(alice, project, status=PreviewStatus.RUNNING, attempts=1, started_at=long_ago,
                           deadline_at=long_ago)  # fmt: skip
    queued = make_preview(alice, project, status=PreviewStatus.QUEUED, deadline_at=long_ago)
    recent = make_preview(alice, project, status=PreviewStatus.RUNNING, attempts=1, started_at=just_now,
                          deadline_at=just_now)  # fmt: skip
    done = make_preview(alice, project, status=PreviewStatus.CANCELED, deadline_at=long_ago)

    tasks.reap_stuck_previews.delay()
    wait_for(
        lambda: not Preview.objects.filter(pk__in=[running.pk, queued.pk], status__in=ACTIVE_PREVIEW_STATUSES).exists(),
        timeout=15,
        what="the worker to run the reaper",
    )

    for preview in (running, queued):
        preview.refresh_from_db()
        assert (preview.status, preview.error_code) == (PreviewStatus.FAILED, "GENERATION_TIMEOUT")
        assert preview.finished_at is not None
    polled = alice_api.get(f"/api/avatar-creator/previews/{running.pk}").json()["preview"]
    assert polled["error"] == {
        "code": "GENERATION_TIMEOUT",
        "message": "The preview stopped making progress and was abandoned. Try again.",
    }
    recent.refresh_from_db()
    done.refresh_from_db()
    assert (recent.status, done.status) == (PreviewStatus.RUNNING, PreviewStatus.CANCELED)


def test_reaper_is_scheduled_every_minute():
    schedule = app.conf.beat_schedule
    assert schedule["reap-stuck-previews"] == django_settings.CELERY_BEAT_SCHEDULE["reap-stuck-previews"]
    assert schedule["reap-stuck-previews"]["task"] == tasks.reap_stuck_previews.name
    assert schedule["reap-stuck-previews"]["schedule"] <= 60
    assert {entry["task"] for entry in schedule.values()} <= set(app.tasks)


def test_reaped_preview_discards_the_late_result_and_cannot_be_saved(alice_api, alice, monkeypatch):
    project = make_project(alice)

    class ReapedWhileGenerating:
        """The image API answers only after the reaper gave up on the preview."""

        name = model = "offline"

        def generate(self, request):
            Preview.objects.filter(status=PreviewStatus.RUNNING).update(deadline_at=timezone.now() - timedelta(hours=1))
            assert services.previews_reap_stuck() == 1
            return generators.OfflineGenerator().generate(request)

    monkeypatch.setattr(generators, "get_generator", ReapedWhileGenerating)
    preview = wait_finished(services.preview_request(user=alice, project=project, prompt=PROMPT))

    assert (preview.status, preview.error_code, preview.image.name) == ("failed", "GENERATION_TIMEOUT", "")
    assert files_under(django_settings.PRIVATE_MEDIA_ROOT) == []
    response = save(alice_api, project, {"previewId": str(preview.pk)})
    assert (response.status_code, response.json()["error"]["code"]) == (409, "PREVIEW_NOT_AVAILABLE")
    assert (Avatar.objects.count(), balance(alice)) == (0, 100)
    assert_every_save_charged_once()


# The worker's unlocked changes (services/previews.py): a change that lands just before the conditional UPDATE that
# takes a queued preview (`_CLAIM_QUEUED`), or between the read of a running one and the write of its success
# (`_preview_change_at`), wins, as it would under the lock.


def _cancel_before(monkeypatch, status: str) -> None:
    """Cancel the preview just before the worker writes the change it decided for a row that was `status`."""
    if status == PreviewStatus.QUEUED:
        claim = previews_service._CLAIM_QUEUED

        def cancel_first(*, pk, now):
            services.preview_cancel(preview=Preview.objects.get(pk=pk))
            return type(claim).run(claim, pk=pk, now=now)

        monkeypatch.setattr(claim, "run", cancel_first)
        return
    real = previews_service._preview_change_at

    def cancel_first_at(preview, change):
        if preview.status == status:
            services.preview_cancel(preview=Preview.objects.get(pk=preview.pk))
        return real(preview, change)

    monkeypatch.setattr(previews_service, "_preview_change_at", cancel_first_at)


def test_a_cancel_just_before_the_worker_takes_the_preview_is_kept(alice, monkeypatch):
    preview = make_preview(alice, make_project(alice))
    _cancel_before(monkeypatch, PreviewStatus.QUEUED)
    asked = _asked_generator(monkeypatch)

    outcome = services.preview_attempt(preview_id=preview.pk)

    preview.refresh_from_db()
    assert (outcome.status, preview.status, preview.attempts, preview.version, asked) == (
        "canceled", "canceled", 0, 1, []
    )  # fmt: skip


def test_a_cancel_while_generating_is_kept_and_the_result_dropped(alice, monkeypatch):
    preview = make_preview(alice, make_project(alice))
    _cancel_before(monkeypatch, PreviewStatus.RUNNING)  # the success: decided on the row as the start left it

    outcome = services.preview_attempt(preview_id=preview.pk)

    preview.refresh_from_db()
    assert (outcome.status, preview.status, preview.attempts, preview.version) == ("canceled", "canceled", 1, 2)
    assert (preview.image.name, preview.thumbnail.name) == ("", "")
    assert files_under(django_settings.PRIVATE_MEDIA_ROOT) == []


def _asked_generator(monkeypatch) -> list:
    asked = []
    monkeypatch.setattr(generators, "get_generator", lambda: asked.append(1) or generators.OfflineGenerator())
    return asked


def test_an_attempt_on_a_queued_preview_past_its_deadline_fails_it_without_generating(alice, monkeypatch):
    preview = make_preview(alice, make_project(alice), deadline_at=timezone.now() - timedelta(seconds=1))
    asked = _asked_generator(monkeypatch)

    outcome = services.preview_attempt(preview_id=preview.pk)

    preview.refresh_from_db()
    assert (outcome.status, preview.status, preview.error_code, preview.attempts, asked) == (
        "failed", "failed", "GENERATION_TIMEOUT", 0, []
    )  # fmt: skip


def test_a_retried_attempt_keeps_the_first_start_and_counts_on(alice, monkeypatch):
    first_start = timezone.now() - timedelta(seconds=30)
    preview = make_preview(alice, make_project(alice), attempts=1, started_at=first_start, error_code="MODEL_LOADING")
    Preview.objects.filter(pk=preview.pk).update(version=3)

    outcome = services.preview_attempt(preview_id=preview.pk)

    preview.refresh_from_db()
    assert (outcome.status, preview.attempts, preview.started_at, preview.version) == (
        "succeeded", 2, first_start, 5
    )  # fmt: skip
    assert (preview.error_code, preview.next_attempt_at) == ("", None)


@pytest.mark.parametrize(("beat_age", "runs"), [(1, False), (3600, True)], ids=["alive", "stale"])
def test_a_running_preview_is_taken_only_from_a_dead_worker(alice, monkeypatch, beat_age, runs):
    """A redelivered twin: while the other worker's heartbeat is fresh it is left alone (and looked at again once the
    beat would be stale); a stale beat means that worker is gone, and the attempt takes the preview over."""
    preview = make_preview(alice, make_project(alice), status=PreviewStatus.RUNNING, attempts=1,
                           started_at=timezone.now() - timedelta(seconds=beat_age))  # fmt: skip
    Preview.objects.filter(pk=preview.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=beat_age))
    asked = _asked_generator(monkeypatch)

    outcome = services.preview_attempt(preview_id=preview.pk)

    preview.refresh_from_db()
    if runs:
        assert (outcome.status, preview.status, preview.attempts, asked) == ("succeeded", "succeeded", 2, [1])
    else:
        assert (outcome.status, preview.status, preview.attempts, asked) == ("running", "running", 1, [])
        beat = django_settings.AVATAR_HEARTBEAT_STALE + django_settings.AVATAR_HEARTBEAT_INTERVAL
        assert 0 < outcome.retry_in <= beat


def test_an_attempt_where_an_update_cannot_return_its_row_takes_the_locked_way(alice, monkeypatch):
    """SQLite before 3.35 has no RETURNING: the claim then changes nothing and the attempt goes the locked way."""
    from django.db import connection

    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False)
    monkeypatch.setattr(previews_service._CLAIM_QUEUED, "_compiled", {})
    preview = make_preview(alice, make_project(alice))

    assert previews_service._CLAIM_QUEUED.run(pk=preview.pk, now=timezone.now()) is None
    assert Preview.objects.get().version == preview.version
    outcome = services.preview_attempt(preview_id=preview.pk)

    preview.refresh_from_db()
    assert (outcome.status, preview.status, preview.attempts, preview.version) == ("succeeded", "succeeded", 1, 2)


def test_an_attempt_on_a_finished_or_missing_preview_does_nothing(alice, monkeypatch):
    canceled = make_preview(alice, make_project(alice), status=PreviewStatus.CANCELED)
    asked = _asked_generator(monkeypatch)

    assert services.preview_attempt(preview_id=canceled.pk).status == "canceled"
    assert services.preview_attempt(preview_id="8d0b7a8e-1d9f-4c55-9a43-3b8f0b1d2c4e").status == "missing"
    assert (Preview.objects.get().version, asked) == (canceled.version, [])


def _generating_for(seconds: float):
    class Slow:
        name = model = "offline"

        def generate(self, request):
            time.sleep(seconds)
            return generators.OfflineGenerator().generate(request)

    return Slow


def test_a_running_attempt_beats_its_heartbeat(alice, settings, monkeypatch):
    """The reaper tells a slow generation from a dead worker by the beat."""
    settings.AVATAR_HEARTBEAT_INTERVAL = 0.05
    monkeypatch.setattr(generators, "get_generator", _generating_for(0.5))
    preview = make_preview(alice, make_project(alice))

    assert services.preview_attempt(preview_id=preview.pk).status == "succeeded"

    preview.refresh_from_db()
    assert preview.heartbeat_at - preview.started_at >= timedelta(seconds=0.3)


def test_an_attempt_beats_while_it_stores_its_result(alice, settings, monkeypatch):
    """A slow storage write (a stalled S3 PUT) is still a live attempt: the reaper leaves it alone."""
    settings.AVATAR_HEARTBEAT_INTERVAL = 0.05
    settings.AVATAR_HEARTBEAT_STALE = 0.3
    real_write_all = previews_service.files.write_all
    requeued = []

    def slow_write_all(storage, items):
        time.sleep(0.6)  # twice the time after which a silent attempt looks dead
        requeued.append(services.previews_requeue_stale())
        return real_write_all(storage, items)

    monkeypatch.setattr(previews_service.files, "write_all", slow_write_all)
    preview = make_preview(alice, make_project(alice))

    outcome = services.preview_attempt(preview_id=preview.pk)

    preview.refresh_from_db()
    assert (outcome.status, preview.status, preview.attempts, requeued) == ("succeeded", "succeeded", 1, [0])


def _taken_over_while_storing(monkeypatch, *, fail: bool) -> None:
    """While this attempt stores its result, the reaper queues the preview again and a twin takes it (each start
    counts an attempt); then the store fails, or succeeds."""
    real_write_all = previews_service.files.write_all

    def write_all(storage, items):
        Preview.objects.update(status=PreviewStatus.RUNNING, attempts=F("attempts") + 1, version=F("version") + 2,
                               heartbeat_at=timezone.now())  # fmt: skip
        if fail:
            raise OSError("disk full")
        return real_write_all(storage, items)

    monkeypatch.setattr(previews_service.files, "write_all", write_all)


@pytest.mark.parametrize("fail", [True, False], ids=["store-fails", "store-succeeds"])
def test_an_attempt_taken_over_by_a_twin_leaves_the_twins_run_alone(alice, settings, monkeypatch, fail):
    settings.AVATAR_MAX_ATTEMPTS = 3
    preview = make_preview(alice, make_project(alice))
    _taken_over_while_storing(monkeypatch, fail=fail)

    outcome = services.preview_attempt(preview_id=preview.pk)

    preview.refresh_from_db()
    assert (outcome.status, outcome.retry_in, preview.status, preview.attempts) == ("running", None, "running", 2)
    assert (preview.error_code, preview.image.name, files_under(django_settings.PRIVATE_MEDIA_ROOT)) == ("", "", [])


def test_a_time_limit_met_while_generating_fails_the_attempt_as_a_timeout(alice, monkeypatch):
    class Dripping:
        name = model = "offline"

        def generate(self, request):
            raise SoftTimeLimitExceeded()

    monkeypatch.setattr(generators, "get_generator", Dripping)
    preview = make_preview(alice, make_project(alice))

    outcome = services.preview_attempt(preview_id=preview.pk)

    preview.refresh_from_db()
    assert (outcome.status, outcome.retry_in, preview.status) == ("failed", None, "failed")
    assert (preview.error_code, preview.error_message) == ("GENERATION_TIMEOUT", services.TIME_LIMIT_MESSAGE)


def test_an_attempt_does_not_wait_for_a_beat_in_flight(alice, settings, monkeypatch):
    """A beat is an UPDATE on the process's heartbeat thread: the result is stored without waiting for it."""
    settings.AVATAR_HEARTBEAT_INTERVAL = 0.05
    real_update = QuerySet.update

    def slow_beat(queryset, **values):
        if threading.current_thread().name == "heartbeat":
            time.sleep(1.5)  # longer than the second a waiting attempt would give it
        return real_update(queryset, **values)

    monkeypatch.setattr(QuerySet, "update", slow_beat)
    monkeypatch.setattr(generators, "get_generator", _generating_for(0.2))
    preview = make_preview(alice, make_project(alice))

    started = time.monotonic()
    assert services.preview_attempt(preview_id=preview.pk).status == "succeeded"
    assert time.monotonic() - started < 1.0


def test_one_thread_and_one_connection_beat_every_attempt_of_a_process(alice, settings, monkeypatch):
    """Attempts one after another (a Celery pool process) share the heartbeat thread and its database connection."""
    settings.AVATAR_HEARTBEAT_INTERVAL = 0.05
    monkeypatch.setattr(generators, "get_generator", _generating_for(0.3))
    project = make_project(alice)
    connected = []
    record = lambda sender, connection, **kwargs: connected.append(threading.current_thread().name)  # noqa: E731
    connection_created.connect(record)
    try:
        beats = []
        for _ in range(3):
            preview = make_preview(alice, project)
            assert services.preview_attempt(preview_id=preview.pk).status == "succeeded"
            preview.refresh_from_db()
            beats.append(preview.heartbeat_at - preview.started_at)
            beaters = [thread for thread in threading.enumerate() if thread.name == "heartbeat"]
            assert len(beaters) == 1
    finally:
        connection_created.disconnect(record)
    assert all(beat >= timedelta(seconds=0.1) for beat in beats)
    assert connected.count("heartbeat") == 1

    previews_service.heartbeats_stop()
    assert not [thread for thread in threading.enumerate() if thread.name == "heartbeat"]


# Storage failing while saving


class FailingWrites:
    """Wraps a storage's low-level write: the `fail_on`-th write (1-based) raises OSError, like a full disk."""

    def __init__(self, storage, *, fail_on: tuple[int, ...]):
        self.storage = storage
        self.real_save = storage._save
        self.fail_on = fail_on
        self.calls: list[str] = []

    def __call__(self, name, content):
        self.calls.append(name)
        if len(self.calls) in self.fail_on:
            raise OSError(28, "No space left on device")
        return self.real_save(name, content)


@pytest.mark.parametrize("fail_on", [1, 2], ids=["image-write-fails", "thumbnail-write-fails"])
@pytest.mark.parametrize("flow", ["preview", "legacy"])
def test_storage_failing_during_save_writes_nothing_and_can_be_retried(alice_api, alice, monkeypatch, flow, fail_on):
    project = make_project(alice)
    if flow == "preview":
        preview_id = generate(alice_api, project).json()["preview"]["id"]
        body = {"previewId": preview_id, "name": "Ayu"}
    else:
        body = {"name": "Ayu", "imageBase64": base64.b64encode(jpeg_bytes(400, 400)).decode()}
    failing = FailingWrites(storages["default"], fail_on=(fail_on,))
    monkeypatch.setattr(storages["default"], "_save", failing)

    response = save(alice_api, project, body)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert len(failing.calls) == fail_on  # with the second write failing, the first file was written...
    assert files_under(django_settings.MEDIA_ROOT) == []  # ...and removed again
    assert (Avatar.objects.count(), balance(alice)) == (0, 100)
    assert not CreditLedgerEntry.objects.filter(reason=LedgerReason.AVATAR_SAVE).exists()
    if flow == "preview":
        assert Preview.objects.get(pk=preview_id).status == PreviewStatus.SUCCEEDED

    monkeypatch.undo()
    retried = save(alice_api, project, body)

    assert retried.status_code == 201
    avatar = Avatar.objects.get()
    assert str(avatar.pk) == retried.json()["avatar"]["id"]
    assert balance(alice) == 90
    assert re.fullmatch(rf"avatars/{UUID_HEX}\.jpg", avatar.image.name)
    assert re.fullmatch(rf"avatars/thumbnails/{UUID_HEX}\.jpg", avatar.thumbnail.name)
    assert files_under(django_settings.MEDIA_ROOT) == sorted([avatar.image.name, avatar.thumbnail.name])
    assert_every_save_charged_once()


def test_storage_failing_once_while_storing_a_preview_is_retried(alice_api, alice, monkeypatch):
    failing = FailingWrites(storages["previews"], fail_on=(1,))
    monkeypatch.setattr(storages["previews"], "_save", failing)
    response = generate(alice_api, make_project(alice))

    assert response.status_code == 200
    preview = Preview.objects.get()
    assert (preview.status, preview.attempts) == (PreviewStatus.SUCCEEDED, 2)
    assert sorted(files_under(django_settings.PRIVATE_MEDIA_ROOT)) == sorted(
        [preview.image.name, preview.thumbnail.name]
    )


def test_storage_failing_while_storing_a_preview_fails_it_clearly(alice_api, alice, monkeypatch, settings):
    settings.AVATAR_MAX_ATTEMPTS = 2
    failing = FailingWrites(storages["previews"], fail_on=(2, 3))  # each attempt: image stored, thumbnail fails
    monkeypatch.setattr(storages["previews"], "_save", failing)
    response = generate(alice_api, make_project(alice))

    assert response.status_code == 502
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (
        "GENERATION_FAILED",
        "The generated image could not be stored. Try again in a moment.",
    )
    preview = Preview.objects.get()
    assert (preview.status, preview.attempts, preview.image.name) == (PreviewStatus.FAILED, 2, "")
    assert files_under(django_settings.PRIVATE_MEDIA_ROOT) == []  # the images written before each failure are gone


def test_every_saved_avatar_is_charged_exactly_once_across_outcomes(make_user, client_for, monkeypatch):
    user = make_user("carol", credits=30)
    api = client_for(user)
    project = make_project(user)
    first, second, third = (generate(api, project).json()["preview"]["id"] for _ in range(3))
    upload = {"name": "Upload", "imageBase64": base64.b64encode(jpeg_bytes(200, 200)).decode()}
    outcomes = []

    def step(body, *, failing_storage=False):
        if failing_storage:
            monkeypatch.setattr(storages["default"], "_save", FailingWrites(storages["default"], fail_on=(1,)))
        outcomes.append(save(api, project, body).status_code)
        monkeypatch.undo()
        assert_every_save_charged_once()

    step({"previewId": first})  # saved and charged
    step({"previewId": first})  # the same preview again: the same avatar, no charge
    step({"previewId": second}, failing_storage=True)  # storage down: neither
    step({"previewId": second})  # storage back: saved and charged
    step(upload)  # a legacy upload: saved and charged, the last credits
    step({"previewId": third})  # no credits left: neither
    step(upload)

    assert outcomes == [201, 200, 503, 201, 201, 402, 402]
    assert (Avatar.objects.count(), balance(user)) == (3, 0)
    saved_from = {str(pk) if pk else None for pk in Avatar.objects.values_list("preview_id", flat=True)}
    assert saved_from == {first, second, None}


def test_a_restart_picks_up_what_was_left_queued_a_scheduled_retry_when_it_is_due(alice):
    project = make_project(alice)
    before = timezone.now() + timedelta(seconds=1)
    fresh = make_preview(alice, project)
    retry = make_preview(alice, project, attempts=1, error_code="RATE_LIMIT_EXCEEDED")
    Preview.objects.filter(pk=retry.pk).update(next_attempt_at=timezone.now() + timedelta(seconds=30))
    overdue = make_preview(alice, project, attempts=1, error_code="MODEL_LOADING")
    Preview.objects.filter(pk=overdue.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=5))
    make_preview(alice, project, status=PreviewStatus.RUNNING)

    left = dict(services.previews_left_queued(before=before))

    assert set(left) == {fresh.pk, retry.pk, overdue.pk}
    assert (left[fresh.pk], left[overdue.pk]) == (0.0, 0.0)
    assert 28 < left[retry.pk] <= 30


def test_a_restart_delivers_again_the_webhooks_left_undelivered(alice):
    project = make_project(alice)
    before = timezone.now() + timedelta(seconds=1)
    hook = "https://example.com/hook"

    def finished(ago: timedelta, **fields):
        preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED)
        Preview.objects.filter(pk=preview.pk).update(finished_at=timezone.now() - ago, **fields)
        return preview

    pending = finished(timedelta(minutes=3), webhook_url=hook)
    finished(timedelta(minutes=3), webhook_url=hook, webhook_delivered_at=timezone.now())
    finished(timedelta(minutes=3))  # no webhook
    finished(timedelta(days=2), webhook_url=hook)  # past its retry schedule: given up
    make_preview(alice, project, status=PreviewStatus.RUNNING)

    assert services.previews_left_undelivered(before=before) == [pending.pk]
