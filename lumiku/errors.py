"""Site-wide error pages: the JSON envelope under /api/, the site's own templates everywhere else."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views import defaults

from avatar_creator.errors import PayloadTooLarge, error_body, http_status_for


def _wants_json(request) -> bool:
    return request.path.startswith("/api/")


def _json(code: str, message: str | None = None) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=http_status_for(code))


def handler400(request, exception=None):
    if _wants_json(request):
        if isinstance(exception, RequestDataTooBig):
            return _json(PayloadTooLarge.code, PayloadTooLarge.over(settings.DATA_UPLOAD_MAX_MEMORY_SIZE).message)
        return _json("BAD_REQUEST")
    return defaults.bad_request(request, exception, template_name="400.html")


def handler403(request, exception=None):
    if _wants_json(request):
        return _json("FORBIDDEN")
    return defaults.permission_denied(request, exception, template_name="403.html")


def handler404(request, exception=None):
    if _wants_json(request):
        return _json("NOT_FOUND")
    return defaults.page_not_found(request, exception, template_name="404.html")


def handler500(request):
    if _wants_json(request):
        return _json("INTERNAL_ERROR")
    return defaults.server_error(request, template_name="500.html")
