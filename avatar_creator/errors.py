"""The one error catalogue: every stable code with its HTTP status, its default message and the UI's plain words.

Services raise `ServiceError`s; generators raise `GenerationError`s carrying one of these codes; the API's exception
handler (api/errors.py), the site-wide error pages (lumiku/errors.py) and the browser UI (ui/messages.py) all read
the answer from here. Adding a code is one entry in CATALOGUE (plus a subclass when services raise it by name).
"""

import math
from dataclasses import dataclass

from django.http import JsonResponse

_NOTHING_CHARGED = "Nothing was charged."


@dataclass(frozen=True)
class ErrorKind:
    code: str
    status: int
    message: str  # the API's default sentence
    title: str = ""  # the UI's heading
    # The UI's sentence; may name {wait} (a retry delay in words) or any key of the error's details.
    # Empty: the UI shows the error's own message.
    words: str = ""


# code, HTTP status, the API's default sentence.
_KINDS = [
    # Requests
    ("VALIDATION_ERROR", 400, "Some fields are not valid."),
    ("MALFORMED_REQUEST", 400, "The request body is not valid JSON."),
    ("BAD_REQUEST", 400, "The request could not be understood."),
    ("UNAUTHENTICATED", 401, "Authentication credentials are missing or invalid."),
    ("INVALID_CREDENTIALS", 401, "The username or password is not correct."),
    ("FORBIDDEN", 403, "You may not do this."),
    ("NOT_FOUND", 404, "Not found."),
    ("METHOD_NOT_ALLOWED", 405, "This method is not allowed here."),
    ("NOT_ACCEPTABLE", 406, "Could not satisfy the request's Accept header."),
    ("PAYLOAD_TOO_LARGE", 413, "The request body is too large."),
    ("UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported media type in the request."),
    ("INTERNAL_ERROR", 500, "Something went wrong on our side. Try again."),
    # Credits, previews and images
    ("INSUFFICIENT_CREDITS", 402, "Not enough credits."),
    ("PREVIEW_NOT_AVAILABLE", 409, "This preview can no longer be saved."),
    ("RATE_LIMIT_EXCEEDED", 429, "Too many requests. Try again later."),
    ("TOO_MANY_ACTIVE_PREVIEWS", 429, "Too many previews are in progress. Wait for one to finish."),
    ("QUEUE_UNAVAILABLE", 503, "The generation queue is unavailable right now. Try again in a moment."),
    ("STORAGE_UNAVAILABLE", 503, "The image could not be stored. Nothing was charged; try again."),
    ("INVALID_IMAGE", 400, "The image is not a valid JPEG, PNG or WebP image."),
    # Generation (the codes a generator's GenerationError carries). An upstream that refuses our credentials is a
    # fault of this server's configuration: a bad gateway to clients.
    ("MODEL_LOADING", 503, "The model is loading. Try again shortly."),
    ("GENERATION_TIMEOUT", 504, "The image took too long to generate. Try again."),
    ("GENERATION_FAILED", 502, "The image could not be generated. Try again."),
    ("GENERATOR_NOT_CONFIGURED", 503, "Image generation is not configured on this server."),
    ("GENERATOR_AUTH_FAILED", 502, "The image service refused this server's credentials."),
]
# The UI's heading and sentence for the codes a person can act on. Each of these refusals charged nothing, and the
# sentence says so. {wait} is a retry delay in words; other {names} come from the error's details.
_UI_WORDS = {
    "INSUFFICIENT_CREDITS": ("Not enough credits", "Saving costs {required} credits and you have {balance}."),
    "PREVIEW_NOT_AVAILABLE": ("This preview can no longer be saved", "Generate a new one."),
    "RATE_LIMIT_EXCEEDED": ("Too many previews right now", "Try again in {wait}."),
    "TOO_MANY_ACTIVE_PREVIEWS": (
        "Previews still in progress",
        "You can have {limit} previews in progress at once. Wait for one to finish, then try again.",
    ),
    "QUEUE_UNAVAILABLE": ("The generation queue is unavailable", "Try again in a moment."),
    "MODEL_LOADING": ("The model is warming up", "Try again in {wait}."),
    "GENERATION_TIMEOUT": ("Generation took too long", "Try again."),
    "GENERATION_FAILED": ("Generation failed", "The image could not be made. Try again."),
    "GENERATOR_NOT_CONFIGURED": (
        "Image generation is not set up",
        "The administrator needs to configure the image generator.",
    ),
    "GENERATOR_AUTH_FAILED": (
        "The image service refused this server's key",
        "No image was made. The administrator needs to check HUGGINGFACE_API_KEY.",
    ),
}
_UNKNOWN_TITLE = "Something went wrong"


def _kind(code: str, status: int, message: str) -> ErrorKind:
    title, words = _UI_WORDS.get(code, (_UNKNOWN_TITLE, ""))
    return ErrorKind(code, status, message, title, f"{words} {_NOTHING_CHARGED}" if words else "")


