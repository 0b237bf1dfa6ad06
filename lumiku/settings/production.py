"""Production: everything secret or site-specific must come from the environment.

base.py's embedded defaults (SQLite, tasks run in-process, a per-process cache, the offline generator) suit
`make run`, not a deployment: production refuses to start unless the environment (or `.env`, which base.py has
already loaded into it) names the database, a broker and the generator. Everything missing is reported at once,
on one line, before anything else fails.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import CELERY_BROKER_URL, REDIS_URL, env

_GENERATORS = ("huggingface", "offline")
_REDIS_SCHEMES = ("redis://", "rediss://")


def _given(name: str) -> bool:
    """Whether the environment really sets `name`: present and not blank."""
    return bool(os.environ.get(name, "").strip())


# REDIS_URL as base.py resolved it: the variable itself, or the seed's REDIS_HOST / REDIS_PORT.
_redis = bool(REDIS_URL.strip())
_missing = [name for name in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL") if not _given(name)]
if not (_redis or _given("CELERY_BROKER_URL")):
    _missing.append("REDIS_URL or CELERY_BROKER_URL")
elif not _redis and not CELERY_BROKER_URL.strip().lower().startswith(_REDIS_SCHEMES):
    # The broker is not Redis, so it cannot double as the cache the throttles count in.
    _missing.append("REDIS_URL (the throttles need a shared cache and CELERY_BROKER_URL is not Redis)")
_generator = os.environ.get("AVATAR_GENERATOR", "").strip().lower()
if not _generator:
    _missing.append("AVATAR_GENERATOR")
elif _generator not in _GENERATORS:
    _missing.append(f"AVATAR_GENERATOR=huggingface or offline (not {os.environ['AVATAR_GENERATOR']!r})")
if _missing:
    raise ImproperlyConfigured(
        f'Production settings need {", ".join(_missing)}: set them in the environment (see README "Configuration").'
    )

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=False)
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING["handlers"]["console"]["formatter"] = "json" if LOG_FORMAT == "json" else "plain"  # noqa: F405

# Tasks go to the broker, never in-process (a blank CELERY_BROKER_URL falls back to REDIS_URL here, where base.py
# would take it as "no broker"); throttle counters live in Redis, shared by every process.
CELERY_BROKER_URL = CELERY_BROKER_URL if _given("CELERY_BROKER_URL") else REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False
CACHES = {
    "default": {
        "BACKEND": "lumiku.cache.RedisCache",
        "LOCATION": REDIS_URL if _redis else CELERY_BROKER_URL,
    }
}
AVATAR_GENERATOR = _generator

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Throttles count the client that the proxies in DJANGO_TRUSTED_PROXIES vouch for (base.py TRUSTED_PROXIES); a
# proxy not listed there is the client, so a forged X-Forwarded-For never buys a fresh budget.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 30)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}  # noqa: F405
