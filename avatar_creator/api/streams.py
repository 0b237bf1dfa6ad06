"""`GET /api/avatar-creator/previews/:id/events`: a preview's changes as server-sent events.

An event `preview` at once with the current state, then one on every change and queue-position move, each with
the preview object as `data:` and an increasing `id:`; the stream ends after a finished state. `Last-Event-ID`
resumes (nothing is sent again that the client already has); a comment line every HEARTBEAT_SECONDS keeps proxies
from closing an idle stream. Auth as the rest of the API (Bearer or session); another user's preview is 404.

Under ASGI (lumiku/asgi.py) the body is an async iterator: the stream waits on the event bus's asyncio client and
holds no thread (the view itself, a short sync function, only authenticates and checks the preview). Under WSGI
(`make run`'s runserver, the test client) the same stream is served by a blocking iterator.
"""

import json
import time

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.utils.encoders import JSONEncoder

from avatar_creator import events, selectors
from avatar_creator.api import serializers as s
from avatar_creator.errors import ServiceError, error_response
from avatar_creator.models import PreviewStatus

HEARTBEAT_SECONDS = 15.0
# An event id is version * ID_SPAN + n: n counts the queue-position moves seen since the preview's last change.
ID_SPAN = 1000


def preview_events(request, pk):
    if request.method not in ("GET", "HEAD"):
        return error_response("METHOD_NOT_ALLOWED")
    user = _authenticated_user(request)
    if user is None:
        return error_response("UNAUTHENTICATED")
    stream = _PreviewStream(request, user=user, preview_id=pk, last_event_id=request.headers.get("Last-Event-ID"))
    try:
        selectors.preview_get_for_user(user=user, preview_id=pk)
    except ServiceError as exc:
        return error_response(exc.code, exc.message)
    body = stream.follow_async() if isinstance(request, ASGIRequest) else stream.follow()
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _authenticated_user(request):
    drf_request = Request(request, authenticators=[auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES])
    try:
        user = drf_request.user
    except APIException:
        return None
    return user if user is not None and user.is_authenticated else None


class _PreviewStream:
    """What to send: reads the preview (a blocking call) and renders an event only when something changed."""

    def __init__(self, request, *, user, preview_id, last_event_id: str | None):
        self.request = request
        self.user = user
        self.preview_id = preview_id
        self.preview = None
        self.last_id = int(last_event_id) if last_event_id and last_event_id.strip().isdigit() else None
        self.sent_version = self.last_id // ID_SPAN if self.last_id is not None else None
        self.sent_position = None
        self.beat = time.monotonic() + HEARTBEAT_SECONDS

    @property
    def channels(self) -> list[str]:
        return [events.preview_channel(self.preview_id), events.QUEUE_CHANNEL]

    @property
    def finished(self) -> bool:
        return self.preview.is_finished

    def read(self) -> str:
        """Read the preview; the event to send for it, or "" when the client already has this state."""
        self.preview = selectors.preview_get_for_user(user=self.user, preview_id=self.preview_id)
        data = s.PreviewOutput(self.preview, context={"request": self.request}).data
        position = data["queuePosition"]
        if self.sent_version == self.preview.version and (
            position == self.sent_position or self.preview.status != PreviewStatus.QUEUED
        ):
            return ""
        event_id = self.preview.version * ID_SPAN
        if self.last_id is not None and event_id <= self.last_id:
            event_id = self.last_id + 1
        self.last_id, self.sent_version, self.sent_position = event_id, self.preview.version, position
        payload = json.dumps(data, cls=JSONEncoder, separators=(",", ":"))
        return f"id: {event_id}\nevent: preview\ndata: {payload}\n\n"

    def timeout(self) -> float:
        return max(self.beat - time.monotonic(), 0.0)

    def after(self, message) -> str:
        """What to send after waiting: a heartbeat when the time ran out, the preview when it may have changed
        (a queue move matters only while queued), else nothing."""
        if message is None:
            self.beat = time.monotonic() + HEARTBEAT_SECONDS
            return ": heartbeat\n\n"
        if message[0] == events.QUEUE_CHANNEL and self.preview.status != PreviewStatus.QUEUED:
            return ""
        return self.read()

    def follow(self):
        with events.subscribe(self.channels) as subscription:
            yield self.read()
            while not self.finished:
                yield self.after(subscription.get(self.timeout()))

    async def follow_async(self):
        async with events.subscribe_async(self.channels) as subscription:
            yield await sync_to_async(self.read)()
            while not self.finished:
                yield await sync_to_async(self.after)(await subscription.get(self.timeout()))
