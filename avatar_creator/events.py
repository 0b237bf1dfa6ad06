"""Who learns that a preview changed: publish, wait, follow.

services/previews.py publishes after every committed change of a preview (`preview_changed`), and a `queue_moved`
when a preview leaves the queue (the others' positions moved). Listeners are woken by the message and read the row
once; nothing here sleeps and re-reads the database.

The bus is Redis pub/sub when one is configured (AVATAR_EVENTS_URL: REDIS_URL, or a Redis broker), so that a worker
process wakes a web process; on the embedded default (no Redis) it is a notifier inside this process, where the
previews also run (queue.py). Both offer a blocking subscription (WSGI views, the waiting generate-preview) and an
asyncio one (the ASGI event stream, which holds no thread while it waits).
"""

import asyncio
import logging
import queue as stdlib_queue
import threading
import time
import weakref
from contextlib import asynccontextmanager, contextmanager, suppress

import redis
import redis.asyncio
from django.conf import settings

from avatar_creator.models import Preview

logger = logging.getLogger(__name__)

QUEUE_CHANNEL = "lumiku:previews:queue"
# Without a bus (Redis unreachable) a waiting request still ends: it re-reads the row this often, and logs why.
_DEGRADED_READ_INTERVAL = 1.0


def preview_channel(preview_id) -> str:
    return f"lumiku:preview:{preview_id}"


def _bus_url() -> str:
    if settings.AVATAR_EVENTS_URL:
        return settings.AVATAR_EVENTS_URL
    # Read from the Celery app rather than settings: what its producer uses now, and a worker's too.
    from celery import current_app

    conf = current_app.conf
    broker = conf.broker_url or ""
    if conf.task_always_eager or not broker.startswith(("redis://", "rediss://", "unix://")):
        return ""
    return broker


# Publishing


def preview_changed(preview_id, *, version: int, queue_moved: bool = False) -> None:
    """Tell every listener of this preview (and, when it left the queue or joined it again, those of the queued
    ones: their positions moved)."""
    messages = [(preview_channel(preview_id), str(version))]
    if queue_moved:
        messages.append((QUEUE_CHANNEL, str(preview_id)))
    publish(*messages)


def publish(*messages: tuple[str, str]) -> None:
    """Publish each (channel, message), in order; on Redis in one round trip."""
    url = _bus_url()
    if not url:
        for channel, message in messages:
            _local.publish(channel, message)
        return
    try:
        if len(messages) == 1:
            _redis_client(url).publish(*messages[0])
        else:
            with _redis_client(url).pipeline(transaction=False) as pipe:
                for channel, message in messages:
                    pipe.publish(channel, message)
                pipe.execute()
    except redis.RedisError as exc:
        # The change is committed; listeners fall back to reading the row (see _DEGRADED_READ_INTERVAL).
        channels = ", ".join(channel for channel, _ in messages)
        logger.warning("could not publish %s on the event bus: %s", channels, exc)


_clients: dict[tuple[str, bool], redis.Redis] = {}


def _redis_client(url: str, *, listening: bool = False) -> redis.Redis:
    client = _clients.get((url, listening))
    if client is None:
        # A publish must never hold up the request or task whose change it announces: short time-outs. A listener
        # waits as long as it is told to, read by read.
        socket_timeout = None if listening else 1
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=socket_timeout)
        _clients[(url, listening)] = client
    return client


# The in-process notifier


class _LocalBus:
    """Channels to subscriber queues, for one process. Thread-safe; asyncio subscribers are fed through their loop."""

    def __init__(self):
        self._lock = threading.Lock()
        self._subscribers: dict[str, set] = {}

    @contextmanager
    def listening(self, channels, deliver):
        self.add(channels, deliver)
        try:
            yield
        finally:
            self.remove(channels, deliver)

    def add(self, channels, deliver) -> None:
        with self._lock:
            for channel in channels:
                self._subscribers.setdefault(channel, set()).add(deliver)

    def remove(self, channels, deliver) -> None:
        with self._lock:
            for channel in channels:
                subscribers = self._subscribers.get(channel)
                if subscribers is not None:
                    subscribers.discard(deliver)
                    if not subscribers:
                        del self._subscribers[channel]

    def publish(self, channel: str, message: str) -> None:
        with self._lock:
            subscribers = list(self._subscribers.get(channel, ()))
        for deliver in subscribers:
            deliver(channel, message)


_local = _LocalBus()


# Subscribing: blocking


class Subscription:
    """`get(timeout)` returns the next (channel, message), or None when the time ran out (awaited when asyncio)."""

    def __init__(self, get):
        self.get = get


@contextmanager
def subscribe(channels: list[str]):
    url = _bus_url()
    if not url:
        inbox: stdlib_queue.SimpleQueue = stdlib_queue.SimpleQueue()

        def deliver(channel, message):
            inbox.put((channel, message))

        def get(timeout: float):
            try:
                return inbox.get(timeout=max(timeout, 0))
            except stdlib_queue.Empty:
                return None

        with _local.listening(channels, deliver):
            yield Subscription(get)
        return
    pubsub = None
    try:
        pubsub = _redis_client(url, listening=True).pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*channels)
    except redis.RedisError as exc:
        logger.warning("event bus unreachable, waiting by reading the row: %s", exc)
        pubsub = None

    def get_redis(timeout: float):
        if pubsub is None:
            time.sleep(_degraded_pause(timeout))
            return _REREAD
        try:
            return _received(pubsub.get_message(timeout=max(timeout, 0)))
        except redis.RedisError as exc:
            return _lost(exc)

    with _closed_after(pubsub):
        yield Subscription(get_redis)


