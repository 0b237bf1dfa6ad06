"""Site-wide error pages: the JSON envelope under /api/, the site's own templates everywhere else."""

import logging

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from django.utils.deprecation import MiddlewareMixin
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from avatar_creator.errors import PayloadTooLarge, error_response
from lumiku.browser import is_api_path as _wants_json

logger = logging.getLogger("django.request")


def handler400(request, exception=None):
    if _wants_json(request):
        if isinstance(exception, RequestDataTooBig):
            return error_response(
                PayloadTooLarge.code, PayloadTooLarge.over(settings.DATA_UPLOAD_MAX_MEMORY_SIZE).message
            )
        return error_response("BAD_REQUEST")
    return defaults.bad_request(request, exception, template_name="400.html")


def handler403(request, exception=None):
    if _wants_json(request):
        return error_response("FORBIDDEN")
    return defaults.permission_denied(request, exception, template_name="403.html")


def handler404(request, exception=None):
    if _wants_json(request):
        return error_response("NOT_FOUND")
    return defaults.page_not_found(request, exception, template_name="404.html")


def handler500(request):
    if _wants_json(request):
        return error_response("INTERNAL_ERROR")
    return defaults.server_error(request, template_name="500.html")


@csrf_exempt
def not_found(request, *args, **kwargs):
    """Every path no route matched: the envelope under /api/, the site's 404 page elsewhere, also under DEBUG, where
    Django would answer its debug page. CSRF-exempt: a POST to no route is a 404, not a CSRF refusal."""
    return handler404(request)


class ApiDebugErrorMiddleware(MiddlewareMixin):
    """Under DEBUG Django answers a view's exception with its HTML debug pages, not the handlers above; under /api/
    this answers with the same envelope the handlers give in production (and still logs the unexpected ones), and
    a not-found anywhere with the production 404 (the debug page's stack is of no use for a missing row)."""

    def process_exception(self, request, exception):
        if not settings.DEBUG:
            return None
        # A page that is not found looks the same under `make run` as in production, in the UI too.
        if isinstance(exception, Http404):
            return handler404(request, exception)
        if not _wants_json(request):
            return None
        if isinstance(exception, PermissionDenied):
            return handler403(request, exception)
        if isinstance(exception, BadRequest | SuspiciousOperation):
            return handler400(request, exception)
        logger.error("Internal Server Error: %s", request.path, exc_info=exception)
        return handler500(request)
