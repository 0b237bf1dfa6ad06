"""The API's exception handler: every error leaves as the one envelope (errors.error_body), with the status,
code and default wording of the error catalogue (avatar_creator/errors.py)."""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from avatar_creator.errors import PayloadTooLarge, ServiceError, error_body, kind_of

logger = logging.getLogger(__name__)

# DRF's exceptions -> our code, and whether the catalogue's sentence replaces DRF's (which names details such as
# the method or media type that are worth keeping).
_CODES = {
    exceptions.ParseError: ("MALFORMED_REQUEST", True),
    exceptions.AuthenticationFailed: ("UNAUTHENTICATED", True),
    exceptions.NotAuthenticated: ("UNAUTHENTICATED", True),
    exceptions.PermissionDenied: ("FORBIDDEN", True),
    exceptions.NotFound: ("NOT_FOUND", True),
    exceptions.MethodNotAllowed: ("METHOD_NOT_ALLOWED", False),
    exceptions.NotAcceptable: ("NOT_ACCEPTABLE", False),
    exceptions.UnsupportedMediaType: ("UNSUPPORTED_MEDIA_TYPE", False),
    exceptions.Throttled: ("RATE_LIMIT_EXCEEDED", False),
}


def _flatten(detail):
    """DRF's ErrorDetail tree -> plain strings, keeping the field structure."""
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        # DRF reads request.body before the parser runs, so Django's own size check fires first.
        exc = PayloadTooLarge.over(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if isinstance(exc, ServiceError):
        response = Response(exc.envelope(), status=exc.status)
        for header, value in exc.headers.items():
            response[header] = value
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: Django's handler500 answers with the envelope and logs it

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait) + 1)

    if isinstance(exc, exceptions.ValidationError):
        details = _flatten(exc.detail)
        if not isinstance(details, dict):
            details = {"nonFieldErrors": details if isinstance(details, list) else [details]}
        return Response(error_body("VALIDATION_ERROR", details=details), status=status.HTTP_400_BAD_REQUEST)

    code, catalogue_words = next(
        ((c, words) for cls, (c, words) in _CODES.items() if isinstance(exc, cls)),
        (str(exc.default_code).upper(), False),
    )
    message = kind_of(code).message if catalogue_words else str(exc.detail)
    status_code = exc.status_code
    if code == "UNAUTHENTICATED":
        status_code = status.HTTP_401_UNAUTHORIZED
        headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
    details = None
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        details = {"retryAfter": int(exc.wait) + 1}
    return Response(error_body(code, message, details), status=status_code, headers=headers)
