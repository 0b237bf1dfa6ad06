"""The per-user preview rate (AVATAR_PREVIEW_RATE, e.g. "60/hour")."""

import math
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from avatar_creator.errors import RateLimitExceeded
from avatar_creator.models import Preview

_RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(rate: str) -> tuple[int, timedelta]:
    """`"60/hour"` -> (60, 1 hour). Also takes the short forms `s`, `m`, `h`, `d`."""
    count, _, unit = rate.partition("/")
    unit = unit.strip().lower()
    seconds = next((s for name, s in _RATE_UNITS.items() if name.startswith(unit) and unit), None)
    if seconds is None:
        raise ValueError(f"Cannot read the rate {rate!r}; write it like 60/hour.")
    return int(count), timedelta(seconds=seconds)


def preview_rate_check(*, user) -> None:
    """RateLimitExceeded (with Retry-After) when the user has used up the preview rate."""
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


def _window_name(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    return next((name for name, s in _RATE_UNITS.items() if s == seconds), f"{seconds} seconds")
