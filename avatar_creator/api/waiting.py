"""The waiting routes under ASGI: waiting costs no thread.

Django's ASGI handler runs a request's synchronous code (the middleware, DRF's views) on a thread that belongs to
that request until its answer is sent (asgiref's ThreadSensitiveContext): a view that waits, or a stream, would
keep a thread for as long as it lasts. So lumiku/asgi.py puts `WaitingRoutes` in front of Django, and it serves
the four routes that wait:

- `GET /api/avatar-creator/previews/:id` with `Prefer: wait=N`,
- `GET /api/avatar-creator/previews/:id/events` (server-sent events),
- `POST /api/avatar-creator/projects/:id/avatars/generate-preview` without `Prefer: respond-async` (the default),
- `POST /api/avatar-creator/projects/:id/avatars/generate` without `Prefer: respond-async` (the legacy one call).

Each starts with an ordinary call of the API through Django (the status read, generate-preview asked with
`Prefer: respond-async`, or the legacy generate told through the scope to hold the credits, queue the previews and
leave the wait to the route), so authentication, throttles, validation, 404s, CORS and every other header come from
the one place they always do, in a few milliseconds on a thread. Then it waits on the event bus
(events.subscribe_async) holding a coroutine and a subscription only, and answers from fresh reads: the status
read again, the stream's reads (streams.PreviewStream.follow_async), views.waited_answer, or the legacy generation
finished (saved and charged). If the client goes away, the wait ends (and a legacy generation's credits go back).
Every other request goes straight to Django.

Under WSGI (`make run`'s runserver, the test client) none of this runs: the views wait themselves.
"""

import asyncio
import json
import re
from dataclasses import dataclass, field
from functools import partial
from io import BytesIO

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest, get_script_prefix
from django.http import HttpResponse
from django.utils.log import log_response
from rest_framework.renderers import JSONRenderer

from avatar_creator import events, selectors, services
from avatar_creator.api import streams, views
from avatar_creator.errors import ServiceError
from avatar_creator.models import ACTIVE_PREVIEW_STATUSES, Preview

_PREVIEW = re.compile(r"/api/avatar-creator/previews/(?P<pk>[0-9a-fA-F-]{36})(?P<events>/events)?/?")
_GENERATE = re.compile(r"/api/avatar-creator/projects/[^/]+/avatars/generate-preview/?")
_LEGACY_GENERATE = re.compile(r"/api/avatar-creator/projects/[^/]+/avatars/generate/?")
# What describes the body of Django's first answer: an answer of ours keeps the other headers (CORS, request id,
# security headers, Vary) and sets these itself.
_BODY_HEADERS = (b"content-type", b"content-length", b"location", b"preference-applied", b"cache-control")
_JSON = b"application/json"
_ACTIVE = {str(status) for status in ACTIVE_PREVIEW_STATUSES}


