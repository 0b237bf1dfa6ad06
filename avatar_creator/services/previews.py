"""The preview job, in one place: request -> attempts (by a task, with retries) -> succeeded | failed | canceled,
then expired. Saving a preview as an avatar is in services/avatars.py.

    queued --attempt--> running --image stored--> succeeded --TTL--> expired
      ^                    |--retryable error--> queued (reason kept in error_code/error_message)
      |                    '--final error / out of time--> failed
      '-- cancel (queued or running) --> canceled;   the reaper fails what a vanished worker left behind

Every change of state goes through `_preview_change`: lock the row, decide on what is there now, save the fields
that changed, in one transaction. The worker's two changes on every preview skip the lock: a queued preview is taken
by one conditional UPDATE that returns it (`_CLAIM_QUEUED`), and its success is saved only if its version has not moved
since (`_preview_change_at`); anything else goes the locked way. A preview is never generated or written again once
finished.
"""

import logging
import math
import os
import random
import secrets
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import kombu.exceptions
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from avatar_creator import events, files, images, webhooks
from avatar_creator import generators as gen
from avatar_creator.errors import PreviewNotAvailable, QueueUnavailable, ServiceError
from avatar_creator.models import ACTIVE_PREVIEW_STATUSES, Avatar, Preview, PreviewStatus, Project
from avatar_creator.prepared import PreparedUpdate
from avatar_creator.prompts import Persona
from avatar_creator.services.rates import preview_rate_check

logger = logging.getLogger(__name__)

_DEADLINE_MESSAGE = "The preview did not finish in time. Try again."
_STORE_FAILED_MESSAGE = "The generated image could not be stored. Try again in a moment."
_ABANDONED_MESSAGE = "The preview stopped making progress and was abandoned. Try again."
TIME_LIMIT_MESSAGE = "The image took too long to generate. Try again."
# The largest image an image API may send (it is downscaled to images.MAX_SIDE when stored).
_UPSTREAM_MAX_SIDE = 4096
_PROCESS_STARTED = timezone.now()


def preview_request(*, user, project: Project, persona: Persona | None = None, seed: int | None = None,
                    **fields) -> Preview:  # fmt: skip
    """Create a queued preview and hand it to the queue once committed.

    Takes a `persona`, or its fields as keyword arguments (prompt, gender, age_range, style, ethnicity, body_type).
    Raises RateLimitExceeded past the user's preview rate and QueueUnavailable when the broker cannot take the job
    (the preview is then marked failed, so nothing stays queued forever).
    """
    persona = persona.replace(**fields) if persona is not None else Persona(**fields)
    return previews_request(user=user, project=project, persona=persona, seed=seed, count=1)[0]


def previews_request(*, user, project: Project, persona: Persona, seed: int | None = None, count: int = 1,
                     webhook: str = "") -> list[Preview]:  # fmt: skip
    """Create `count` queued previews of one persona, seeds `seed`, `seed+1`, ... (a random base when None),
    sharing one batch id, and queue each once committed. The whole batch is admitted by the preview rate or
    refused before any row is written; errors as preview_request."""
    if seed is None:
        seed = secrets.randbelow(2**32)
    width, height = persona.dimensions
    now = timezone.now()
    batch_id = uuid.uuid4()
    with transaction.atomic():
        # Admission and creation in one transaction: the check holds the user's row lock until the rows exist.
        preview_rate_check(user=user, count=count)
        previews = [
            Preview.objects.create(
                owner=user,
                project=project,
                prompt=persona.prompt,
                **persona.fields(),
                enhanced_prompt=persona.enhanced_prompt,
                negative_prompt=persona.negative_prompt,
                seed=(seed + i) % 2**32,
                width=width,
                height=height,
                generator=settings.AVATAR_GENERATOR,
                deadline_at=now + timedelta(seconds=settings.AVATAR_PREVIEW_DEADLINE),
                expires_at=now + timedelta(seconds=settings.AVATAR_PREVIEW_TTL),
                batch_id=batch_id,
                webhook_url=webhook,
            )
            for i in range(count)
        ]
        refused: list = []
        for preview in previews:
            transaction.on_commit(partial(_preview_enqueue_noting_refusal, preview.pk, refused))
    if refused:
        raise QueueUnavailable(details={"previewId": str(refused[0])})
    return previews  # as created: queued (a worker may have taken one since; the answer says how it was accepted)


