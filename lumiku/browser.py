"""What only a browser's requests need: the session, its user, flash messages and htmx's request details. An API call
that carries its token (`Authorization: Bearer` on /api/) needs none of them: DRF authenticates it, and nothing in
the API reads a session, a message or request.htmx. Going past them takes a sixth off the status poll's CPU
in-process (1.07 -> 0.89 ms; bench/README.md, issue 13). Subclasses of Django's own classes, so that every check that
looks for them (the admin's) still finds them, and in the order Django's docs give them.
"""

import django_htmx.middleware as htmx
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions


def is_api_path(request) -> bool:
    """Whether the request is for the JSON API: its path under /api/ as the URL patterns see it (`path_info`, without
    the script prefix a deployment may mount the site under; CORS_URLS_REGEX is matched against the same)."""
    return request.path_info.startswith("/api/")


def is_token_api_call(request) -> bool:
    return is_api_path(request) and request.META.get("HTTP_AUTHORIZATION", "")[:7].lower() == "bearer "


class _BrowserOnly:
    def __call__(self, request):
        # Sync or async alike: get_response is the next middleware's, in this handler's mode.
        if is_token_api_call(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_BrowserOnly, sessions.SessionMiddleware):
    pass


class AuthenticationMiddleware(_BrowserOnly, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(_BrowserOnly, messages.MessageMiddleware):
    pass


class HtmxMiddleware(_BrowserOnly, htmx.HtmxMiddleware):
    pass
