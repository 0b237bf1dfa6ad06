"""Thin Celery tasks: take an id, call a service, schedule what the service decides."""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from avatar_creator import services
from avatar_creator.errors import GENERATION_TIMEOUT

logger = logging.getLogger(__name__)

# One attempt may take the image API's whole timeout; the limits leave room to store the result.
_SOFT_LIMIT = int(settings.FLUX_TIMEOUT) + 30
_HARD_LIMIT = int(settings.FLUX_TIMEOUT) + 60


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=_SOFT_LIMIT,
    time_limit=_HARD_LIMIT,
    max_retries=None,  # bounded by AVATAR_MAX_ATTEMPTS and the preview's deadline, which the service enforces
)
def run_preview(self, preview_id: str) -> str:
    """Generate one preview. Safe to run twice: a finished preview is never generated or written again."""
    try:
        outcome = services.preview_attempt(preview_id=preview_id)
    except SoftTimeLimitExceeded:
        # The attempt settles a limit met while it generates (as its own attempt); this is met anywhere else.
        logger.warning("preview %s ran out of time in the worker", preview_id)
        services.preview_fail(preview_id=preview_id, code=GENERATION_TIMEOUT, message=services.TIME_LIMIT_MESSAGE)
        return "failed"
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task(bind=True, acks_late=True, max_retries=None)
def deliver_webhook(self, preview_id: str) -> None:
    """POST a finished preview's webhook; a failed delivery is tried again on the schedule webhooks.py decides."""
    from avatar_creator import webhooks

    retry_in = webhooks.webhook_deliver(preview_id=preview_id, attempt=self.request.retries)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)


@shared_task
def purge_expired_previews() -> int:
    return services.previews_expire_due()


@shared_task
def purge_expired_tokens() -> int:
    return services.tokens_purge_expired()


@shared_task
def reap_stuck_previews() -> int:
    return services.previews_reap_stuck()