def _preview_enqueue(*, preview_id) -> bool:
    """Hand a committed preview to the queue; False when the broker refused it (the preview is then failed)."""
    from avatar_creator import queue  # queue imports services; importing here keeps the dependency one-way at load

    try:
        queue.enqueue_preview(preview_id)
    except (kombu.exceptions.OperationalError, OSError) as exc:
        logger.error("could not queue preview %s: %s", preview_id, exc)
        preview_fail(preview_id=preview_id, code=QueueUnavailable.code, message=QueueUnavailable.default_message)
        return False
    return True


def _preview_enqueue_noting_refusal(preview_id, refused: list) -> None:
    if not _preview_enqueue(preview_id=preview_id):
        refused.append(preview_id)


def _preview_change(preview_id, change) -> Preview | None:
    """The one way a preview's state changes. Locks the row and calls `change(preview)`, which looks at the state
    as it is now and returns the fields it set (nothing: leave the row as it is); saves them in the same
    transaction. Returns the preview as left, or None when its row is gone.

    Once committed, the change is published (events.py): its new `version` is the event id; a preview that left the
    queue moves the others' positions; a preview that finished has its webhook delivered."""
    with transaction.atomic():
        preview = Preview.objects.select_for_update().filter(pk=preview_id).first()
        if preview is None:
            return None
        was_queued, was_finished = preview.status == PreviewStatus.QUEUED, preview.is_finished
        fields = change(preview)
        if fields:
            preview.version += 1
            preview.save(update_fields=[*fields, "version"])
            _publish_on_commit(preview, was_queued=was_queued, was_finished=was_finished)
    return preview


def _preview_change_at(preview: Preview, change) -> bool:
    """`_preview_change` without the lock and its transaction, for the worker's change on every preview that it
    generated (running -> succeeded): `change` decides on `preview` as it was read, and one UPDATE saves its
    fields only if the row is still at the `version` read. Every change of state bumps the version (here or under the
    lock), so a change that got there first (a cancel, the reaper, a twin) is never overwritten. Returns False when
    nothing was written: `change` set nothing, or the row moved on or is gone; `preview` is then stale and the caller
    decides again through `_preview_change`. Published once committed, as `_preview_change` does."""
    version = preview.version
    was_queued, was_finished = preview.status == PreviewStatus.QUEUED, preview.is_finished
    fields = change(preview)
    if not fields:
        return False
    values = {field: getattr(preview, field) for field in fields}
    if not Preview.objects.filter(pk=preview.pk, version=version).update(**values, version=version + 1):
        return False
    preview.version = version + 1
    _publish_on_commit(preview, was_queued=was_queued, was_finished=was_finished)
    return True


def _publish_on_commit(preview: Preview, *, was_queued: bool, was_finished: bool) -> None:
    """Once the change that left `preview` as it is commits: its event (and the queue's, when it left the queue or
    joined it again: a retry or a requeued preview is older than those queued meanwhile, so it stands ahead of them),
    and its webhook if it just finished."""
    completed = bool(preview.webhook_url) and preview.is_finished and not was_finished
    transaction.on_commit(partial(_preview_published, preview_id=preview.pk, version=preview.version,
                                  queue_moved=was_queued != (preview.status == PreviewStatus.QUEUED),
                                  completed=completed))  # fmt: skip


def _preview_published(*, preview_id, version: int, queue_moved: bool, completed: bool) -> None:
    from avatar_creator import queue  # as in _preview_enqueue

    events.preview_changed(preview_id, version=version, queue_moved=queue_moved)
    if completed:
        queue.enqueue_webhook(preview_id)


def _set(preview: Preview, **values) -> list[str]:
    for field, value in values.items():
        setattr(preview, field, value)
    return list(values)


def _failed(preview: Preview, *, code: str, message: str, retry_after: float | None = None) -> list[str]:
    return _set(preview, status=PreviewStatus.FAILED, error_code=code, error_message=message,
                retry_after=retry_after, finished_at=timezone.now())  # fmt: skip


@dataclass(frozen=True)
class AttemptOutcome:
    """What one generation attempt left behind: finished, or to be retried after `retry_in` seconds."""

    status: str
    retry_in: float | None = None


def _claim_query(*, pk, now):
    """A queued preview whose deadline is still ahead, taken by this attempt (what `start` below decides for it)."""
    queued = Preview.objects.filter(pk=pk, status=PreviewStatus.QUEUED, deadline_at__gt=now)
    return queued, {
        "status": PreviewStatus.RUNNING, "started_at": Coalesce("started_at", Value(now)),
        "attempts": F("attempts") + 1, "heartbeat_at": now, "next_attempt_at": None, "version": F("version") + 1,
    }  # fmt: skip


