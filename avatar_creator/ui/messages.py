"""The UI's words for errors: a title and a sentence a person can act on, from the one error catalogue."""

from avatar_creator.errors import ServiceError, plain_words, wait_words

__all__ = ["error_words", "preview_error_words", "service_error_words", "wait_words"]


def error_words(code: str, *, retry_after=None, message: str = "") -> dict:
    """`{"code", "title", "message"}` for an error code from a service or a failed preview."""
    return plain_words(code, retry_after=retry_after, message=message)


def preview_error_words(preview) -> dict:
    return error_words(preview.error_code, retry_after=preview.retry_after, message=preview.error_message)


def service_error_words(exc: ServiceError) -> dict:
    details = exc.details or {}
    return plain_words(exc.code, retry_after=details.get("retryAfter"), message=exc.message, details=details)
