"""The one error envelope: `{"success": false, "error": {"code", "message", "details"?}}`."""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from avatar_creator.api.parsers import PayloadTooLarge
from avatar_creator.errors import ServiceError

logger = logging.getLogger(__name__)

_CODES = {
    exceptions.ParseError: ("MALFORMED_REQUEST", "The request body is not valid JSON."),
    exceptions.AuthenticationFailed: ("UNAUTHENTICATED", "Authentication credentials are missing or invalid."),
    exceptions.NotAuthenticated: ("UNAUTHENTICATED", "Authentication credentials are missing or invalid."),
    exceptions.PermissionDenied: ("FORBIDDEN", "You may not do this."),
    exceptions.NotFound: ("NOT_FOUND", "Not found."),
    exceptions.MethodNotAllowed: ("METHOD_NOT_ALLOWED", None),
    exceptions.NotAcceptable: ("NOT_ACCEPTABLE", None),
    exceptions.UnsupportedMediaType: ("UNSUPPORTED_MEDIA_TYPE", None),
    exceptions.Throttled: ("RATE_LIMIT_EXCEEDED", None),
}


def error_body(code: str, message: str, details=None) -> dict:
    error = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"success": False, "error": error}


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
        response = Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
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
        body = error_body("VALIDATION_ERROR", "Some fields are not valid.", details)
        return Response(body, status=status.HTTP_400_BAD_REQUEST)

    code, message = next(
        ((c, m) for cls, (c, m) in _CODES.items() if isinstance(exc, cls)),
        (str(exc.default_code).upper(), None),
    )
    status_code = exc.status_code
    if code == "UNAUTHENTICATED":
        status_code = status.HTTP_401_UNAUTHORIZED
        headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
    details = None
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        details = {"retryAfter": int(exc.wait) + 1}
    return Response(error_body(code, message or str(exc.detail), details), status=status_code, headers=headers)


def _wants_json(request) -> bool:
    return request.path.startswith("/api/")


def handler404(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_body("NOT_FOUND", "Not found."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception, template_name="404.html")


def handler500(request):
    if _wants_json(request):
        return JsonResponse(error_body("INTERNAL_ERROR", "Something went wrong on our side. Try again."), status=500)
    from django.views.defaults import server_error

    return server_error(request, template_name="500.html")


def handler400(request, exception=None):
    if _wants_json(request):
        if isinstance(exception, RequestDataTooBig):
            too_large = PayloadTooLarge.over(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
            return JsonResponse(error_body(too_large.code, too_large.message), status=too_large.status)
        return JsonResponse(error_body("BAD_REQUEST", "The request could not be understood."), status=400)
    from django.views.defaults import bad_request

    return bad_request(request, exception, template_name="400.html")


def handler403(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_body("FORBIDDEN", "You may not do this."), status=403)
    from django.views.defaults import permission_denied

    return permission_denied(request, exception, template_name="403.html")