# The worker takes a queued preview in one statement, which returns the row as taken; its SQL is compiled once.
_CLAIM_QUEUED = PreparedUpdate(Preview, _claim_query, pk=Preview._meta.pk, now=Preview._meta.get_field("deadline_at"))


def preview_attempt(*, preview_id) -> AttemptOutcome:
    """Run one generation attempt for a preview. Idempotent: a finished preview is never generated again."""

    took = False

    def start(preview):
        nonlocal took
        if preview.is_finished:
            return None
        now = timezone.now()
        if preview.status == PreviewStatus.RUNNING and not _heartbeat_stale(preview, now=now):
            # Another worker has it (a redelivered twin of a job the reaper re-queued): never run it twice at once.
            return None
        if now >= preview.deadline_at:
            return _failed(preview, code=gen.GENERATION_TIMEOUT, message=_DEADLINE_MESSAGE)
        took = True
        return _set(preview, status=PreviewStatus.RUNNING, started_at=preview.started_at or now,
                    attempts=preview.attempts + 1, heartbeat_at=now, next_attempt_at=None)  # fmt: skip

    # A queued preview within its deadline (nearly always) is taken by one UPDATE that returns it; anything else is
    # decided under the lock.
    preview = _CLAIM_QUEUED.run(pk=preview_id, now=timezone.now())
    if preview is not None:
        took = True
        _publish_on_commit(preview, was_queued=True, was_finished=False)
    else:
        preview = _preview_change(preview_id, start)
    if preview is None:
        logger.info("preview %s is gone; nothing to run", preview_id)
        return AttemptOutcome(status="missing")
    if not took:
        if preview.status == PreviewStatus.RUNNING:
            # Maybe alive, maybe a dead worker's last beat: look again once that beat would be stale.
            stale_at = preview.heartbeat_at + timedelta(seconds=settings.AVATAR_HEARTBEAT_STALE)
            wait = max((stale_at - timezone.now()).total_seconds(), 0) + settings.AVATAR_HEARTBEAT_INTERVAL
            return AttemptOutcome(status=preview.status, retry_in=wait)
        return AttemptOutcome(status=preview.status)

    request = gen.GenerationRequest(
        prompt=preview.enhanced_prompt, negative_prompt=preview.negative_prompt, seed=preview.seed,
        width=preview.width, height=preview.height,
        num_inference_steps=settings.FLUX_STEPS, guidance_scale=settings.FLUX_GUIDANCE_SCALE,
    )  # fmt: skip
    # Beating until the outcome is saved, not only while the image API works: a slow image or a stalled storage
    # write must not look like a dead worker to the reaper.
    with _heartbeat(preview.pk):
        try:
            result = gen.get_generator().generate(request)
            # The upstream's bytes are never published as they came (a JPEG may carry HTML or a script after its
            # image data): they are decoded and re-encoded by images.py, like an upload, with our own thumbnail.
            processed = images.process_image(result.image_bytes, body_type=preview.body_type,
                                             max_side=_UPSTREAM_MAX_SIDE)  # fmt: skip
        except gen.GenerationError as exc:
            error = exc
        except images.ImageRejected as exc:
            error = gen.GenerationError(gen.GENERATION_FAILED, f"The image API sent an unusable image: {exc.message}",
                                        retryable=True)  # fmt: skip
        except SoftTimeLimitExceeded:  # the task's own time limit (tasks.py), met while the image API dripped
            logger.warning("preview %s ran out of time in the worker", preview.pk)
            error = gen.GenerationError(gen.GENERATION_TIMEOUT, TIME_LIMIT_MESSAGE, retryable=False)
        else:
            return _preview_store_result(preview=preview, result=result, processed=processed)
        return _preview_after_error(preview_id=preview.pk, attempt=preview.attempts, error=error)


