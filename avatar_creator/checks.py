"""Start-up checks: Django system checks, run by `manage.py check`, `migrate`, `runserver` and the image's
entrypoint (docker/entrypoint.sh migrates before it serves), so a bad set-up stops the start, not a request.
"""

from urllib.parse import urlsplit, urlunsplit

import redis
from django.conf import settings
from django.core import checks

LORA_SCALE_RANGE = (0.0, 2.0)
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
REDIS_CACHES = ("lumiku.cache.RedisCache", "django.core.cache.backends.redis.RedisCache")


def redis_in_use() -> dict[str, str]:
    """The Redis servers this process relies on, by role: the cache (throttles) and the broker (tasks)."""
    used = {}
    cache = settings.CACHES["default"]
    if cache["BACKEND"] in REDIS_CACHES:
        location = cache["LOCATION"]
        used["cache"] = location[0] if isinstance(location, list | tuple) else location
    broker = settings.CELERY_BROKER_URL or ""
    if not settings.CELERY_TASK_ALWAYS_EAGER and broker.lower().startswith(REDIS_SCHEMES):
        used["broker"] = broker
    return used


def redis_ping(url: str, *, timeout: float = 2.0) -> None:
    """Raise redis.RedisError unless the server at `url` answers PING within `timeout` seconds."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def redacted(url: str) -> str:
    """`url` without its password, fit for a log line or an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


@checks.register()
def check_lora_scale(app_configs, **kwargs):
    low, high = LORA_SCALE_RANGE
    scale = settings.FLUX_LORA_SCALE
    if low <= scale <= high:
        return []
    return [
        checks.Error(
            f"FLUX_LORA_SCALE must be between {low:g} and {high:g}; it is {scale:g}.",
            hint="The XLabs Realism LoRA works best at 0.8-1.0 (the default is 0.9).",
            id="avatar_creator.E001",
        )
    ]


@checks.register()
def check_redis_reachable(app_configs, **kwargs):
    """A Redis that is configured must answer: there is no silent fall-back to running tasks in-process."""
    errors = []
    for role, url in redis_in_use().items():
        try:
            redis_ping(url)
        except redis.RedisError as exc:
            errors.append(
                checks.Error(
                    f"Redis for the {role} at {redacted(url)} is unreachable: {exc}",
                    hint="Start Redis or correct REDIS_URL (or REDIS_HOST / REDIS_PORT, CELERY_BROKER_URL).",
                    id="avatar_creator.E002",
                )
            )
    return errors
