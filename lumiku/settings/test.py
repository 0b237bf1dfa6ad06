"""The test suite: DATABASE_URL picks PostgreSQL in CI, SQLite otherwise."""

import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = "test-only-not-a-secret"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A media folder per test run (processes a test starts inherit it), so parallel runs never share files.
os.environ.setdefault("LUMIKU_TEST_MEDIA_ROOT", tempfile.mkdtemp(prefix="lumiku-test-media-"))
TEST_MEDIA_ROOT = Path(os.environ["LUMIKU_TEST_MEDIA_ROOT"])
MEDIA_ROOT = TEST_MEDIA_ROOT / "public"
PRIVATE_MEDIA_ROOT = TEST_MEDIA_ROOT / "private"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not Django's in-memory test database: that one shares a cache between the threads' connections, where a
    # lock conflict fails at once ("database table is locked") instead of waiting, and the tests run the request, the
    # in-process worker and its heartbeat on threads of one process, as the embedded default does (on a file).
    DATABASES["default"]["TEST"] = {"NAME": str(TEST_MEDIA_ROOT / "test.sqlite3")}  # noqa: F405
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(MEDIA_ROOT)}},
    "previews": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(PRIVATE_MEDIA_ROOT), "base_url": None},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# The test process runs tasks in-process; a Celery worker that a test starts gets LUMIKU_TEST_* variables so that
# it uses the real broker and the fake image API (never the developer's own HUGGINGFACE_* settings).
CELERY_BROKER_URL = env("LUMIKU_TEST_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
# The request-path purge of the embedded default runs only in the tests that turn it on.
AVATAR_HOUSEKEEPING_INTERVAL = 0
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
AVATAR_GENERATOR = env("LUMIKU_TEST_GENERATOR", default="offline")
HUGGINGFACE_API_KEY = env("LUMIKU_TEST_HF_KEY", default="")
HF_INFERENCE_URL = env("LUMIKU_TEST_HF_URL", default="")
HF_PROVIDER = "hf-inference"
AVATAR_RETRY_BASE_DELAY = 0.01
AVATAR_RETRY_MAX_WAIT = 0.2
FLUX_TIMEOUT = env.float("LUMIKU_TEST_FLUX_TIMEOUT", default=5.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
    "visibility_timeout": env.int("LUMIKU_TEST_VISIBILITY_TIMEOUT", default=30),
    # How often a worker sweeps for messages a dead worker left unacknowledged (every interval * throttle seconds);
    # the worker-kill test makes it every second to stay fast.
    "unacked_restore_interval": env.int(
        "LUMIKU_TEST_RESTORE_INTERVAL",
        default=CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_interval"],  # noqa: F405
    ),
    "unacked_restore_throttle": env.int(
        "LUMIKU_TEST_RESTORE_THROTTLE",
        default=CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_throttle"],  # noqa: F405
    ),
}
TEST_REDIS_URL = env("TEST_REDIS_URL", default="redis://127.0.0.1:6379/15")
LOGGING["root"]["level"] = "WARNING"  # noqa: F405

WHITENOISE_AUTOREFRESH = True