def _preview_store_result(*, preview: Preview, result: gen.GenerationResult,
                          processed: images.ProcessedImage) -> AttemptOutcome:  # fmt: skip
    """Store the files and mark `preview` (as this attempt left it: running) succeeded."""
    preview_id, attempt = preview.pk, preview.attempts
    storage = files.preview_storage()
    try:
        image_name, thumb_name = files.write_all(
            storage,
            [(files.new_name(extension=processed.extension), processed.image_bytes),
             (files.new_name(suffix="-thumb"), processed.thumbnail_bytes)],
        )  # fmt: skip
    except Exception as exc:
        # Any storage backend fault (disk full, S3 down): retried like a transient generation fault, never a
        # task crash that would leave the preview `running` until the reaper finds it.
        logger.error("storing preview %s failed: %s", preview_id, exc)
        error = gen.GenerationError(gen.GENERATION_FAILED, _STORE_FAILED_MESSAGE, retryable=True)
        return _preview_after_error(preview_id=preview_id, attempt=attempt, error=error)

    def succeed(preview):
        if not _running_attempt(preview, attempt):
            # Canceled, reaped, finished or taken over by a redelivered twin while we generated: keep what is there.
            files.delete_after_commit(storage, [image_name, thumb_name])
            return None
        preview.image.name, preview.thumbnail.name = image_name, thumb_name
        return ["image", "thumbnail"] + _set(
            preview, status=PreviewStatus.SUCCEEDED, model_used=result.model,
            duration_ms=int(result.duration_s * 1000), width=processed.width, height=processed.height, error_code="",
            error_message="", finished_at=timezone.now(),
        )  # fmt: skip

    # Still at the version this attempt's start left (nothing happened since): one UPDATE; else under the lock.
    if not _preview_change_at(preview, succeed):
        preview = _preview_change(preview_id, succeed)
    if preview is None:
        files.delete_now(storage, [image_name, thumb_name])
        return AttemptOutcome(status="missing")
    return AttemptOutcome(status=preview.status)


def _running_attempt(preview: Preview, attempt: int) -> bool:
    """Whether `preview` is still running the attempt that took it as its `attempt`-th: not finished, not queued
    again by the reaper, not taken over since by a twin (each start counts an attempt)."""
    return preview.status == PreviewStatus.RUNNING and preview.attempts == attempt


def _preview_after_error(*, preview_id, attempt: int, error: gen.GenerationError) -> AttemptOutcome:
    """Settle the `attempt`-th attempt's error: queued again for a retry, or failed; nothing when the preview has
    moved on without it (canceled, requeued, taken over by a twin, which then decides)."""
    wait = None

    def settle(preview):
        nonlocal wait
        if not _running_attempt(preview, attempt):
            return None
        wait = retry_delay(error=error, attempt=preview.attempts)
        out_of_time = timezone.now() + timedelta(seconds=wait or 0) >= preview.deadline_at
        if wait is None or preview.attempts >= settings.AVATAR_MAX_ATTEMPTS or out_of_time:
            wait = None
            return _failed(preview, code=error.code, message=error.message, retry_after=error.retry_after)
        # Waiting for the retry: queued again, with the reason and the time it starts kept for anyone watching.
        next_attempt_at = timezone.now() + timedelta(seconds=wait)
        return _set(preview, status=PreviewStatus.QUEUED, error_code=error.code, error_message=error.message,
                    retry_after=error.retry_after, next_attempt_at=next_attempt_at)  # fmt: skip

    preview = _preview_change(preview_id, settle)
    if preview is None:
        return AttemptOutcome(status="missing")
    if wait is None:
        return AttemptOutcome(status=preview.status)
    logger.info("preview %s attempt %s failed with %s; retrying in %.2fs", preview_id, preview.attempts, error.code,
                wait)  # fmt: skip
    return AttemptOutcome(status=PreviewStatus.QUEUED, retry_in=wait)


def retry_delay(*, error: gen.GenerationError, attempt: int) -> float | None:
    """Seconds to wait before the next attempt, or None when trying again cannot help.

    Model loading waits the provider's estimate and a rate limit its Retry-After; other transient faults back off
    exponentially with jitter. Every wait is capped so a retry stays inside the preview's deadline.
    """
    if not error.retryable:
        return None
    base = settings.AVATAR_RETRY_BASE_DELAY
    cap = settings.AVATAR_RETRY_MAX_WAIT
    if error.code in (gen.MODEL_LOADING, gen.RATE_LIMIT_EXCEEDED) and error.retry_after:
        return min(float(error.retry_after), cap)
    backoff = base * (2 ** max(attempt - 1, 0))
    return min(backoff * random.uniform(0.5, 1.5), cap)


