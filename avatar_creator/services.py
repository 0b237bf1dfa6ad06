"""Every write. Plain keyword-only functions; views and tasks call these and nothing else writes."""

import base64
import logging
import math
import random
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import kombu.exceptions
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.authtoken.models import Token

from avatar_creator import generators as gen
from avatar_creator import images, prompts, selectors
from avatar_creator.errors import (
    GenerationFailedError,
    InsufficientCredits,
    NotFound,
    PreviewNotAvailable,
    QueueUnavailable,
    RateLimitExceeded,
    ServiceError,
    StorageFailed,
    ValidationFailed,
)
from avatar_creator.models import (
    ACTIVE_PREVIEW_STATUSES,
    Avatar,
    BodyType,
    CreditAccount,
    CreditLedgerEntry,
    LedgerReason,
    Preview,
    PreviewStatus,
    Project,
    SourceType,
    preview_storage,
)

logger = logging.getLogger(__name__)
User = get_user_model()


# Accounts


def user_register(*, username: str, password: str, email: str = "") -> tuple[User, Token]:
    username = username.strip()
    candidate = User(username=username, email=email)
    try:
        password_validation.validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise ValidationFailed(details={"password": list(exc.messages)}) from None
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationFailed(details={"username": ["This username is taken."]})
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, email=email, password=password)
            account = CreditAccount.objects.create(user=user, balance=0)
            credits_add(
                account=account, amount=settings.AVATAR_SIGNUP_CREDITS, reason=LedgerReason.SIGNUP, note="Welcome"
            )
            token = Token.objects.create(user=user)
    except IntegrityError:
        raise ValidationFailed(details={"username": ["This username is taken."]}) from None
    return user, token


def token_for_user(*, user) -> Token:
    token, _ = Token.objects.get_or_create(user=user)
    return token


# Credits


def credit_account_for_user(*, user) -> CreditAccount:
    account, _ = CreditAccount.objects.get_or_create(user=user)
    return account


def credits_add(
    *, account: CreditAccount, amount: int, reason: str, note: str = "", created_by=None
) -> CreditLedgerEntry:
    """Add (or, negative, remove) credits; a removal stops at zero. Locks the row for the change."""
    with transaction.atomic():
        locked = CreditAccount.objects.select_for_update().get(pk=account.pk)
        delta = max(amount, -locked.balance)
        locked.balance += delta
        locked.save(update_fields=["balance", "updated_at"])
        account.balance = locked.balance
        return CreditLedgerEntry.objects.create(
            account=locked, delta=delta, balance_after=locked.balance, reason=reason, note=note, created_by=created_by
        )


def credits_charge(*, user, amount: int, avatar: Avatar | None = None, note: str = "") -> CreditLedgerEntry:
    """Take `amount` credits or raise InsufficientCredits; must run inside the caller's transaction.

    A single conditional UPDATE makes concurrent charges safe without reading the balance first.
    """
    account = credit_account_for_user(user=user)
    updated = CreditAccount.objects.filter(pk=account.pk, balance__gte=amount).update(balance=F("balance") - amount)
    if not updated:
        balance = CreditAccount.objects.filter(pk=account.pk).values_list("balance", flat=True).first() or 0
        raise InsufficientCredits(
            f"Saving costs {amount} credits and you have {balance}.",
            details={"required": amount, "balance": balance},
        )
    balance_after = CreditAccount.objects.filter(pk=account.pk).values_list("balance", flat=True).get()
    return CreditLedgerEntry.objects.create(
        account=account,
        delta=-amount,
        balance_after=balance_after,
        reason=LedgerReason.AVATAR_SAVE,
        note=note,
        avatar=avatar,
    )


# Projects


def project_create(*, owner, name: str, description: str = "") -> Project:
    return Project.objects.create(owner=owner, name=name, description=description)


def project_update(*, project: Project, name: str | None = None, description: str | None = None) -> Project:
    fields = []
    if name is not None:
        project.name = name
        fields.append("name")
    if description is not None:
        project.description = description
        fields.append("description")
    if fields:
        project.save(update_fields=[*fields, "updated_at"])
    return project