@contextmanager
def _closed_after(pubsub):
    try:
        yield
    finally:
        if pubsub is not None:
            with suppress(redis.RedisError):
                pubsub.close()


# What a listener gets when the bus cannot say what changed: read the row again.
_REREAD = ("", "")


def _received(message) -> tuple[str, str] | None:
    """(channel, data) of a pub/sub message; None for nothing (the time ran out, or only a subscribe confirmation)."""
    if message is None:
        return None
    return (_text(message["channel"]), _text(message["data"]))


def _lost(exc) -> tuple[str, str]:
    logger.warning("event bus lost, reading the row: %s", exc)
    return _REREAD


def _degraded_pause(timeout: float) -> float:
    return min(max(timeout, 0), _DEGRADED_READ_INTERVAL)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def preview_wait(*, preview: Preview, timeout: float) -> Preview:
    """Hold until the preview finishes or `timeout` passes; the preview is refreshed in place. Woken by its events."""
    deadline = time.monotonic() + timeout
    with subscribe([preview_channel(preview.pk)]) as subscription:
        # Read after subscribing: a change committed in between is either in this read or in a message.
        preview.refresh_from_db()
        while not preview.is_finished:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if subscription.get(remaining) is not None:
                preview.refresh_from_db()
    return preview


def previews_wait(*, previews: list[Preview], timeout: float) -> list[Preview]:
    """Hold until every preview of a batch finishes or `timeout` passes (one deadline for all); refreshed in place."""
    deadline = time.monotonic() + timeout
    for preview in previews:
        preview_wait(preview=preview, timeout=max(deadline - time.monotonic(), 0))
    return previews


# Subscribing: asyncio (the ASGI event stream)


@asynccontextmanager
async def subscribe_async(channels: list[str]):
    """As `subscribe`, for a coroutine: `await subscription.get(timeout)`; no thread is held while it waits."""
    url = _bus_url()
    inbox: asyncio.Queue = asyncio.Queue()

    async def received(timeout: float):
        try:
            return await asyncio.wait_for(inbox.get(), timeout=max(timeout, 0))
        except TimeoutError:
            return None

    if not url:
        loop = asyncio.get_running_loop()

        def deliver(channel, message):
            loop.call_soon_threadsafe(inbox.put_nowait, (channel, message))

        with _local.listening(channels, deliver):
            yield Subscription(received)
        return
    hub = _hub(url)
    try:
        await hub.add(channels, inbox)
    except redis.RedisError as exc:
        logger.warning("event bus unreachable, following by reading the row: %s", exc)

        async def degraded(timeout: float):
            await asyncio.sleep(_degraded_pause(timeout))
            return _REREAD

        yield Subscription(degraded)
        return
    try:
        yield Subscription(received)
    finally:
        await hub.remove(channels, inbox)


class _Hub:
    """One Redis pub/sub connection per event loop, shared by every coroutine of that loop that waits (each open
    event stream, each `Prefer: wait`): channels are subscribed while someone listens to them, and a reader task hands
    each message to its listeners' queues. A thousand open streams cost one connection, not a thousand.

    If the connection breaks, every listener is told to read its row again (a message may have been lost), at most
    once per _DEGRADED_READ_INTERVAL while it stays broken; redis-py reconnects and subscribes again by itself."""

    def __init__(self, url: str):
        self.pubsub = redis.asyncio.Redis.from_url(url, socket_connect_timeout=2).pubsub(ignore_subscribe_messages=True)
        self.listeners: dict[str, set[asyncio.Queue]] = {}
        self.lock = asyncio.Lock()
        self.reader: asyncio.Task | None = None

    async def add(self, channels, inbox: asyncio.Queue) -> None:
        async with self.lock:
            new = [channel for channel in dict.fromkeys(channels) if channel not in self.listeners]
            if new:
                await self.pubsub.subscribe(*new)
            for channel in channels:
                self.listeners.setdefault(channel, set()).add(inbox)
            if self.reader is None or self.reader.done():
                self.reader = asyncio.create_task(self._read())

    async def remove(self, channels, inbox: asyncio.Queue) -> None:
        async with self.lock:
            unheard = []
            for channel in dict.fromkeys(channels):
                inboxes = self.listeners.get(channel)
                if inboxes is not None:
                    inboxes.discard(inbox)
                    if not inboxes:
                        del self.listeners[channel]
                        unheard.append(channel)
            if unheard:
                with suppress(redis.RedisError):
                    await self.pubsub.unsubscribe(*unheard)

    async def _read(self) -> None:
        while self.listeners:
            try:
                message = _received(await self.pubsub.get_message(timeout=1.0))
            except redis.RedisError as exc:
                logger.warning("event bus lost, reading the rows: %s", exc)
                self._tell_all(_REREAD)
                await asyncio.sleep(_DEGRADED_READ_INTERVAL)
                continue
            if message is not None:
                for inbox in self.listeners.get(message[0], ()):
                    inbox.put_nowait(message)

    def _tell_all(self, message) -> None:
        for inbox in {inbox for inboxes in self.listeners.values() for inbox in inboxes}:
            inbox.put_nowait(message)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Hub]]" = weakref.WeakKeyDictionary()


def _hub(url: str) -> _Hub:
    per_loop = _hubs.setdefault(asyncio.get_running_loop(), {})
    if url not in per_loop:
        per_loop[url] = _Hub(url)
    return per_loop[url]