def preview_fail(*, preview_id, code: str, message: str) -> None:
    """Mark an unfinished preview failed (a task that ran out of time, a broker that refused it, the reaper)."""
    _preview_change(preview_id, lambda p: None if p.is_finished else _failed(p, code=code, message=message))


def preview_cancel(*, preview: Preview) -> Preview:
    """Cancel a queued or running preview; a finished one is left as it is."""

    def cancel(locked):
        if locked.is_finished:
            return None
        return _set(locked, status=PreviewStatus.CANCELED, finished_at=timezone.now())

    _preview_change(preview.pk, cancel)
    preview.refresh_from_db()
    return preview


def preview_discard(*, preview: Preview) -> Preview:
    """The user is done with this preview (regenerate, or closing the dialog): cancel it or drop its files."""
    preview_cancel(preview=preview)
    if preview.status == PreviewStatus.SUCCEEDED and not Avatar.objects.filter(preview=preview).exists():
        _preview_expire(preview_id=preview.pk)
        preview.refresh_from_db()
    return preview


def previews_expire_due() -> int:
    """Expire previews past their time to live and delete their files. Returns how many were expired."""
    due = Preview.objects.filter(expires_at__lte=timezone.now()).exclude(status=PreviewStatus.EXPIRED)
    count = 0
    for preview_id in due.values_list("pk", flat=True).iterator():
        _preview_expire(preview_id=preview_id)
        count += 1
    return count


def _preview_expire(*, preview_id) -> None:
    def expire(locked):
        if locked.status == PreviewStatus.EXPIRED:
            return None
        files.delete_after_commit(files.preview_storage(), [locked.image.name, locked.thumbnail.name])
        locked.image.name = locked.thumbnail.name = ""
        return ["image", "thumbnail"] + _set(
            locked, status=PreviewStatus.EXPIRED, finished_at=locked.finished_at or timezone.now()
        )

    _preview_change(preview_id, expire)


def _heartbeat_stale(preview: Preview, *, now) -> bool:
    stale_before = now - timedelta(seconds=settings.AVATAR_HEARTBEAT_STALE)
    return preview.heartbeat_at is None or preview.heartbeat_at < stale_before


