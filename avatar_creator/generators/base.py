"""The one small interface every image backend implements, and the one error type they raise.

A backend takes a GenerationRequest and returns a GenerationResult or raises GenerationError; nothing else
escapes. The error says whether trying again can help (`retryable`) and, when the upstream said so, how long
to wait (`retry_after`), so the task that calls it owns the retry policy without knowing the backend.
"""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

MODEL_LOADING = "MODEL_LOADING"
RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
GENERATION_TIMEOUT = "GENERATION_TIMEOUT"
GENERATION_FAILED = "GENERATION_FAILED"
GENERATOR_NOT_CONFIGURED = "GENERATOR_NOT_CONFIGURED"
GENERATOR_AUTH_FAILED = "GENERATOR_AUTH_FAILED"

# The status our API answers with for each code (not the upstream's status, which GenerationError.status keeps).
_HTTP_STATUS = {
    MODEL_LOADING: 503,
    RATE_LIMIT_EXCEEDED: 429,
    GENERATION_TIMEOUT: 504,
    GENERATION_FAILED: 502,
    GENERATOR_NOT_CONFIGURED: 503,
    # The upstream refused our credentials: a fault of this server's configuration, seen by clients as a bad gateway.
    GENERATOR_AUTH_FAILED: 502,
}
ERROR_CODES = frozenset(_HTTP_STATUS)


def http_status_for(code: str) -> int:
    """The HTTP status our API uses for a generation error code (502 for anything unknown)."""
    return _HTTP_STATUS.get(code, 502)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str
    width: int
    height: int
    seed: int
    num_inference_steps: int = 28
    guidance_scale: float = 3.5


@dataclass(frozen=True)
class GenerationResult:
    image_bytes: bytes
    content_type: str
    seed: int
    width: int
    height: int
    model: str
    duration_s: float


class GenerationError(Exception):
    """A generation that did not produce an image, with a stable code and a message fit for a user."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"Unknown generation error code {code!r}.")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        super().__init__(message)

    @property
    def http_status(self) -> int:
        return http_status_for(self.code)

    def __repr__(self) -> str:
        return (
            f"GenerationError(code={self.code!r}, message={self.message!r}, retryable={self.retryable!r}, "
            f"retry_after={self.retry_after!r}, status={self.status!r})"
        )


@runtime_checkable
class Generator(Protocol):
    name: str
    model: str

    def generate(self, request: GenerationRequest) -> GenerationResult: ...
