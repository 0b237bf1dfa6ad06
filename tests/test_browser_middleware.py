"""lumiku/browser.py: an API call with a Bearer token goes past the session, its user, messages and htmx; every other
request gets them as before (issue 13)."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import iscoroutinefunction
from django.core.checks import run_checks
from django.http import HttpResponse
from django.test import RequestFactory

from lumiku.browser import AuthenticationMiddleware, HtmxMiddleware, MessageMiddleware, SessionMiddleware

CHAIN = (SessionMiddleware, AuthenticationMiddleware, MessageMiddleware, HtmxMiddleware)
BROWSER_ATTRIBUTES = ("session", "user", "_messages", "htmx")


def seen_by_the_view(request) -> set[str]:
    return {name for name in BROWSER_ATTRIBUTES if name in request.__dict__}


def through_the_chain(request, *, is_async: bool = False) -> set[str]:
    seen = set()

    def view(request):
        seen.update(seen_by_the_view(request))
        return HttpResponse("ok")

    async def async_view(request):
        return view(request)

    handler = async_view if is_async else view
    for middleware in reversed(CHAIN):
        handler = middleware(handler)
    if is_async:
        assert iscoroutinefunction(handler)
        # On a thread of its own: the browser tests' Playwright may have left an event loop running on this one.
        with ThreadPoolExecutor(1) as thread:
            response = thread.submit(asyncio.run, handler(request)).result()
    else:
        response = handler(request)
    assert response.status_code == 200
    return seen


@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize(
    ("path", "headers", "browser"),
    [
        ("/api/avatar-creator/previews/x", {"HTTP_AUTHORIZATION": "Bearer 0123abcd"}, False),
        ("/api/auth/me", {"HTTP_AUTHORIZATION": "bearer 0123abcd"}, False),
        ("/api/auth/me", {}, True),  # a session's API call (the UI, the browsable API)
        ("/api/auth/me", {"HTTP_AUTHORIZATION": "Token 0123abcd"}, True),
        ("/projects/", {"HTTP_AUTHORIZATION": "Bearer 0123abcd"}, True),  # the UI is a browser's, whatever it sends
        ("/projects/", {"HTTP_HX_REQUEST": "true"}, True),
    ],
)
def test_only_an_api_call_with_a_bearer_token_goes_past_the_browser_middleware(path, headers, browser, is_async):
    request = RequestFactory().get(path, **headers)
    assert through_the_chain(request, is_async=is_async) == (set(BROWSER_ATTRIBUTES) if browser else set())


def test_the_admins_checks_still_find_the_browser_middleware(settings):
    assert "lumiku.browser.SessionMiddleware" in settings.MIDDLEWARE
    errors = [message for message in run_checks() if message.id.startswith("admin.")]
    assert errors == []


@pytest.mark.django_db
def test_an_api_call_with_a_token_sets_no_cookie_and_a_browser_still_gets_its_session(alice, client):
    from tests.test_tokens import bearer

    response = bearer(alice.token).get("/api/auth/me")
    assert (response.status_code, response.cookies) == (200, {})
    assert "cookie" not in response.get("Vary", "").lower()
    client.force_login(alice)
    assert client.get("/api/auth/me").status_code == 200
    page = client.get("/account/tokens")
    assert page.status_code == 200
    assert page.wsgi_request.session.session_key
