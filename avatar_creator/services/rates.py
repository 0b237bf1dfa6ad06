"""Admission of preview requests: the per-user rate (AVATAR_PREVIEW_RATE, e.g. "60/hour") and the per-user limit
of previews in flight (AVATAR_MAX_ACTIVE_PREVIEWS, queued + running).

The in-flight limit is also what keeps the queue fair: the queue runs previews in the order they were asked for,
and no user can have more than AVATAR_MAX_ACTIVE_PREVIEWS of them in it, so one account can never fill the queue
(or the web threads waiting on it) ahead of everybody else: another user's preview waits behind at most that many
previews of each other active user.
"""

import math
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from avatar_creator import errors
from avatar_creator.errors import RateLimitExceeded, TooManyActivePreviews
from avatar_creator.models import ACTIVE_PREVIEW_STATUSES, Preview, PreviewStatus

_RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# Previews that failed through no fault of the user (the broker, storage, the image service or this server's own
# configuration) do not use up the rate: an outage must not lock people out once it is over.
NOT_THE_USERS_FAULT = frozenset({errors.QueueUnavailable.code, errors.StorageFailed.code, *errors.GENERATION_CODES})


def parse_rate(rate: str) -> tuple[int, timedelta]:
    """`"60/hour"` -> (60, 1 hour). Also takes the short forms `s`, `m`, `h`, `d`."""
    count, _, unit = rate.partition("/")
    unit = unit.strip().lower()
    seconds = next((s for name, s in _RATE_UNITS.items() if name.startswith(unit) and unit), None)
    if seconds is None:
        raise ValueError(f"Cannot read the rate {rate!r}; write it like 60/hour.")
    return int(count), timedelta(seconds=seconds)


def preview_rate_check(*, user, count: int = 1) -> None:
    """Admit `count` new previews for `user`, or raise TooManyActivePreviews (more than AVATAR_MAX_ACTIVE_PREVIEWS
    queued or running) or RateLimitExceeded (past AVATAR_PREVIEW_RATE), both with Retry-After.

    Call it inside the transaction that then creates the previews: it locks the user's row until that transaction
    ends, so concurrent requests are admitted one after another and a burst can never overshoot the limits.
    """
    with transaction.atomic(savepoint=False):  # a refusal ends the caller's transaction anyway: no savepoint
        get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()
        limit, window = parse_rate(settings.AVATAR_PREVIEW_RATE)
        recent = Q(created_at__gte=timezone.now() - window) & ~Q(
            status=PreviewStatus.FAILED, error_code__in=NOT_THE_USERS_FAULT
        )
        active = Q(status__in=ACTIVE_PREVIEW_STATUSES)
        # Both figures in one query over the user's previews that count for either.
        counted = Preview.objects.filter(Q(owner=user) & (active | recent)).aggregate(
            active=Count("pk", filter=active), recent=Count("pk", filter=recent)
        )
        _active_check(active=counted["active"], count=count)
        _rate_check(Preview.objects.filter(recent, owner=user), used=counted["recent"], count=count, limit=limit,
                    window=window)  # fmt: skip


def _active_check(*, active: int, count: int) -> None:
    limit = settings.AVATAR_MAX_ACTIVE_PREVIEWS
    # A batch larger than the limit (the legacy generate's count goes to 5) may still start alone: no request is
    # refused for ever.
    if active + count <= max(limit, count):
        return
    retry_after = 10
    raise TooManyActivePreviews(
        f"You can have {limit} previews in progress at once and have {active}. Wait for one to finish.",
        details={"retryAfter": retry_after, "limit": limit, "active": active},
        headers={"Retry-After": str(retry_after)},
    )


def _rate_check(recent, *, used: int, count: int, limit: int, window: timedelta) -> None:
    if used + count <= limit:
        return
    # The request fits once enough of the oldest counted previews (`recent`) have left the window.
    needed = min(used + count - limit, used) or 1
    freed_at = list(recent.order_by("created_at").values_list("created_at", flat=True)[needed - 1 : needed])
    freed_at = freed_at[0] if freed_at else timezone.now()
    retry_after = max(1, math.ceil((freed_at + window - timezone.now()).total_seconds()))
    raise RateLimitExceeded(
        f"You can request {limit} previews per {_window_name(window)}. Try again in {retry_after} seconds.",
        details={"retryAfter": retry_after, "limit": limit},
        headers={"Retry-After": str(retry_after)},
    )


def _window_name(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    return next((name for name, s in _RATE_UNITS.items() if s == seconds), f"{seconds} seconds")
