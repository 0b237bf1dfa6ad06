"""The preview job, in one place: request -> attempts (by a task, with retries) -> succeeded | failed | canceled,
then expired. Saving a preview as an avatar is in services/avatars.py.

    queued --attempt--> running --image stored--> succeeded --TTL--> expired
      ^                    |--retryable error--> queued (reason kept in error_code/error_message)
      |                    '--final error / out of time--> failed
      '-- cancel (queued or running) --> canceled;   the reaper fails what a vanished worker left behind

Every change of state goes through `_preview_change`: lock the row, decide on what is there now, save the fields
that changed, in one transaction. A preview is never generated or written again once finished.
"""

import logging
import math
import random
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import kombu.exceptions
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from avatar_creator import files, images
from avatar_creator import generators as gen
from avatar_creator.errors import PreviewNotAvailable, QueueUnavailable, ServiceError
from avatar_creator.models import ACTIVE_PREVIEW_STATUSES, Avatar, Preview, PreviewStatus, Project
from avatar_creator.prompts import Persona
from avatar_creator.services.rates import preview_rate_check

logger = logging.getLogger(__name__)

_DEADLINE_MESSAGE = "The preview did not finish in time. Try again."
_STORE_FAILED_MESSAGE = "The generated image could not be stored. Try again in a moment."
_ABANDONED_MESSAGE = "The preview stopped making progress and was abandoned. Try again."
_THUMBNAIL_MIN_SIDE = images.THUMBNAIL_SIZE * 3 // 2


def preview_request(*, user, project: Project, persona: Persona | None = None, seed: int | None = None,
                    **fields) -> Preview:  # fmt: skip
    """Create a queued preview and hand it to the queue once committed.

    Takes a `persona`, or its fields as keyword arguments (prompt, gender, age_range, style, ethnicity, body_type).
    Raises RateLimitExceeded past the user's preview rate and QueueUnavailable when the broker cannot take the job
    (the preview is then marked failed, so nothing stays queued forever).
    """
    persona = persona.replace(**fields) if persona is not None else Persona(**fields)
    preview_rate_check(user=user)
    if seed is None:
        seed = secrets.randbelow(2**32)
    width, height = persona.dimensions
    now = timezone.now()
    with transaction.atomic():
        preview = Preview.objects.create(
            owner=user,
            project=project,
            prompt=persona.prompt,
            **persona.fields(),
            enhanced_prompt=persona.enhanced_prompt,
            negative_prompt=persona.negative_prompt,
            seed=seed,
            width=width,
            height=height,
            generator=settings.AVATAR_GENERATOR,
            deadline_at=now + timedelta(seconds=settings.AVATAR_PREVIEW_DEADLINE),
            expires_at=now + timedelta(seconds=settings.AVATAR_PREVIEW_TTL),
        )
        transaction.on_commit(partial(_preview_enqueue, preview_id=preview.pk))
    preview.refresh_from_db()
    if preview.status == PreviewStatus.FAILED and preview.error_code == QueueUnavailable.code:
        raise QueueUnavailable(details={"previewId": str(preview.pk)})
    return preview


def _preview_enqueue(*, preview_id) -> None:
    from avatar_creator import queue  # queue imports services; importing here keeps the dependency one-way at load

    try:
        queue.enqueue_preview(preview_id)
    except (kombu.exceptions.OperationalError, OSError) as exc:
        logger.error("could not queue preview %s: %s", preview_id, exc)
        preview_fail(preview_id=preview_id, code=QueueUnavailable.code, message=QueueUnavailable.default_message)


def _preview_change(preview_id, change) -> Preview | None:
    """The one way a preview's state changes. Locks the row and calls `change(preview)`, which looks at the state
    as it is now and returns the fields it set (nothing: leave the row as it is); saves them in the same
    transaction. Returns the preview as left, or None when its row is gone."""
    with transaction.atomic():
        preview = Preview.objects.select_for_update().filter(pk=preview_id).first()
        if preview is None:
            return None
        fields = change(preview)
        if fields:
            preview.save(update_fields=fields)
    return preview


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