class _Beats:
    """The running attempts of this process, and the one thread that beats `heartbeat_at` for all of them every
    AVATAR_HEARTBEAT_INTERVAL seconds (one UPDATE), so that the reaper can tell a dead worker (no beat) from a slow
    generation. Not a change of state: no event.

    One thread and one database connection per process, kept while attempts keep coming (a thread and a new
    connection per attempt cost ~5 ms of CPU each time, and with a generation as long as the interval every beat
    fell on the image work). The thread ends, closing its connection, after IDLE_EXIT seconds without an attempt,
    and starts again with the next; an attempt never waits for a beat."""

    IDLE_EXIT = 60.0

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict = {}  # preview id -> attempts of it running in this process
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # the current thread's own: a thread told to stop never runs again

    @contextmanager
    def beating(self, preview_id):
        with self._lock:
            self._running[preview_id] = self._running.get(preview_id, 0) + 1
            if self._thread is None or not self._thread.is_alive():  # not alive either in a forked child
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, args=(self._stop,), name="heartbeat", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                if self._running.get(preview_id, 0) > 1:
                    self._running[preview_id] -= 1
                else:
                    self._running.pop(preview_id, None)

    def _run(self, stop: threading.Event) -> None:
        me = threading.current_thread()
        last_busy = time.monotonic()
        try:
            while not stop.wait(settings.AVATAR_HEARTBEAT_INTERVAL):
                with self._lock:
                    running = list(self._running)
                    if not running and time.monotonic() - last_busy >= self.IDLE_EXIT:
                        if self._thread is me:
                            self._thread = None
                        return
                if not running:
                    continue
                last_busy = time.monotonic()
                try:
                    Preview.objects.filter(pk__in=running, status=PreviewStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception as exc:  # a missed beat only makes the reaper look sooner; never fail an attempt
                    logger.warning("heartbeat of previews %s failed: %s", running, exc)
                    connection.close()  # the next beat connects afresh
        finally:
            connection.close()

    def stop(self) -> None:
        """End the thread now (tests; a process about to exit needs nothing: the thread is a daemon)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread.is_alive():
            thread.join()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a lock held by another thread at fork time would never be released here
        self._running.clear()
        self._thread = None


_beats = _Beats()
os.register_at_fork(after_in_child=_beats._after_fork)
_heartbeat = _beats.beating
heartbeats_stop = _beats.stop


def previews_requeue_stale() -> int:
    """Queue again the running previews whose worker stopped beating (killed, out of memory): they run again as soon
    as a worker takes them, and the start of that attempt refuses a second copy while one is alive."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.AVATAR_HEARTBEAT_STALE)
    stale = Preview.objects.filter(status=PreviewStatus.RUNNING, heartbeat_at__lt=stale_before, deadline_at__gt=now)

    def requeue(preview):
        if preview.status != PreviewStatus.RUNNING or not _heartbeat_stale(preview, now=timezone.now()):
            return None
        if preview.attempts >= settings.AVATAR_MAX_ATTEMPTS:
            return _failed(preview, code=gen.GENERATION_TIMEOUT, message=_ABANDONED_MESSAGE)
        return _set(preview, status=PreviewStatus.QUEUED, heartbeat_at=None, next_attempt_at=None)

    count = 0
    for preview_id in list(stale.values_list("pk", flat=True)):
        preview = _preview_change(preview_id, requeue)
        if preview is not None and preview.status == PreviewStatus.QUEUED:
            logger.warning("preview %s lost its worker; queued again", preview_id)
            _preview_enqueue(preview_id=preview_id)
            count += 1
    return count


def previews_left_queued(*, before=None) -> list[tuple]:
    """The previews waiting in the queue that were created before `before` (default: when this process started),
    each with the seconds until it is due (0, or what is left of its scheduled retry's wait, which a restart does
    not cut short): what a restart of the embedded default left behind, to be picked up again."""
    before = before or _PROCESS_STARTED
    now = timezone.now()
    left = Preview.objects.filter(status=PreviewStatus.QUEUED, created_at__lt=before)
    return [(pk, max((due - now).total_seconds(), 0.0) if due else 0.0)
            for pk, due in left.values_list("pk", "next_attempt_at")]  # fmt: skip


def previews_left_undelivered(*, before=None) -> list:
    """The previews that finished before `before` (default: when this process started) with a webhook neither
    delivered nor past its retry schedule: what a restart of the embedded default left to deliver (its retries wait
    on timers in the process). Delivered again from the first try; a receiver tells a repeat by its `webhook-id`."""
    before = before or _PROCESS_STARTED
    horizon = before - timedelta(seconds=sum(webhooks.RETRY_SCHEDULE))
    pending = Preview.objects.filter(finished_at__lt=before, finished_at__gte=horizon, webhook_delivered_at=None)
    return list(pending.exclude(webhook_url="").values_list("pk", flat=True))


def previews_reap_stuck() -> int:
    """Queue again the previews whose worker died; fail those still queued/running well past their deadline."""
    previews_requeue_stale()
    grace = timedelta(seconds=settings.FLUX_TIMEOUT + 30)
    stuck = Preview.objects.filter(
        status__in=ACTIVE_PREVIEW_STATUSES, deadline_at__lte=timezone.now() - grace
    ).values_list("pk", flat=True)
    count = 0
    for preview_id in list(stuck):
        preview_fail(preview_id=preview_id, code=gen.GENERATION_TIMEOUT, message=_ABANDONED_MESSAGE)
        count += 1
    return count


def preview_error(*, preview: Preview) -> ServiceError | None:
    """The error a waiting client gets for a preview that did not succeed (None when it did).

    The status comes from the error catalogue by the preview's stored code; a preview still working is
    GENERATION_TIMEOUT (the wait ran out, the job goes on)."""
    if preview.status == PreviewStatus.SUCCEEDED:
        return None
    details = {"previewId": str(preview.pk), "status": preview.status}
    if preview.status == PreviewStatus.FAILED:
        headers = {}
        if preview.retry_after:
            details["retryAfter"] = math.ceil(preview.retry_after)
            if preview.error_code == gen.RATE_LIMIT_EXCEEDED:
                headers["Retry-After"] = str(details["retryAfter"])
        if preview.error_code == QueueUnavailable.code:
            return QueueUnavailable(details=details)
        return ServiceError.of(preview.error_code, preview.error_message, details=details, headers=headers)
    if preview.status in ACTIVE_PREVIEW_STATUSES:
        message = "The preview is taking longer than usual. It goes on in the background: poll it by its id."
        return ServiceError.of(gen.GENERATION_TIMEOUT, message, details=details)
    return PreviewNotAvailable(f"The preview was {preview.status}.", details=details)
