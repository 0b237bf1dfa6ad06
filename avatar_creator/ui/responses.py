"""How the UI answers: the modal's fragments (or a page of their own without htmx), redirects, and the two
decorators every view wears: sign-in with private 404s (`ui_view`) and the shared login budget (`auth_throttled`).
"""

import math
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django_htmx.http import HttpResponseClientRedirect

from avatar_creator.errors import NotFound
from avatar_creator.throttling import AuthThrottle
from avatar_creator.ui.messages import wait_words

PARTIALS = "avatar_creator/partials/"
# Unprocessable Content: the form is re-rendered with its errors (htmx is configured to swap 4xx answers).
INVALID = 422


def ui_view(view):
    """Sign-in required, and a row that is not the user's answers 404 (never 403: existence stays private).

    An htmx request from an expired session is sent to the login page as a whole page, not swapped into the modal.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if settings.SESSION_COOKIE_NAME in request.COOKIES:
                # A session cookie without a signed-in user: the session ended (expired or signed out elsewhere).
                messages.info(request, "Your session has ended. Log in again to continue.")
            login = redirect_to_login(current_path(request))
            return HttpResponseClientRedirect(login.url) if request.htmx else login
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            if request.htmx:
                context = {"title": "Not found", "message": f"{exc.message} It may have been deleted."}
                return render(request, PARTIALS + "message.html", context, status=404)
            raise Http404(exc.message) from None

    return wrapper


def auth_throttled(view):
    """Login and signup attempts share the API's per-address limit (brute force protection)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        throttle = AuthThrottle()
        if request.method == "POST" and not throttle.allow_request(request, None):
            wait = math.ceil(throttle.wait() or 1)
            context = {"title": "Too many attempts", "message": f"Wait {wait_words(wait)} and try again."}
            response = modal(request, "message.html", context, status=429)
            response["Retry-After"] = str(wait)
            return response
        return view(request, *args, **kwargs)

    return wrapper


def current_path(request) -> str:
    """The page the person is looking at: the htmx request's page, or the request itself."""
    if request.htmx and request.htmx.current_url_abs_path:
        return request.htmx.current_url_abs_path
    return request.get_full_path()


def modal(request, partial: str, context: dict, *, status: int = 200) -> HttpResponse:
    """A modal step: the fragment for htmx, or the same fragment on a page of its own without JavaScript."""
    if request.htmx:
        return render(request, PARTIALS + partial, context, status=status)
    return render(request, "avatar_creator/modal_page.html", {**context, "partial": PARTIALS + partial}, status=status)


def client_redirect(request, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def closed(request, template: str | None = None, context: dict | None = None, *, fallback: str) -> HttpResponse:
    """Close the modal: an empty main fragment (plus any out-of-band updates), or a redirect without htmx."""
    if not request.htmx:
        return redirect(fallback)
    if template is None:
        return HttpResponse("")
    return render(request, PARTIALS + template, context or {})


def form_status(form) -> int:
    return INVALID if form.is_bound and form.errors else 200


def posted(request):
    """The form data of a POST (even an empty one, which must fail validation), None for a GET."""
    return request.POST if request.method == "POST" else None
