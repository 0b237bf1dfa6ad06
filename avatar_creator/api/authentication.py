import re

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication as LegacyTokenAuthentication
from rest_framework.authentication import get_authorization_header
from rest_framework.authtoken.models import Token

from avatar_creator.models import ApiToken
from avatar_creator.selectors import preview_with_token, token_lookup
from avatar_creator.services.accounts import token_touch


class BearerTokenAuthentication(KnoxTokenAuthentication):
    """`Authorization: Bearer <token>`, as the contract says.

    Tokens are django-rest-knox's (hashed, expiring; REST_KNOX's AUTH_HEADER_PREFIX is "Bearer"). A 40-character
    key that is not a knox token may be one of the first version (DRF's authtoken, same shape), which keeps
    working until it is revoked.

    A known token is found with its active user in one query by its digest (selectors.py `token_lookup`);
    anything else goes through knox's own lookup, which refuses it (and deletes an expired token), then the first
    version's.
    """

    def authenticate_credentials(self, token):
        key = _key_of(token)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        found = token_lookup(digest=hash_token(key))
        if found is not None:
            token_touch(token=found)
            return found.user, found
        try:
            user, auth_token = super().authenticate_credentials(key.encode())
        except exceptions.AuthenticationFailed:
            if len(key) != _LEGACY_KEY_LENGTH:
                raise
            return LegacyTokenAuthentication().authenticate_credentials(key)
        token_touch(token=auth_token)
        return user, auth_token


def authenticate_with_preview(request, preview_id):
    """The status poll's authentication and read in one query: for `Authorization: Bearer <key>` whose token is
    known, unexpired and of the preview's active owner, the request is authenticated as BearerTokenAuthentication
    would (its last use written as there) and the preview returned. None otherwise: the request is left as it was,
    for the usual way (the authenticators, then the read) to answer it as always (401, 404, a first-version token,
    a session)."""
    parts = get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    key = _key_of(parts[1])
    if key is None:
        return None
    found = preview_with_token(preview_id=preview_id, digest=hash_token(key))
    if found is None:
        return None
    preview, token = found
    token_touch(token=token)
    request.user, request.auth = token.user, token
    request._authenticator = BearerTokenAuthentication()
    return preview


def _key_of(token: bytes | str) -> str | None:
    """The key as text when it can be one, else None. Keys are hex characters; anything else is refused before the
    query: PostgreSQL would fail on a NUL byte (a 500), and there is no point in looking up what cannot be a key."""
    key = token.decode("utf-8", errors="replace") if isinstance(token, bytes) else token
    return key if _PLAUSIBLE_KEY.fullmatch(key) else None


_PLAUSIBLE_KEY = re.compile(r"[0-9A-Za-z]{1,128}")
_LEGACY_KEY_LENGTH = 40


def is_api_token(auth) -> bool:
    """Whether a request's `auth` is a token of either kind (not a session)."""
    return isinstance(auth, (ApiToken, Token))


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "avatar_creator.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
