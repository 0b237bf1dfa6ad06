"""A real local HTTP server that speaks the hf-inference text-to-image contract, for tests.

POST ``{"inputs": prompt, "parameters": {...}}`` to any path -> image bytes (a real JPEG made with Pillow at the
requested width x height, 1024x1024 by default). Every request is recorded. Replies follow a script, one entry
per POST, and default to "ok" when the script runs out::

    with FakeImageAPI() as fake:
        fake.script("loading", Reply("rate_limit", retry_after=7), "ok")
        ...  # point the client at fake.url + "/models/XLabs-AI/flux-RealismLora"
        fake.requests[-1].json["parameters"]["seed"]

It also answers the two Hub look-ups huggingface_hub makes before routing a model id (GET /api/models/<id>),
saying the model is a live text-to-image model served by hf-inference (and, as a LoRA, by replicate and fal-ai);
those GETs are recorded but do not consume the script. Mounted as the router (INFERENCE_PROXY_TEMPLATE), it
answers Replicate (`/replicate/...`: `{"output": url}`) and fal-ai (`/fal-ai/...`: `{"images": [{"url"}]}`) the
way they do, serving the image at that URL (GET /files/<width>x<height>.jpg).

Use the ``fake_image_api`` fixture (import ``fake_image_api_fixture`` into a conftest or test module).
"""

import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any

import pytest
from PIL import Image, ImageDraw

# How the Hub maps the XLabs LoRA repo on providers that apply it to the FLUX.1-dev base.
_LORA_MAPPING = {"status": "live", "task": "text-to-image", "adapter": "lora", "adapterWeightsPath": "lora.safetensors"}
KINDS = ("ok", "loading", "rate_limit", "server_error", "timeout", "unauthorized", "garbage", "bad_request")
_MIN_SIDE, _MAX_SIDE = 16, 2048


@dataclass(frozen=True)
class Reply:
    """One scripted answer; `delay` is slept first ("timeout" defaults to 2 s, longer than the tests' timeouts)."""

    kind: str = "ok"
    delay: float | None = None
    estimated_time: float = 20.0
    retry_after: str = "30"
    image_format: str = "JPEG"
    # Bytes sent after the image (an upstream that appends HTML or a script to a valid JPEG).
    trailer: bytes = b""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown reply kind {self.kind!r}; expected one of {KINDS}.")

    @property
    def wait(self) -> float:
        if self.delay is not None:
            return self.delay
        return 2.0 if self.kind == "timeout" else 0.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = None
    reply: str = ""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == lowered), None)


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    script: list[Reply] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)


def make_image(width: int = 1024, height: int = 1024, *, image_format: str = "JPEG") -> bytes:
    """A small but real image of the given size (a gradient with a disc, so it is not a flat colour)."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.3, height * 0.2, width * 0.7, height * 0.6), fill=(200, 150, 120))
    buffer = BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


class FakeImageAPI:
    """Thread-safe: the server runs in its own thread and every handler thread goes through one lock."""

    def __init__(self) -> None:
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "FakeImageAPI":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        handler = type("BoundHandler", (_Handler,), {"state": self._state})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        # A short poll interval keeps shutdown (once per test) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-image-api", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        # Wake any handler sleeping through a "timeout" reply so shutdown is immediate.
        self._state.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeImageAPI is not running.")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *replies: str | Reply) -> None:
        """Queue the answers for the next POSTs, in order."""
        queued = [reply if isinstance(reply, Reply) else Reply(reply) for reply in replies]
        with self._state.lock:
            self._state.script.extend(queued)

    @property
    def requests(self) -> list[RecordedRequest]:
        """The POSTs received so far (the image requests), oldest first."""
        with self._state.lock:
            return [request for request in self._state.requests if request.method == "POST"]

    @property
    def all_requests(self) -> list[RecordedRequest]:
        """Every request received, Hub look-ups (GET) included."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._state.lock:
            return len(self._state.script)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client that gave up (the timeout case) makes the late write fail; that is expected, not news.
        pass