def preview_attempt(*, preview_id) -> AttemptOutcome:
    """Run one generation attempt for a preview. Idempotent: a finished preview is never generated again."""

    def start(preview):
        if preview.is_finished:
            return None
        now = timezone.now()
        if now >= preview.deadline_at:
            return _failed(preview, code=gen.GENERATION_TIMEOUT, message=_DEADLINE_MESSAGE)
        return _set(preview, status=PreviewStatus.RUNNING, started_at=preview.started_at or now,
                    attempts=preview.attempts + 1)  # fmt: skip

    preview = _preview_change(preview_id, start)
    if preview is None:
        logger.info("preview %s is gone; nothing to run", preview_id)
        return AttemptOutcome(status="missing")
    if preview.status != PreviewStatus.RUNNING:
        return AttemptOutcome(status=preview.status)

    request = gen.GenerationRequest(
        prompt=preview.enhanced_prompt, negative_prompt=preview.negative_prompt, seed=preview.seed,
        width=preview.width, height=preview.height,
        num_inference_steps=settings.FLUX_STEPS, guidance_scale=settings.FLUX_GUIDANCE_SCALE,
    )  # fmt: skip
    try:
        result = gen.get_generator().generate(request)
        # The generator checked the bytes with images.py and kept the pixels; only a backend that did not needs
        # a decode here, at thumbnail scale (the image is stored as the API sent it).
        pixels = result.pixels or images.load_image(result.image_bytes, max_side=4096, min_side=_THUMBNAIL_MIN_SIDE)
        thumbnail = images.make_thumbnail(pixels, body_type=preview.body_type)
    except gen.GenerationError as exc:
        return _preview_after_error(preview_id=preview.pk, error=exc)
    except images.ImageRejected as exc:
        error = gen.GenerationError(gen.GENERATION_FAILED, f"The image API sent an unusable image: {exc.message}",
                                    retryable=True)  # fmt: skip
        return _preview_after_error(preview_id=preview.pk, error=error)
    return _preview_store_result(preview_id=preview.pk, result=result, thumbnail=thumbnail)


def _preview_store_result(*, preview_id, result: gen.GenerationResult, thumbnail: bytes) -> AttemptOutcome:
    storage = files.preview_storage()
    extension = files.extension_for(result.content_type)
    try:
        image_name, thumb_name = files.write_all(
            storage,
            [(files.new_name(extension=extension), result.image_bytes), (files.new_name(suffix="-thumb"), thumbnail)],
        )
    except Exception as exc:
        # Any storage backend fault (disk full, S3 down): retried like a transient generation fault, never a
        # task crash that would leave the preview `running` until the reaper finds it.
        logger.error("storing preview %s failed: %s", preview_id, exc)
        error = gen.GenerationError(gen.GENERATION_FAILED, _STORE_FAILED_MESSAGE, retryable=True)
        return _preview_after_error(preview_id=preview_id, error=error)

    def succeed(preview):
        if preview.status != PreviewStatus.RUNNING:
            # Canceled, reaped or finished by a redelivered twin while we generated: keep what is there.
            files.delete_after_commit(storage, [image_name, thumb_name])
            return None
        preview.image.name, preview.thumbnail.name = image_name, thumb_name
        return ["image", "thumbnail"] + _set(
            preview, status=PreviewStatus.SUCCEEDED, model_used=result.model,
            duration_ms=int(result.duration_s * 1000), width=result.width, height=result.height, error_code="",
            error_message="", finished_at=timezone.now(),
        )  # fmt: skip

    preview = _preview_change(preview_id, succeed)
    if preview is None:
        files.delete_now(storage, [image_name, thumb_name])
        return AttemptOutcome(status="missing")
    return AttemptOutcome(status=preview.status)


def _preview_after_error(*, preview_id, error: gen.GenerationError) -> AttemptOutcome:
    wait = None

    def settle(preview):
        nonlocal wait
        if preview.status != PreviewStatus.RUNNING:
            return None
        wait = retry_delay(error=error, attempt=preview.attempts)
        out_of_time = timezone.now() + timedelta(seconds=wait or 0) >= preview.deadline_at
        if wait is None or preview.attempts >= settings.AVATAR_MAX_ATTEMPTS or out_of_time:
            wait = None
            return _failed(preview, code=error.code, message=error.message, retry_after=error.retry_after)
        # Waiting for the retry: queued again, with the reason kept for anyone polling.
        return _set(preview, status=PreviewStatus.QUEUED, error_code=error.code, error_message=error.message)

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


def previews_reap_stuck() -> int:
    """Fail previews still queued/running well past their deadline: their worker vanished."""
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
