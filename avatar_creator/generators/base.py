"""The one small interface every image backend implements, and the one error type they raise.

A backend takes a GenerationRequest and returns a GenerationResult or raises GenerationError; nothing else
escapes. The error says whether trying again can help (`retryable`) and, when the upstream said so, how long
to wait (`retry_after`), so the task that calls it owns the retry policy without knowing the backend.
"""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from avatar_creator.errors import GENERATION_CODES, http_status_for


# The codes live in the one error catalogue (avatar_creator/errors.py), with the HTTP status our API answers each
# with (not the upstream's status, which GenerationError.status keeps).
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
        if code not in GENERATION_CODES:
            raise ValueError(f"Unknown generation error code {code!r}.")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        super().__init__(message)

    @property
    def http_status(self) -> int:
        """The status our API answers with for this code (from the error catalogue)."""
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
