"""A minimal HTTP/1.1 keep-alive client over a raw socket, for the benchmark's load generators.

http.client hides how many bytes crossed the socket and costs more CPU per request than the server under test
should have to compete with; this client reports exact bytes on the wire (request and response, headers
included) and does little else. It only ever connects to the loopback address it is given.
"""

import contextlib
import json
import socket
import time
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
_CRLF = b"\r\n"
_HEADER_END = b"\r\n\r\n"


class WireError(Exception):
    """The connection broke or the answer could not be read."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    sent_bytes: int
    received_bytes: int
    seconds: float

    def json(self):
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def build_request(method: str, path: str, *, host: str, headers: dict[str, str] | None, body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if not any(name.lower() == "accept" for name in headers or {}):
        lines.append("Accept: application/json")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise WireError(f"not an HTTP response: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


class Connection:
    """One persistent connection to 127.0.0.1:port; reconnects when the server closed an idle connection."""

    def __init__(self, port: int, *, timeout: float = 30.0):
        self.port = port
        self.timeout = timeout
        self.host = f"{LOOPBACK}:{port}"
        self._sock: socket.socket | None = None
        self._buffer = b""

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._buffer = b""

    def _connect(self) -> None:
        self.close()
        sock = socket.create_connection((LOOPBACK, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        json_body=None,
        body: bytes | None = None,
    ) -> Response:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            all_headers["Content-Type"] = "application/json"
        raw = build_request(method, path, host=self.host, headers=all_headers, body=body)
        reused = self._sock is not None
        started = time.perf_counter()
        try:
            return self._exchange(raw, started)
        except (OSError, WireError) as exc:
            # A kept-alive connection the server closed while idle fails before any byte of an answer arrives:
            # send once more on a fresh connection. Anything else is a real error.
            if not reused or getattr(exc, "partial", False):
                self.close()
                raise WireError(str(exc)) from exc
            self._connect()
            return self._exchange(raw, time.perf_counter())

    def _exchange(self, raw: bytes, started: float) -> Response:
        if self._sock is None:
            self._connect()
        self._sock.sendall(raw)
        head, received = self._read_until_head()
        status, headers = parse_head(head)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, extra = self._read_chunked()
            received += extra
        else:
            length = int(headers.get("content-length") or 0)
            body = self._read_exact(length)
            received += len(body)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body, len(raw), received, time.perf_counter() - started)

    def _recv(self) -> bytes:
        chunk = self._sock.recv(262144)
        if not chunk:
            raise WireError("connection closed by the server")
        return chunk

    def _read_until_head(self) -> tuple[bytes, int]:
        first = True
        while _HEADER_END not in self._buffer:
            try:
                self._buffer += self._recv()
            except (OSError, WireError) as exc:
                error = WireError(str(exc))
                error.partial = not first or bool(self._buffer)
                raise error from exc
            first = False
        head, _, rest = self._buffer.partition(_HEADER_END)
        self._buffer = rest
        return head, len(head) + len(_HEADER_END)

    def _read_exact(self, length: int) -> bytes:
        try:
            while len(self._buffer) < length:
                self._buffer += self._recv()
        except (OSError, WireError) as exc:
            error = WireError(f"body cut short: {exc}")
            error.partial = True
            raise error from exc
        data, self._buffer = self._buffer[:length], self._buffer[length:]
        return data

    def _read_line(self) -> bytes:
        while _CRLF not in self._buffer:
            self._buffer += self._recv()
        line, _, self._buffer = self._buffer.partition(_CRLF)
        return line

    def _read_chunked(self) -> tuple[bytes, int]:
        parts, received = [], 0
        while True:
            size_line = self._read_line()
            received += len(size_line) + 2
            size = int(size_line.split(b";")[0], 16)
            chunk = self._read_exact(size + 2)
            received += len(chunk)
            if size == 0:
                return b"".join(parts), received
            parts.append(chunk[:-2])


# Server-sent events: a decoder for the body's framing and a parser for the event lines, both fed raw bytes as they
# arrive, so the thread client below and the asyncio one (bench/streams.py) share them.


class ChunkedDecoder:
    """Undoes `Transfer-Encoding: chunked` incrementally; `done` once the last (empty) chunk was read."""

    def __init__(self):
        self._buffer = b""
        self._left = 0  # data bytes of the current chunk still to come
        self._skip = 0  # bytes of the CRLF after that chunk still to drop
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = []
        while not self.done and self._buffer:
            if self._left:
                out.append(self._buffer[: self._left])
                self._buffer = self._buffer[self._left :]
                self._left -= len(out[-1])
            elif self._skip:
                dropped = min(self._skip, len(self._buffer))
                self._buffer, self._skip = self._buffer[dropped:], self._skip - dropped
            elif _CRLF in self._buffer:
                size_line, _, self._buffer = self._buffer.partition(_CRLF)
                size = int(size_line.split(b";")[0], 16)
                self.done = size == 0
                self._left, self._skip = size, 2
            else:
                break
        return b"".join(out)


@dataclass
class Event:
    """One server-sent event (`comment` set for a `:` line, e.g. a heartbeat); `arrived` is time.time()."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    comment: str | None = None
    arrived: float = 0.0

    def json(self):
        return json.loads(self.data) if self.data else None


