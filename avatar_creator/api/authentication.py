import re

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    """`Authorization: Bearer <token>`, as the contract says (DRF's default keyword is `Token`)."""

    keyword = "Bearer"

    def authenticate_credentials(self, key):
        # Keys are 40 hex characters. Anything else is refused before the query: PostgreSQL would fail on a NUL
        # byte (a 500), and there is no point in looking up what cannot be a key.
        if not _PLAUSIBLE_KEY.fullmatch(key):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(key)


_PLAUSIBLE_KEY = re.compile(r"[0-9A-Za-z]{1,40}")


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "avatar_creator.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