class WaitingRoutes:
    """ASGI middleware: the waiting routes here, everything else to `app` (Django on a pool of threads)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        route = self._route(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, _as_coroutine(receive), send)
            return
        received = await _read_body(receive, limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        if received.too_large:
            # Django answers it (413, nothing created) from the bytes read so far and the rest.
            await self.app(scope, received.replay(_as_coroutine(receive)), send)
            return
        if received.gone:
            return
        answer = asyncio.ensure_future(route(scope, received.body, send))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (answer, gone):
                task.cancel()
        if answer.done() and not answer.cancelled():
            answer.result()  # an error of ours reaches the server, which logs it and answers 500

    def _route(self, scope):
        path = _path(scope)
        method, prefer = scope["method"], _header(scope["headers"], b"prefer")
        preview = _PREVIEW.fullmatch(path)
        if preview and preview["events"] and method in ("GET", "HEAD"):
            return partial(self._events, preview_id=preview["pk"])
        wait = views.preferred_wait(prefer)
        if preview and not preview["events"] and wait is not None and method in ("GET", "HEAD"):
            return partial(self._preview_wait, wait=wait, preview_id=preview["pk"])
        if method == "POST" and not views.wants_async(prefer):
            if _GENERATE.fullmatch(path):
                return self._generate
            if _LEGACY_GENERATE.fullmatch(path):
                return self._legacy_generate
        return None

    async def _call(self, scope, body: bytes = b"") -> "_Answer":
        """One request through Django (the whole middleware stack and the view), its answer kept."""
        answer = _Answer()
        delivered = False

        async def receive():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Future()  # never: Django stops listening for a disconnect once it has answered

        async def send(message):
            if message["type"] == "http.response.start":
                answer.status, answer.headers = message["status"], list(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                answer.chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return answer

    async def _preview_wait(self, scope, body, send, *, wait: int, preview_id: str):
        """`Prefer: wait=N`: the status read, again each time the preview changes, until it is finished or N s pass.
        A HEAD is read as a GET (the status is in the body) and answered with the GET's headers only."""
        ask = _asking(scope, method="GET", headers=_without(scope["headers"], b"prefer"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        async with events.subscribe_async([events.preview_channel(preview_id)]) as subscription:
            # Read after subscribing: a change committed in between is either in this read or in a message.
            answer = await self._call(ask)
            while answer.status == 200 and _status(answer.body) in _ACTIVE:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    answer = await self._call(ask)  # the time is up: the current position and ETA
                    break
                if await subscription.get(remaining) is not None:  # None: nothing yet (or a subscribe confirmation)
                    answer = await self._call(ask)
        if answer.status == 200:
            applied = (b"preference-applied", b"wait=%d" % wait)
            answer.headers = [*_without(answer.headers, b"preference-applied"), applied]
        await answer.send_to(send, head=scope["method"] == "HEAD")

    async def _events(self, scope, body, send, *, preview_id: str):
        """The event stream: Django's status read says who may follow it, then PreviewStream sends the changes."""
        headers = [*_without(scope["headers"], b"prefer", b"last-event-id", b"accept"), (b"accept", _JSON)]
        check = _asking(scope, method="GET", path=_path(scope).rsplit("/events", 1)[0], headers=headers)
        answer = await self._call(check)
        if answer.status != 200:
            await answer.send_to(send)
            return
        headers = [*_without(answer.headers, *_BODY_HEADERS), (b"content-type", b"text/event-stream")]
        headers += [(name.lower().encode(), value.encode()) for name, value in streams.STREAM_HEADERS.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["method"] == "GET":
            stream = streams.PreviewStream(
                ASGIRequest(scope, BytesIO()), preview_id=preview_id,
                load=partial(selectors.preview_get_authorized, preview_id=preview_id),
                last_event_id=_header(scope["headers"], b"last-event-id"),
            )  # fmt: skip
            async for event in stream.follow_async():
                if event:
                    await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _generate(self, scope, body, send):
        """The default generate-preview: asked with `respond-async`, then the wait for the whole batch, then the
        answer the waiting call gives (views.waited_answer), with the first answer's headers."""
        prefer = ", ".join(filter(None, [_header(scope["headers"], b"prefer"), "respond-async"]))
        accepted = await self._call(
            _asking(scope, headers=[*_without(scope["headers"], b"prefer"), (b"prefer", prefer.encode())]), body
        )
        if accepted.status != 202:
            await accepted.send_to(send)
            return
        ids = [preview["id"] for preview in json.loads(accepted.body)["previews"]]
        request = ASGIRequest(scope, BytesIO())
        waited = await _until_answered(ids, partial(streams.pooled(_waited_answer), request, ids))
        await _send_waited(send, request, accepted, waited)

    async def _legacy_generate(self, scope, body, send):
        """The legacy `avatars/generate` that waits: Django holds the credits and queues the previews (handed over in
        the scope, views.LEGACY_WAIT_HANDOFF), the wait holds no thread, then the previews that succeeded are saved
        out of the hold and the rest of it released (services.avatars_generate_finish), as the view does under WSGI.
        A client that leaves while it waits is charged nothing: the hold goes, the previews stay to be saved. Once the
        saving has begun it goes on on its thread: a client that leaves then has what was saved, each avatar charged
        once (out of the hold, or of the balance once the hold has gone back)."""
        handoff: dict = {}
        call = asyncio.ensure_future(self._call({**scope, views.LEGACY_WAIT_HANDOFF: handoff}, body))
        try:
            # Shielded: Django finishes on its thread whatever happens here, and what it held must then be let go.
            begun = await asyncio.shield(call)
        except asyncio.CancelledError:
            call.add_done_callback(lambda _: _abandon_later(handoff))
            raise
        generation = handoff.get("generation")
        if generation is None:  # refused (no credits, a bad body, not your project...): Django's answer as is
            await begun.send_to(send)
            return
        ids = [str(preview.pk) for preview in generation.previews]
        request = ASGIRequest(scope, BytesIO())
        look = partial(streams.pooled(_legacy_answer), request, generation)
        try:
            waited = await _until_answered(ids, look)
        except BaseException:
            await asyncio.shield(_abandon(generation))
            raise
        await _send_waited(send, request, begun, waited)


async def _until_answered(ids: list[str], look):
    """`await look()` now and again after each change of one of the previews `ids`, until it gives an answer (not
    None); once AVATAR_SYNC_WAIT has passed, `look(out_of_time=True)`, which always does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.AVATAR_SYNC_WAIT
    async with events.subscribe_async([events.preview_channel(pk) for pk in ids]) as subscription:
        answer = await look()
        while answer is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                answer = await look(out_of_time=True)
            elif await subscription.get(remaining) is not None:
                answer = await look()
    return answer


def _waited_answer(request, ids: list[str], *, out_of_time: bool = False):
    """The batch read; once every preview of it is finished (or the wait is `out_of_time`), the answer from that
    read in the same call (one trip to a thread, not two): else None."""
    found = Preview.objects.select_related("avatar").in_bulk(ids)
    previews = [found[pk] for pk in (Preview._meta.pk.to_python(pk) for pk in ids) if pk in found]
    if not out_of_time and any(preview.status in _ACTIVE for preview in previews):
        return None
    return _rendered(lambda: (200, views.waited_answer(request, previews)))


def _legacy_answer(request, generation: services.HeldGeneration, *, out_of_time: bool = False):
    """The legacy generation's previews read; once all are finished (or the wait is `out_of_time`), the succeeded
    ones saved and the answer written, in the same call: else None."""
    ids = [preview.pk for preview in generation.previews]
    if not out_of_time and Preview.objects.filter(pk__in=ids, status__in=ACTIVE_PREVIEW_STATUSES).exists():
        return None

    def finished():
        avatars = services.avatars_generate_finish(generation=generation)
        return 201, views.legacy_generated(request, generation.previews, avatars)

    return _rendered(finished)


def _rendered(answer) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """`answer()`'s (status, body), or the ServiceError it raised as the API answers one: (status, JSON, headers)."""
    try:
        (status, body), headers = answer(), {}
    except ServiceError as exc:
        status, body, headers = exc.status, exc.envelope(), exc.headers
    extra = [(b"content-type", _JSON)]
    extra += [(name.lower().encode(), str(value).encode()) for name, value in headers.items()]
    return status, JSONRenderer().render(body), extra


async def _send_waited(send, request, first: "_Answer", waited: tuple[int, bytes, list]) -> None:
    """A waiting generate's answer, `waited` as _rendered gives it, with the headers of Django's `first` answer but
    those of its body. An error it answers itself (Django answered the first call, and logged only that) is logged as
    Django logs its own: on `django.request`, a warning for a 4xx, an error for a 5xx."""
    status, content, extra = waited
    if status >= 400:
        response = HttpResponse(status=status)
        log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
    await _Answer(status, [*_without(first.headers, *_BODY_HEADERS), *extra], [content]).send_to(send)


async def _abandon(generation: services.HeldGeneration) -> None:
    await streams.pooled(services.avatars_generate_abandon)(generation=generation)


def _abandon_later(handoff: dict) -> None:
    """Once Django has answered a client that already left: let go of what it held, if it held anything."""
    if "generation" in handoff:
        task = asyncio.ensure_future(_abandon(handoff["generation"]))
        _letting_go.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(_letting_go.discard)


_letting_go: set[asyncio.Task] = set()


@dataclass
class _Answer:
    status: int = 500
    headers: list = field(default_factory=list)
    chunks: list = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def send_to(self, send, *, head: bool = False) -> None:
        """Send this answer; for a HEAD its headers only (the length still the body's)."""
        body = self.body
        headers = [*_without(self.headers, b"content-length"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})


@dataclass
class _Received:
    chunks: list = field(default_factory=list)
    gone: bool = False
    too_large: bool = False

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def replay(self, receive):
        """A `receive` that gives what was read already, then the rest from the client."""
        pending = [{"type": "http.request", "body": self.body, "more_body": True}]

        async def again():
            return pending.pop() if pending else await receive()

        return again


def _as_coroutine(receive):
    """`receive` as a coroutine function: granian's returns another kind of awaitable, which a2wsgi cannot hand to
    `asyncio.run_coroutine_threadsafe` (every request with a body would fail)."""

    async def receive_coroutine():
        return await receive()

    return receive_coroutine


async def _read_body(receive, *, limit: int | None) -> _Received:
    received, size = _Received(), 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            received.gone = True
            return received
        chunk = message.get("body", b"")
        received.chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            return received
        if limit is not None and size > limit:
            received.too_large = True
            return received


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _status(body: bytes) -> str | None:
    try:
        return json.loads(body)["preview"]["status"]
    except (ValueError, KeyError, TypeError):
        return None


def _path(scope) -> str:
    """The path the URLconf sees (request.path_info), cut from the scope's as Django's ASGIRequest does."""
    return scope["path"].removeprefix(get_script_prefix(scope))


def _asking(scope, *, method: str | None = None, path: str | None = None, headers=None) -> dict:
    """The scope of an internal call: the client's request with a few things changed."""
    asked = {**scope, "headers": headers if headers is not None else scope["headers"]}
    if method is not None:
        asked["method"] = method
    if path is not None:
        asked["path"] = scope.get("root_path", "") + path
        asked["query_string"] = b""
        asked.pop("raw_path", None)
    return asked


def _header(headers, name: bytes) -> str:
    return ", ".join(value.decode("latin-1") for key, value in headers if key.lower() == name)


def _without(headers, *names: bytes) -> list:
    return [(key, value) for key, value in headers if key.lower() not in names]