class EventParser:
    """The text/event-stream format: `field: value` lines, an event ends at a blank line; `:` starts a comment."""

    def __init__(self):
        self._buffer = b""
        self._fields: dict[str, list[str]] = {}

    def feed(self, data: bytes) -> list[Event]:
        self._buffer += data
        events = []
        while b"\n" in self._buffer:
            raw, _, self._buffer = self._buffer.partition(b"\n")
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            now = time.time()
            if not line:
                if self._fields:
                    fields, self._fields = self._fields, {}
                    events.append(
                        Event(
                            event=(fields.get("event") or ["message"])[-1],
                            data="\n".join(fields.get("data", [])),
                            id=(fields.get("id") or [None])[-1],
                            arrived=now,
                        )
                    )
                continue
            if line.startswith(":"):
                events.append(Event(event="", comment=line[1:].strip(), arrived=now))
                continue
            name, _, value = line.partition(":")
            self._fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
        return events


class EventStream:
    """`GET path` with `Accept: text/event-stream` on its own connection; `next()` returns events as they arrive.

    The body is chunked or ends when the server closes the connection; either way `next()` returns None at its end.
    """

    def __init__(self, port: int, path: str, *, token: str, timeout: float = 30.0, last_event_id: str | None = None):
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}", "Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sent_at = time.time()
        self.sock.sendall(build_request("GET", path, host=f"{LOOPBACK}:{port}", headers=headers, body=None))
        buffer = b""
        while _HEADER_END not in buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                self.close()
                raise WireError("connection closed before the answer's head")
            buffer += chunk
        head, _, rest = buffer.partition(_HEADER_END)
        self.status, self.headers = parse_head(head)
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self._decoder = ChunkedDecoder() if self._chunked else None
        self._parser = EventParser()
        self._pending: list[Event] = []
        self._ended = False
        self.body_start = b""
        if self.status != 200:
            self.body_start = rest
            self.close()
            return
        self._take(rest)

    def _take(self, data: bytes) -> None:
        if self._decoder is not None:
            data = self._decoder.feed(data)
            self._ended = self._ended or self._decoder.done
        self._pending.extend(self._parser.feed(data))

    def next(self) -> Event | None:
        """The next event or comment; None once the stream ended. Raises TimeoutError past the socket's timeout."""
        while not self._pending:
            if self._ended or self.sock is None:
                return None
            chunk = self.sock.recv(65536)
            if not chunk:
                self._ended = True
                self._pending.extend(self._parser.feed(b"\n\n"))  # a last event not closed by a blank line
                continue
            self._take(chunk)
        return self._pending.pop(0)

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = None
