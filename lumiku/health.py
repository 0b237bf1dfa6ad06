"""`/healthz` and `/readyz` for load balancers, Coolify and the compose healthchecks: no auth, no secrets.

- `GET /healthz` answers 200 while the process serves (liveness: restart the container when it stops answering).
- `GET /readyz` answers 200 `{"status": "ok", "checks": {...}}` when the database, the cache and the broker in use
  and both storages answer, else 503 with the same map, the failed checks named in `failed` (readiness: take the
  replica out of rotation). Each check's value is "ok", or "failed: <error type>"; the details go to the log only.

Answered by the first middleware, before the Host check (a probe uses the container's address as its Host), the
HTTPS redirect (probes speak plain HTTP inside the network), sessions and CORS.
"""

import logging
import os
from pathlib import Path

import kombu
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages
from django.db import connections
from django.http import JsonResponse

from avatar_creator.checks import REDIS_SCHEMES, redis_in_use, redis_ping
from lumiku.middleware import DualModeMiddleware

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0
STORAGE_ALIASES = ("default", "previews")


def check_database() -> None:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        # A broken connection must not be handed to the next request of this thread.
        connection.close()
        raise


def check_cache() -> None:
    url = redis_in_use().get("cache")
    if url:
        redis_ping(url, timeout=PROBE_TIMEOUT)


def check_broker() -> None:
    url = settings.CELERY_BROKER_URL
    if url.lower().startswith(REDIS_SCHEMES):
        redis_ping(url, timeout=PROBE_TIMEOUT)
        return
    with kombu.Connection(url, connect_timeout=PROBE_TIMEOUT) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0)


def check_storage() -> None:
    for alias in STORAGE_ALIASES:
        storage = storages[alias]
        if isinstance(storage, FileSystemStorage):
            # The folder is made on the first write: its nearest existing ancestor must let us make it.
            folder = Path(storage.location)
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
            if not os.access(folder, os.W_OK | os.X_OK):
                raise PermissionError(f"storage {alias!r} is not writable")
        else:
            storage.exists(".readyz")  # a round trip that proves the bucket and the credentials


def checks_in_use() -> dict:
    """The checks this configuration needs, by the name a failure is reported under."""
    named = {"database": check_database, "cache": check_cache}
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        named["broker"] = check_broker
    named["storage"] = check_storage
    return named


def readiness() -> tuple[bool, dict]:
    results = {}
    for name, check in checks_in_use().items():
        try:
            check()
        except Exception as exc:
            logger.warning("Readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            results[name] = f"failed: {type(exc).__name__}"
        else:
            results[name] = "ok"
    return all(value == "ok" for value in results.values()), results


def _probe(request):
    """The answer to a probe, or None when `request` is not one."""
    path = request.path_info.rstrip("/")
    if request.method not in ("GET", "HEAD") or path not in ("/healthz", "/readyz"):
        return None
    if path == "/healthz":
        return _answer(200, {"status": "ok"})
    ready, results = readiness()
    if ready:
        return _answer(200, {"status": "ok", "checks": results})
    failed = [name for name, value in results.items() if value != "ok"]
    return _answer(503, {"status": "unavailable", "checks": results, "failed": failed})


class HealthCheckMiddleware(DualModeMiddleware):
    def call(self, request):
        return _probe(request) or self.get_response(request)

    async def acall(self, request):
        if request.path_info.rstrip("/") in ("/healthz", "/readyz"):
            answer = await sync_to_async(_probe)(request)
            if answer is not None:
                return answer
        return await self.get_response(request)


def _answer(status: int, body: dict) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    return response
