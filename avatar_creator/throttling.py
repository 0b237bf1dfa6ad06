"""Brute-force protection for everything that checks a password or creates an account.

The API's register and token endpoints, the browser login page, the browsable API's login and the admin login
share one budget per client address (scope "auth", rate AUTH_THROTTLE_RATE), so alternating between them buys an
attacker no extra guesses. Past the budget a login form is refused before the password is even checked.
"""

import functools
import ipaddress
import logging
import math

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache as default_cache
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ValidationError
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


def client_address(request) -> str:
    """The address of the client, as far as the configured proxies (settings.TRUSTED_PROXIES) vouch for it.

    Starting from REMOTE_ADDR, while the address in hand is a trusted proxy, step to the entry that proxy appended
    to X-Forwarded-For (the last one not yet used). The first address that is not a trusted proxy is the client.
    With no trusted proxies (the default), REMOTE_ADDR: a header the client writes itself never counts.
    """
    address = request.META.get("REMOTE_ADDR", "")
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    networks = _trusted_networks(tuple(settings.TRUSTED_PROXIES))
    while networks and forwarded and _is_trusted(address, networks):
        address = forwarded.pop()
    return address


@functools.cache
def _trusted_networks(proxies: tuple[str, ...]) -> tuple:
    networks = []
    for proxy in filter(None, (proxy.strip() for proxy in proxies)):
        try:
            networks.append(ipaddress.ip_network(proxy, strict=False))
        except ValueError:
            # Trusting less is the safe mistake: the entry is ignored, not the request refused.
            logger.error("DJANGO_TRUSTED_PROXIES: %r is not an address or network; ignored", proxy)
    return tuple(networks)


def _is_trusted(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class _CacheOrLocal:
    """The shared cache, or a cache of this process while the shared one cannot be reached (Redis down): the
    budget then holds per process instead of the whole site answering 500."""

    local = LocMemCache("auth-throttle-fallback", {})

    def __getattr__(self, name):
        shared = getattr(default_cache, name)

        def call(*args, **kwargs):
            try:
                return shared(*args, **kwargs)
            except Exception as exc:  # the backend's own connection error type varies (redis, memcached, ...)
                logger.warning("throttle cache unavailable, counting in this process: %s", exc)
                return getattr(self.local, name)(*args, **kwargs)

        return call


class AuthThrottle(SimpleRateThrottle):
    """Attempts per client address (`client_address`), so a client cannot pick a fresh address per request by
    sending its own X-Forwarded-For."""

    scope = "auth"
    cache = _CacheOrLocal()

    def get_ident(self, request):
        return client_address(request)

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
