"""`GET /api/avatar-creator/previews/:id/events`: a preview's changes as server-sent events.

An event `preview` at once with the current state, then one on every change and queue-position move, each with
the preview object as `data:` and an increasing `id:`; the stream ends after a finished state. `Last-Event-ID`
resumes (nothing is sent again that the client already has); a comment line every HEARTBEAT_SECONDS keeps proxies
from closing an idle stream. Auth as the rest of the API (Bearer or session); another user's preview is 404.

Under ASGI (lumiku/asgi.py) api/waiting.py serves this route in front of Django and follows the stream with
`follow_async`: it waits on the event bus's asyncio client and holds no thread between events. This view serves it
under WSGI (`make run`'s runserver, the test client) with the blocking `follow`.
"""

import json
import time
from functools import partial

from asgiref.sync import sync_to_async
from django.db import close_old_connections
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
    load = partial(selectors.preview_get_for_user, user=user, preview_id=pk)
    try:
        load()
    except ServiceError as exc:
        return error_response(exc.code, exc.message)
    stream = PreviewStream(request, load=load, preview_id=pk, last_event_id=request.headers.get("Last-Event-ID"))
    response = StreamingHttpResponse(stream.follow(), content_type="text/event-stream")
    for header, value in STREAM_HEADERS.items():
        response[header] = value
    return response


STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx: pass each event on at once


def _authenticated_user(request):
    drf_request = Request(request, authenticators=[auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES])
    try:
        user = drf_request.user
    except APIException:
        return None
    return user if user is not None and user.is_authenticated else None


class PreviewStream:
    """What to send: reads the preview (a blocking call, `load`) and renders an event only when something changed."""

    def __init__(self, request, *, load, preview_id, last_event_id: str | None):
        self.request = request
        self.load = load
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
        self.preview = self.load()
        data = s.preview_representation(self.preview, request=self.request)
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

    def heartbeat(self) -> str:
        self.beat = time.monotonic() + HEARTBEAT_SECONDS
        return ": heartbeat\n\n"

    def matters(self, message) -> bool:
        """Whether a message may change what the client sees: a queue move matters only while queued."""
        return message[0] != events.QUEUE_CHANNEL or self.preview.status == PreviewStatus.QUEUED

    def follow(self):
        with events.subscribe(self.channels) as subscription:
            yield self.read()
            while not self.finished:
                message = subscription.get(self.timeout())
                if message is None:
                    yield self.heartbeat()
                elif self.matters(message) and (event := self.read()):
                    yield event

    async def follow_async(self):
        """As `follow`, on an event loop: only the reads run on a thread (the loop's shared pool), one at a time."""
        read = pooled(self.read)
        async with events.subscribe_async(self.channels) as subscription:
            yield await read()
            while not self.finished:
                message = await subscription.get(self.timeout())
                if message is None:
                    yield self.heartbeat()
                elif self.matters(message) and (event := await read()):
                    yield event


def pooled(fn):
    """`fn` as a coroutine function that runs on the event loop's shared thread pool. Around the call, what Django
    does around a request: a connection that broke or outlived CONN_MAX_AGE is dropped (a pool thread has no request
    around it to do so)."""

    def call(*args, **kwargs):
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(call, thread_sensitive=False)