CATALOGUE: dict[str, ErrorKind] = {code: _kind(code, status, message) for code, status, message in _KINDS}

# The codes a generator may raise (GenerationError checks against these).
MODEL_LOADING = "MODEL_LOADING"
RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
GENERATION_TIMEOUT = "GENERATION_TIMEOUT"
GENERATION_FAILED = "GENERATION_FAILED"
GENERATOR_NOT_CONFIGURED = "GENERATOR_NOT_CONFIGURED"
GENERATOR_AUTH_FAILED = "GENERATOR_AUTH_FAILED"
GENERATION_CODES = frozenset(
    {MODEL_LOADING, RATE_LIMIT_EXCEEDED, GENERATION_TIMEOUT, GENERATION_FAILED, GENERATOR_NOT_CONFIGURED,
     GENERATOR_AUTH_FAILED}
)  # fmt: skip

_UNKNOWN = ErrorKind("ERROR", 502, "The request could not be completed.")


def kind_of(code: str) -> ErrorKind:
    """The catalogue entry of a code; an unknown code (say, stored by an older version) reads as a bad gateway."""
    return CATALOGUE.get(code, _UNKNOWN)


def http_status_for(code: str) -> int:
    return kind_of(code).status


def error_body(code: str, message: str | None = None, details=None) -> dict:
    """The one error envelope: `{"success": false, "error": {"code", "message", "details"?}}`."""
    error = {"code": code, "message": message or kind_of(code).message}
    if details:
        error["details"] = details
    return {"success": False, "error": error}


def error_response(code: str, message: str | None = None) -> JsonResponse:
    """The envelope as a plain Django answer, for the places outside DRF (site-wide error pages, the event stream)."""
    return JsonResponse(error_body(code, message), status=http_status_for(code))


def wait_words(seconds) -> str:
    """A retry delay a person reads: "20 s", "3 min"; unknown is "a minute"."""
    if not seconds:
        return "a minute"
    seconds = math.ceil(float(seconds))
    return f"{seconds} s" if seconds < 120 else f"{math.ceil(seconds / 60)} min"


def plain_words(code: str, *, retry_after=None, message: str = "", details: dict | None = None) -> dict:
    """A title and a sentence a person can act on, for the UI: `{"code", "title", "message"}`."""
    kind = CATALOGUE.get(code)
    if kind is None or not kind.words:
        return {"code": code, "title": _UNKNOWN_TITLE, "message": message or "Try again."}
    values = {"wait": wait_words(retry_after), **(details or {})}
    try:
        sentence = kind.words.format(**values)
    except (KeyError, IndexError):
        sentence = message or kind.message
    return {"code": code, "title": kind.title, "message": sentence}


class ServiceError(Exception):
    """A refusal with a stable code. Subclasses name their code; status and default message come from CATALOGUE."""

    code = "ERROR"
    status = _UNKNOWN.status
    default_message = _UNKNOWN.message

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.code in CATALOGUE:
            cls.status = CATALOGUE[cls.code].status
            cls.default_message = CATALOGUE[cls.code].message

    def __init__(self, message: str | None = None, *, details: dict | None = None, headers: dict | None = None):
        self.message = message or self.default_message
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def envelope(self) -> dict:
        """What the client gets as the body (the status is `self.status`, the headers `self.headers`)."""
        return error_body(self.code, self.message, self.details)

    @classmethod
    def of(cls, code: str, message: str | None = None, **kwargs) -> "ServiceError":
        """An error for a code known only at run time (a failed preview's stored code)."""
        error = cls(message or kind_of(code).message, **kwargs)
        error.code, error.status = code, http_status_for(code)
        return error


class NotFound(ServiceError):
    code = "NOT_FOUND"


class ValidationFailed(ServiceError):
    code = "VALIDATION_ERROR"


class InvalidCredentials(ServiceError):
    code = "INVALID_CREDENTIALS"


class InsufficientCredits(ServiceError):
    code = "INSUFFICIENT_CREDITS"


class PreviewNotAvailable(ServiceError):
    code = "PREVIEW_NOT_AVAILABLE"


class RateLimitExceeded(ServiceError):
    code = "RATE_LIMIT_EXCEEDED"


class TooManyActivePreviews(ServiceError):
    code = "TOO_MANY_ACTIVE_PREVIEWS"


class QueueUnavailable(ServiceError):
    code = "QUEUE_UNAVAILABLE"


class StorageFailed(ServiceError):
    code = "STORAGE_UNAVAILABLE"


class PayloadTooLarge(ServiceError):
    code = "PAYLOAD_TOO_LARGE"

    @classmethod
    def over(cls, limit: int) -> "PayloadTooLarge":
        return cls(f"The request body is larger than {_size_words(limit)}.")


def _size_words(size: int) -> str:
    """30 MB, 64 KB or 100 bytes: a limit below a megabyte must not read as "0 MB"."""
    for unit, name in ((1024 * 1024, "MB"), (1024, "KB")):
        if size >= unit:
            return f"{size / unit:g} {name}"
    return f"{size} bytes"