def project_delete(*, project: Project) -> int:
    """Delete a project with its avatars and previews; their files go once the rows are gone for good.
    Returns how many avatars went with it."""
    files = [name for avatar in project.avatars.all() for name in (avatar.image.name, avatar.thumbnail.name)]
    preview_files = [name for p in project.previews.all() for name in (p.image.name, p.thumbnail.name)]
    count = len(files) // 2
    with transaction.atomic():
        project.delete()
        transaction.on_commit(lambda: _delete_files(default_storage, files))
        transaction.on_commit(lambda: _delete_files(preview_storage(), preview_files))
    return count


# Avatars


def avatar_rename(*, avatar: Avatar, name: str) -> Avatar:
    avatar.name = name
    avatar.save(update_fields=["name"])
    _project_touch(project_id=avatar.project_id)
    return avatar


def avatar_delete(*, avatar: Avatar) -> None:
    files = [avatar.image.name, avatar.thumbnail.name]
    with transaction.atomic():
        avatar.delete()
        _project_touch(project_id=avatar.project_id)
        transaction.on_commit(lambda: _delete_files(default_storage, files))


def _project_touch(*, project_id) -> None:
    """A project's "last updated" follows changes to its avatars."""
    Project.objects.filter(pk=project_id).update(updated_at=timezone.now())


def _delete_files(storage, names) -> None:
    for name in names:
        if not name:
            continue
        try:
            storage.delete(name)
        except OSError:
            # A file left behind is garbage, not data loss; the row is already gone.
            logger.warning("could not delete stored file %s", name)


# Previews: request -> run (by a task, with retries) -> save, cancel, discard, expire.


