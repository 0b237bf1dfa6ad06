"""Brute-force protection for everything that checks a password or creates an account.

The API's register and token endpoints, the browser login page, the browsable API's login and the admin login
share one budget per client address (scope "auth", rate AUTH_THROTTLE_RATE), so alternating between them buys an
attacker no extra guesses. Past the budget a login form is refused before the password is even checked.
"""

import functools
import math

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from rest_framework.throttling import SimpleRateThrottle


class AuthThrottle(SimpleRateThrottle):
    """Attempts per client address. The address is REMOTE_ADDR unless NUM_PROXIES says which X-Forwarded-For
    entry to trust, so a client cannot pick a fresh address per request by sending its own header."""

    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ThrottledLoginMixin:
    """For a Django login form (which keeps the request): refuse past the budget, before authenticate() runs."""

    retry_after: int | None = None

    def clean(self):
        throttle = AuthThrottle()
        if self.request is not None and not throttle.allow_request(self.request, None):
            self.retry_after = max(1, math.ceil(throttle.wait() or 1))
            raise ValidationError(
                "Too many sign-in attempts. Try again in %(seconds)s seconds.",
                code="throttled",
                params={"seconds": self.retry_after},
            )
        return super().clean()


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


@functools.cache
def throttled_form_class(form_class: type) -> type:
    """`form_class` (any AuthenticationForm) with the throttle in front of its password check."""
    if issubclass(form_class, ThrottledLoginMixin):
        return form_class
    return type(f"Throttled{form_class.__name__}", (ThrottledLoginMixin, form_class), {})


class ThrottledLoginView(LoginView):
    """Django's LoginView whose form (the default or `authentication_form`) is throttled; a refused attempt
    answers 429 with Retry-After."""

    def get_form_class(self):
        return throttled_form_class(super().get_form_class())

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if getattr(form, "retry_after", None):
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response
