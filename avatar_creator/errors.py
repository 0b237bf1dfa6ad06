"""Domain errors: what a service can refuse, with the stable code and HTTP status clients see.

Services raise these; the API's exception handler and the UI views turn them into answers.
"""


class ServiceError(Exception):
    code = "ERROR"
    status = 400
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, details: dict | None = None, headers: dict | None = None):
        self.message = message or self.default_message
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)


class NotFound(ServiceError):
    code = "NOT_FOUND"
    status = 404
    default_message = "Not found."


class ValidationFailed(ServiceError):
    code = "VALIDATION_ERROR"
    status = 400
    default_message = "Some fields are not valid."


class InsufficientCredits(ServiceError):
    code = "INSUFFICIENT_CREDITS"
    status = 402
    default_message = "Not enough credits."


class PreviewNotAvailable(ServiceError):
    code = "PREVIEW_NOT_AVAILABLE"
    status = 409
    default_message = "This preview can no longer be saved."


class RateLimitExceeded(ServiceError):
    code = "RATE_LIMIT_EXCEEDED"
    status = 429
    default_message = "Too many requests. Try again later."


class QueueUnavailable(ServiceError):
    code = "QUEUE_UNAVAILABLE"
    status = 503
    default_message = "The generation queue is unavailable right now. Try again in a moment."


class GenerationFailedError(ServiceError):
    """A preview that ended failed, carried to a waiting client with the generator's code."""

    def __init__(self, *, code: str, status: int, message: str, details: dict | None = None, headers=None):
        self.code = code
        self.status = status
        super().__init__(message, details=details, headers=headers)


class StorageFailed(ServiceError):
    code = "STORAGE_UNAVAILABLE"
    status = 503
    default_message = "The image could not be stored. Nothing was charged; try again."