def preview_request(
    *,
    user,
    project: Project,
    prompt: str,
    gender: str | None = None,
    age_range: str | None = None,
    style: str | None = None,
    ethnicity: str | None = None,
    body_type: str = BodyType.HALF_BODY,
    seed: int | None = None,
) -> Preview:
    """Create a queued preview and hand it to the queue once committed.

    Raises RateLimitExceeded past the user's preview rate and QueueUnavailable when the broker cannot take the job
    (the preview is then marked failed, so nothing stays queued forever).
    """
    _preview_rate_check(user=user)
    if seed is None:
        seed = secrets.randbelow(2**32)
    width, height = prompts.dimensions_for(body_type)
    now = timezone.now()
    persona = {"gender": gender, "age_range": age_range, "style": style, "ethnicity": ethnicity}
    with transaction.atomic():
        preview = Preview.objects.create(
            owner=user,
            project=project,
            prompt=prompt,
            **persona,
            body_type=body_type,
            enhanced_prompt=prompts.build_prompt(prompt=prompt, body_type=body_type, **persona),
            negative_prompt=prompts.build_negative_prompt(body_type=body_type),
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


def _preview_rate_check(*, user) -> None:
    limit, window = parse_rate(settings.AVATAR_PREVIEW_RATE)
    since = timezone.now() - window
    recent = Preview.objects.filter(owner=user, created_at__gte=since)
    if recent.count() < limit:
        return
    oldest = recent.order_by("created_at").values_list("created_at", flat=True).first()
    retry_after = max(1, math.ceil((oldest + window - timezone.now()).total_seconds()))
    raise RateLimitExceeded(
        f"You can request {limit} previews per {_window_name(window)}. Try again in {retry_after} seconds.",
        details={"retryAfter": retry_after, "limit": limit},
        headers={"Retry-After": str(retry_after)},
    )


_RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(rate: str) -> tuple[int, timedelta]:
    """`"60/hour"` -> (60, 1 hour). Also takes the short forms `s`, `m`, `h`, `d`."""
    count, _, unit = rate.partition("/")
    unit = unit.strip().lower()
    seconds = next((s for name, s in _RATE_UNITS.items() if name.startswith(unit) and unit), None)
    if seconds is None:
        raise ValueError(f"Cannot read the rate {rate!r}; write it like 60/hour.")
    return int(count), timedelta(seconds=seconds)


def _window_name(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    return next((name for name, s in _RATE_UNITS.items() if s == seconds), f"{seconds} seconds")


def _preview_enqueue(*, preview_id) -> None:
    from avatar_creator import tasks  # tasks import services; importing here keeps the dependency one-way at load

    try:
        tasks.run_preview.delay(str(preview_id))
    except (kombu.exceptions.OperationalError, OSError) as exc:
        logger.error("could not queue preview %s: %s", preview_id, exc)
        preview_fail(preview_id=preview_id, code=QueueUnavailable.code, message=QueueUnavailable.default_message)


@dataclass(frozen=True)
class AttemptOutcome:
    """What one generation attempt left behind: finished, or to be retried after `retry_in` seconds."""

    status: str
    retry_in: float | None = None


def preview_attempt(*, preview_id) -> AttemptOutcome:
    """Run one generation attempt for a preview. Idempotent: a finished preview is never generated again."""
    with transaction.atomic():
        preview = Preview.objects.select_for_update().filter(pk=preview_id).first()
        if preview is None:
            logger.info("preview %s is gone; nothing to run", preview_id)
            return AttemptOutcome(status="missing")
        if preview.is_finished:
            return AttemptOutcome(status=preview.status)
        now = timezone.now()
        if now >= preview.deadline_at:
            _mark_failed(preview, code=gen.GENERATION_TIMEOUT, message=_DEADLINE_MESSAGE)
            return AttemptOutcome(status=preview.status)
        preview.status = PreviewStatus.RUNNING
        preview.started_at = preview.started_at or now
        preview.attempts += 1
        preview.save(update_fields=["status", "started_at", "attempts"])

    request = gen.GenerationRequest(
        prompt=preview.enhanced_prompt,
        negative_prompt=preview.negative_prompt,
        width=preview.width,
        height=preview.height,
        seed=preview.seed,
        num_inference_steps=settings.FLUX_STEPS,
        guidance_scale=settings.FLUX_GUIDANCE_SCALE,
    )
    try:
        result = gen.get_generator().generate(request)
        # Only the thumbnail needs pixels here (the image is stored as the API sent it): decode at thumbnail scale.
        processed = images.load_image(result.image_bytes, max_side=4096, min_side=images.THUMBNAIL_SIZE * 3 // 2)
        thumbnail = images.make_thumbnail(processed, body_type=preview.body_type)
    except gen.GenerationError as exc:
        return _preview_after_error(preview_id=preview.pk, error=exc)
    except images.ImageRejected as exc:
        error = gen.GenerationError(gen.GENERATION_FAILED, f"The image API sent an unusable image: {exc.message}",
                                    retryable=True)  # fmt: skip
        return _preview_after_error(preview_id=preview.pk, error=error)
    return _preview_store_result(preview_id=preview.pk, result=result, thumbnail=thumbnail)


_DEADLINE_MESSAGE = "The preview did not finish in time. Try again."
_STORE_FAILED_MESSAGE = "The generated image could not be stored. Try again in a moment."


_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


def _preview_store_result(*, preview_id, result: gen.GenerationResult, thumbnail: bytes) -> AttemptOutcome:
    storage = preview_storage()
    extension = _EXTENSIONS.get(result.content_type, "jpg")
    written: list[str] = []
    try:
        written.append(storage.save(f"{uuid.uuid4().hex}.{extension}", ContentFile(result.image_bytes)))
        written.append(storage.save(f"{uuid.uuid4().hex}-thumb.jpg", ContentFile(thumbnail)))
    except Exception as exc:
        # Any storage backend fault (disk full, S3 down): retried like a transient generation fault, never a
        # task crash that would leave the preview `running` until the reaper finds it.
        _delete_files(storage, written)
        logger.error("storing preview %s failed: %s", preview_id, exc)
        error = gen.GenerationError(gen.GENERATION_FAILED, _STORE_FAILED_MESSAGE, retryable=True)
        return _preview_after_error(preview_id=preview_id, error=error)
    image_name, thumb_name = written
    with transaction.atomic():
        preview = Preview.objects.select_for_update().filter(pk=preview_id).first()
        if preview is None or preview.status != PreviewStatus.RUNNING:
            # Canceled, reaped or finished by a redelivered twin while we generated: keep what is there.
            transaction.on_commit(partial(_delete_files, storage, [image_name, thumb_name]))
            return AttemptOutcome(status=preview.status if preview else "missing")
        preview.image.name = image_name
        preview.thumbnail.name = thumb_name
        preview.status = PreviewStatus.SUCCEEDED
        preview.model_used = result.model
        preview.duration_ms = int(result.duration_s * 1000)
        preview.width, preview.height = result.width, result.height
        preview.error_code = preview.error_message = ""
        preview.finished_at = timezone.now()
        preview.save(
            update_fields=[
                "image", "thumbnail", "status", "model_used", "duration_ms", "width", "height", "error_code",
                "error_message", "finished_at",
            ]
        )  # fmt: skip
    return AttemptOutcome(status=PreviewStatus.SUCCEEDED)


def _preview_after_error(*, preview_id, error: gen.GenerationError) -> AttemptOutcome:
    with transaction.atomic():
        preview = Preview.objects.select_for_update().filter(pk=preview_id).first()
        if preview is None or preview.status != PreviewStatus.RUNNING:
            return AttemptOutcome(status=preview.status if preview else "missing")
        wait = retry_delay(error=error, attempt=preview.attempts)
        out_of_time = timezone.now() + timedelta(seconds=wait or 0) >= preview.deadline_at
        if wait is None or preview.attempts >= settings.AVATAR_MAX_ATTEMPTS or out_of_time:
            _mark_failed(preview, code=error.code, message=error.message, retry_after=error.retry_after)
            return AttemptOutcome(status=preview.status)
        # Waiting for the retry: queued again, with the reason kept for anyone polling.
        preview.status = PreviewStatus.QUEUED
        preview.error_code, preview.error_message = error.code, error.message
        preview.save(update_fields=["status", "error_code", "error_message"])
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
    with transaction.atomic():
        preview = Preview.objects.select_for_update().filter(pk=preview_id).first()
        if preview is not None and not preview.is_finished:
            _mark_failed(preview, code=code, message=message)


def _mark_failed(preview: Preview, *, code: str, message: str, retry_after: float | None = None) -> None:
    preview.status = PreviewStatus.FAILED
    preview.error_code = code
    preview.error_message = message
    preview.retry_after = retry_after
    preview.finished_at = timezone.now()
    preview.save(update_fields=["status", "error_code", "error_message", "retry_after", "finished_at"])


def preview_error(*, preview: Preview) -> ServiceError | None:
    """The error a waiting client gets for a preview that did not succeed (None when it did)."""
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
        status = gen.http_status_for(preview.error_code)
        return GenerationFailedError(
            code=preview.error_code, status=status, message=preview.error_message, details=details, headers=headers
        )
    if preview.status in ACTIVE_PREVIEW_STATUSES:
        return GenerationFailedError(
            code=gen.GENERATION_TIMEOUT,
            status=504,
            message="The preview is taking longer than usual. It goes on in the background: poll it by its id.",
            details=details,
            headers={"Location": f"/api/avatar-creator/previews/{preview.pk}"},
        )
    return PreviewNotAvailable(f"The preview was {preview.status}.", details=details)


def preview_wait(*, preview: Preview, timeout: float) -> Preview:
    """Block until the preview finishes or `timeout` passes (the waiting, synchronous API)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while not preview.is_finished and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
        preview.refresh_from_db()
    return preview


def preview_cancel(*, preview: Preview) -> Preview:
    """Cancel a queued or running preview; a finished one is left as it is."""
    with transaction.atomic():
        locked = Preview.objects.select_for_update().get(pk=preview.pk)
        if not locked.is_finished:
            locked.status = PreviewStatus.CANCELED
            locked.finished_at = timezone.now()
            locked.save(update_fields=["status", "finished_at"])
    preview.refresh_from_db()
    return preview


def preview_discard(*, preview: Preview) -> Preview:
    """The user is done with this preview (regenerate, or closing the dialog): cancel it or drop its files."""
    preview_cancel(preview=preview)
    if preview.status == PreviewStatus.SUCCEEDED and not Avatar.objects.filter(preview=preview).exists():
        _preview_expire(preview=preview)
        preview.refresh_from_db()
    return preview


def previews_expire_due() -> int:
    """Expire previews past their time to live and delete their files. Returns how many were expired."""
    due = Preview.objects.filter(expires_at__lte=timezone.now()).exclude(status=PreviewStatus.EXPIRED)
    count = 0
    for preview in due.iterator():
        _preview_expire(preview=preview)
        count += 1
    return count


def _preview_expire(*, preview: Preview) -> None:
    with transaction.atomic():
        locked = Preview.objects.select_for_update().filter(pk=preview.pk).first()
        if locked is None or locked.status == PreviewStatus.EXPIRED:
            return
        files = [locked.image.name, locked.thumbnail.name]
        locked.status = PreviewStatus.EXPIRED
        locked.finished_at = locked.finished_at or timezone.now()
        locked.image.name = locked.thumbnail.name = ""
        locked.save(update_fields=["status", "finished_at", "image", "thumbnail"])
        transaction.on_commit(partial(_delete_files, preview_storage(), files))


def previews_reap_stuck() -> int:
    """Fail previews still queued/running well past their deadline: their worker vanished."""
    grace = timedelta(seconds=settings.FLUX_TIMEOUT + 30)
    stuck = Preview.objects.filter(
        status__in=ACTIVE_PREVIEW_STATUSES, deadline_at__lte=timezone.now() - grace
    ).values_list("pk", flat=True)
    count = 0
    for preview_id in list(stuck):
        preview_fail(
            preview_id=preview_id,
            code=gen.GENERATION_TIMEOUT,
            message="The preview stopped making progress and was abandoned. Try again.",
        )
        count += 1
    return count


def preview_read_files(*, preview: Preview) -> tuple[str, str]:
    """The preview's image and thumbnail as plain base64 (the waiting API's answer)."""
    image, thumbnail = _preview_file_bytes(preview=preview)
    return base64.b64encode(image).decode("ascii"), base64.b64encode(thumbnail).decode("ascii")


def _preview_file_bytes(*, preview: Preview) -> tuple[bytes, bytes]:
    storage = preview_storage()
    with storage.open(preview.image.name, "rb") as image, storage.open(preview.thumbnail.name, "rb") as thumb:
        return image.read(), thumb.read()


def preview_save(*, user, project: Project, preview_id, name: str | None = None) -> tuple[Avatar, bool]:
    """Save a succeeded preview as an avatar and charge for it, in one transaction.

    Returns (avatar, created). Saving the same preview again returns its avatar and charges nothing.
    """
    with transaction.atomic():
        preview = Preview.objects.select_for_update().filter(pk=preview_id, owner=user, project=project).first()
        if preview is None:
            raise NotFound("Preview not found.")
        existing = Avatar.objects.filter(preview=preview).first()
        if existing is not None:
            return existing, False
        if preview.status != PreviewStatus.SUCCEEDED or preview.expires_at <= timezone.now():
            raise PreviewNotAvailable(
                f"This preview is {_preview_state_words(preview)} and cannot be saved. Generate a new one.",
                details={"status": preview.status},
            )
        try:
            image_bytes, thumb_bytes = _preview_file_bytes(preview=preview)
        except OSError as exc:
            logger.error("preview %s files unreadable: %s", preview.pk, exc)
            raise PreviewNotAvailable(
                "This preview's image is no longer available. Generate a new one.", details={"status": preview.status}
            ) from None
        extension = preview.image.name.rsplit(".", 1)[-1]
        avatar = Avatar(
            project=project,
            name=name or _default_avatar_name(preview),
            source_type=SourceType.AI_GENERATED,
            generation_prompt=preview.prompt,
            enhanced_prompt=preview.enhanced_prompt,
            gender=preview.gender,
            age_range=preview.age_range,
            style=preview.style,
            ethnicity=preview.ethnicity,
            body_type=preview.body_type,
            seed=preview.seed,
            width=preview.width,
            height=preview.height,
            preview=preview,
        )
        _avatar_store(avatar=avatar, user=user, image=(image_bytes, extension), thumbnail=thumb_bytes)
    return avatar, True


def _preview_state_words(preview: Preview) -> str:
    if preview.status == PreviewStatus.SUCCEEDED:
        return "expired"
    return {"queued": "still queued", "running": "still generating"}.get(preview.status, preview.status)


def _default_avatar_name(preview: Preview) -> str:
    words = preview.prompt.split()
    name = " ".join(words[:6])
    return name[:100] or "Avatar"


def avatar_save_upload(
    *,
    user,
    project: Project,
    name: str,
    image_base64: str,
    generation_prompt: str = "",
    gender: str | None = None,
    age_range: str | None = None,
    style: str | None = None,
    ethnicity: str | None = None,
    body_type: str = BodyType.HALF_BODY,
) -> Avatar:
    """The legacy save: the client sends the image bytes. They are decoded, checked and re-encoded, never trusted;
    the client's thumbnail is ignored and made anew from the image."""
    processed = images.process_image(images.decode_base64_image(image_base64), body_type=body_type)
    avatar = Avatar(
        project=project,
        name=name,
        # Bytes that came with a generation prompt are the client's earlier preview; without one, an upload.
        source_type=SourceType.AI_GENERATED if generation_prompt else SourceType.UPLOADED,
        generation_prompt=generation_prompt or "",
        gender=gender,
        age_range=age_range,
        style=style,
        ethnicity=ethnicity or None,
        body_type=body_type,
        width=processed.width,
        height=processed.height,
    )
    with transaction.atomic():
        _avatar_store(
            avatar=avatar,
            user=user,
            image=(processed.image_bytes, processed.extension),
            thumbnail=processed.thumbnail_bytes,
        )
    return avatar


def _avatar_store(*, avatar: Avatar, user, image: tuple[bytes, str], thumbnail: bytes) -> None:
    """Charge, write the files and the row, inside the caller's transaction. A failure leaves nothing behind:
    the transaction undoes the charge and the row, and the files written so far are deleted here."""
    entry = credits_charge(user=user, amount=settings.AVATAR_SAVE_COST, note=f"Avatar {avatar.name[:60]}")
    image_bytes, extension = image
    written: list[str] = []
    try:
        written.append(default_storage.save(f"avatars/{uuid.uuid4().hex}.{extension}", ContentFile(image_bytes)))
        written.append(default_storage.save(f"avatars/thumbnails/{uuid.uuid4().hex}.jpg", ContentFile(thumbnail)))
        avatar.image.name, avatar.thumbnail.name = written
        avatar.save()
    except Exception as exc:
        _delete_files(default_storage, written)
        if isinstance(exc, DatabaseError):
            raise
        # Any storage backend fault (disk full, S3 down, permissions): nothing was charged or written.
        logger.error("storing avatar files failed: %s", exc)
        raise StorageFailed() from exc
    entry.avatar = avatar
    entry.save(update_fields=["avatar"])
    _project_touch(project_id=avatar.project_id)


def avatars_generate(
    *, user, project: Project, name: str, count: int, wait: bool, seed: int | None = None, **persona
) -> tuple[list[Preview], list[Avatar]]:
    """The legacy one-call flow: `count` variations, each saved and charged. Credits for all are checked first.

    With `wait`, generates and saves, and returns the avatars (at least one, or the first failure is raised);
    without, returns the queued previews for the client to poll and save.
    """
    required = settings.AVATAR_SAVE_COST * count
    balance = selectors.credit_balance_for_user(user=user)
    if balance < required:
        raise InsufficientCredits(
            f"{count} avatar(s) cost {required} credits and you have {balance}.",
            details={"required": required, "balance": balance},
        )
    base_seed = secrets.randbelow(2**32) if seed is None else seed
    previews = [
        preview_request(user=user, project=project, seed=(base_seed + i) % 2**32, **persona) for i in range(count)
    ]
    if not wait:
        return previews, []
    deadline = time.monotonic() + settings.AVATAR_SYNC_WAIT
    avatars = []
    for i, preview in enumerate(previews, start=1):
        preview_wait(preview=preview, timeout=max(deadline - time.monotonic(), 0))
        if preview.status != PreviewStatus.SUCCEEDED:
            continue
        avatar_name = f"{name} - Variation {i}" if count > 1 else name
        avatar, _ = preview_save(user=user, project=project, preview_id=preview.pk, name=avatar_name[:100])
        avatars.append(avatar)
    if not avatars:
        raise preview_error(preview=previews[0])
    return previews, avatars
