"""JSON logs that carry a request id, and the preview id, across the web process and the Celery worker.

- RequestIdMiddleware gives every request an id: the caller's `X-Request-ID` when it is a sane token (a proxy's
  or a client's, so a trace can be followed end to end), else a new one; the response echoes it.
- ContextFilter puts `request_id` and `preview_id` on every log record of that request; the preview id comes from
  the URL of the preview routes, or from the task's `preview_id` argument in a worker.
- Celery carries the request id in a message header (`lumiku_request_id`) from the request that queued a task to
  the worker that runs it (before_task_publish / task_prerun below, connected by lumiku/celery.py).
- JsonFormatter writes one JSON object a line (`LOG_FORMAT=json`, the production default).
"""

import contextvars
import inspect
import json
import logging
import re
import uuid
from datetime import UTC, datetime
from functools import lru_cache

from lumiku.middleware import DualModeMiddleware

REQUEST_ID_HEADER = "X-Request-ID"
CELERY_HEADER = "lumiku_request_id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("lumiku_request_id", default=None)
preview_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("lumiku_preview_id", default=None)
_request_var: contextvars.ContextVar = contextvars.ContextVar("lumiku_request", default=None)


def _request_id_for(request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex


class RequestIdMiddleware(DualModeMiddleware):
    def call(self, request):
        tokens = self._enter(request)
        try:
            response = self.get_response(request)
        finally:
            self._leave(tokens)
        response[REQUEST_ID_HEADER] = request.request_id
        return response

    async def acall(self, request):
        tokens = self._enter(request)
        try:
            response = await self.get_response(request)
        finally:
            self._leave(tokens)
        response[REQUEST_ID_HEADER] = request.request_id
        return response

    @staticmethod
    def _enter(request) -> tuple:
        request.request_id = _request_id_for(request)
        return request_id_var.set(request.request_id), _request_var.set(request)

    @staticmethod
    def _leave(tokens: tuple) -> None:
        request_token, current_token = tokens
        request_id_var.reset(request_token)
        _request_var.reset(current_token)


def current_preview_id() -> str | None:
    """The preview this code works on: a task's argument, else the preview route's URL of this request."""
    preview_id = preview_id_var.get()
    if preview_id:
        return preview_id
    request = _request_var.get()
    match = getattr(request, "resolver_match", None)
    if match is not None and (match.url_name or "").startswith("preview"):
        return str(match.kwargs.get("pk") or "") or None
    return None


class ContextFilter(logging.Filter):
    """Adds `request_id` and `preview_id` ("-" when there is none) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        record.preview_id = current_preview_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "preview_id": getattr(record, "preview_id", "-"),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


# Celery: the request id travels with the message; the preview id is the task's own argument.


def attach_request_id(headers=None, **kwargs) -> None:
    """before_task_publish: the request that queues a task hands its id to the worker."""
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(CELERY_HEADER, request_id)


@lru_cache(maxsize=64)
def _preview_argument(task_run) -> int | None:
    """Where a task takes `preview_id` among its positional arguments, or None."""
    try:
        names = list(inspect.signature(task_run).parameters)
    except (TypeError, ValueError):
        return None
    return names.index("preview_id") if "preview_id" in names else None


def enter_task(task=None, args=None, kwargs=None, **extra) -> None:
    """task_prerun: the worker logs under the id of the request that queued the task, and the task's preview."""
    if task is None:
        return
    request_id = getattr(task.request, CELERY_HEADER, None) or (task.request.headers or {}).get(CELERY_HEADER)
    preview_id = (kwargs or {}).get("preview_id")
    position = _preview_argument(task.run)
    if preview_id is None and position is not None and args and len(args) > position:
        preview_id = args[position]
    task.request.lumiku_tokens = (
        # In-process (eager) tasks keep the id of the request they run in.
        request_id_var.set(request_id or request_id_var.get() or task.request.id),
        preview_id_var.set(str(preview_id) if preview_id else None),
    )


def leave_task(task=None, **extra) -> None:
    tokens = getattr(getattr(task, "request", None), "lumiku_tokens", None)
    if tokens:
        request_id_var.reset(tokens[0])
        preview_id_var.reset(tokens[1])
        task.request.lumiku_tokens = None