class _Handler(BaseHTTPRequestHandler):
    state: _State

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._record(body=b"", parsed=None, reply="hub")
        if self.path.startswith("/files/"):
            width, height = (int(side) for side in self.path[len("/files/") :].split(".", 1)[0].split("x"))
            self._send(200, make_image(width, height), "image/jpeg")
            return
        prefix = "/api/models/"
        if not self.path.startswith(prefix):
            self._send_json(404, {"error": "Not found"})
            return
        model_id = self.path[len(prefix) :].split("?", 1)[0].rstrip("/")
        self._send_json(
            200,
            {
                "id": model_id,
                "modelId": model_id,
                "pipeline_tag": "text-to-image",
                "tags": ["text-to-image"],
                "inferenceProviderMapping": {
                    "hf-inference": {"status": "live", "providerId": model_id, "task": "text-to-image"},
                    "replicate": {**_LORA_MAPPING, "providerId": "black-forest-labs/flux-dev-lora"},
                    "fal-ai": {**_LORA_MAPPING, "providerId": "fal-ai/flux-lora"},
                },
            },
        )

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        with self.state.lock:
            reply = self.state.script.pop(0) if self.state.script else Reply("ok")
        self._record(body=body, parsed=parsed, reply=reply.kind)
        if reply.wait and self.state.stopping.wait(reply.wait):
            return
        self._answer(reply, parsed)

    def _record(self, *, body: bytes, parsed: Any, reply: str) -> None:
        recorded = RecordedRequest(
            method=self.command,
            path=self.path,
            headers=dict(self.headers.items()),
            body=body,
            json=parsed,
            reply=reply,
        )
        with self.state.lock:
            self.state.requests.append(recorded)

    def _answer(self, reply: Reply, parsed: Any) -> None:
        kind = reply.kind
        if kind in ("ok", "timeout"):
            width, height = _requested_size(parsed)
            host, port = self.server.server_address[:2]
            file_url = f"http://{host}:{port}/files/{width}x{height}.jpg"
            if self.path.startswith("/replicate/"):
                self._send_json(201, {"id": "prediction", "status": "succeeded", "output": [file_url]})
                return
            if self.path.startswith("/fal-ai/"):
                self._send_json(200, {"images": [{"url": file_url, "width": width, "height": height}]})
                return
            content_type = "image/" + reply.image_format.lower()
            self._send(200, make_image(width, height, image_format=reply.image_format) + reply.trailer, content_type)
        elif kind == "loading":
            model = self.path.rsplit("/models/", 1)[-1] or "model"
            self._send_json(
                503,
                {"error": f"Model {model} is currently loading", "estimated_time": reply.estimated_time},
            )
        elif kind == "rate_limit":
            self._send_json(
                429, {"error": "Rate limit reached. Please retry later."}, {"Retry-After": reply.retry_after}
            )
        elif kind == "server_error":
            self._send_json(500, {"error": "Internal server error"})
        elif kind == "unauthorized":
            self._send_json(401, {"error": "Invalid credentials in Authorization header"})
        elif kind == "bad_request":
            self._send_json(400, {"error": "Input validation error: `width` must be a multiple of 8"})
        elif kind == "garbage":
            self._send(200, os.urandom(4096), "image/jpeg")

    def _send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _requested_size(parsed: Any) -> tuple[int, int]:
    # hf-inference and custom endpoints: "parameters"; Replicate: "input"; fal-ai: "image_size".
    parsed = parsed if isinstance(parsed, dict) else {}
    parameters = parsed.get("parameters") or parsed.get("input") or parsed.get("image_size")
    parameters = parameters if isinstance(parameters, dict) else {}

    def side(name: str) -> int:
        value = parameters.get(name, 1024)
        return min(max(int(value), _MIN_SIDE), _MAX_SIDE) if isinstance(value, int | float) else 1024

    return side("width"), side("height")


@pytest.fixture(name="fake_image_api")
def fake_image_api_fixture():
    """A running FakeImageAPI for one test; stopped (and any sleeping reply woken) afterwards."""
    with FakeImageAPI() as fake:
        yield fake
