"""Accounts: registration, the password rule this app adds, and API tokens (django-rest-knox).

A token is issued per device and stored only as a hash (knox); it expires after AVATAR_TOKEN_TTL. Tokens made by
the first version (DRF's `authtoken`, stored in clear) keep working until they are revoked.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token as LegacyToken

from avatar_creator.errors import ValidationFailed
from avatar_creator.models import ApiToken, CreditAccount, LedgerReason
from avatar_creator.prepared import PreparedRead
from avatar_creator.services.credits import credits_add

User = get_user_model()

TOKEN_NAME_MAX_CHARS = ApiToken._meta.get_field("name").max_length
# How the UI names the first version's token (it has one per user at most; its key is never shown).
LEGACY_TOKEN_ID = "legacy"  # noqa: S105 - a row name, not a secret
# A token's last use is written at most this often (seconds), not on every request.
_LAST_USE_PRECISION = 60

logger = logging.getLogger(__name__)


class NotOnlyWhitespaceValidator:
    """AUTH_PASSWORD_VALIDATORS entry: a password of only whitespace (any Unicode space) is refused.

    Django calls `password_changed` on every validator after a changed password is saved, wherever it was changed
    (the admin, `changepassword`, a reset form): that is where every API token of the user is revoked.
    """

    def validate(self, password, user=None):
        if not password.strip():
            raise DjangoValidationError("The password cannot be only spaces.", code="password_only_whitespace")

    def password_changed(self, password, user=None):
        if user is not None and user.pk is not None:
            tokens_revoke_all(user=user)

    def get_help_text(self):
        return "Your password cannot be only spaces."


@dataclass(frozen=True)
class IssuedToken:
    """A token just made: `key` is the secret, shown this once; `token` is its stored (hashed) row."""

    token: ApiToken
    key: str


def user_register(
    *, username: str, password: str, email: str = "", issue_token: bool = True
) -> tuple[User, IssuedToken | None]:
    """A new account with its signup credits and, for an API client (`issue_token`), its first token."""
    username = username.strip()
    candidate = User(username=username, email=email)
    try:
        password_validation.validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise ValidationFailed(details={"password": list(exc.messages)}) from None
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationFailed(details={"username": ["This username is taken."]})
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, email=email, password=password)
            account = CreditAccount.objects.create(user=user, balance=0)
            credits_add(
                account=account, amount=settings.AVATAR_SIGNUP_CREDITS, reason=LedgerReason.SIGNUP, note="Welcome"
            )
            issued = token_issue(user=user, name="Sign-up") if issue_token else None
    except IntegrityError:
        raise ValidationFailed(details={"username": ["This username is taken."]}) from None
    return user, issued


def token_issue(*, user, name: str = "") -> IssuedToken:
    """A new token for one device (every call makes another one)."""
    token, key = ApiToken.objects.create(user=user, name=name.strip()[:TOKEN_NAME_MAX_CHARS])
    return IssuedToken(token=token, key=key)


def token_touch(*, token: ApiToken) -> None:
    """Remember that the token was just used (at most once a minute per token)."""
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() >= _LAST_USE_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def token_revoke(*, token) -> None:
    """Revoke one token: a knox ApiToken or a token of the first version."""
    digest = token.pk  # delete() clears it
    token.delete()
    if isinstance(token, ApiToken):
        _tokens_forget([digest])


def token_revoke_for_user(*, user, token_id: str) -> bool:
    """Revoke one of the user's tokens by its row id (a knox digest, or LEGACY_TOKEN_ID for the first version's
    token); False when there is no such token of theirs."""
    if token_id == LEGACY_TOKEN_ID:
        deleted, _ = LegacyToken.objects.filter(user=user).delete()
        return bool(deleted)
    return bool(tokens_revoke(tokens=ApiToken.objects.filter(user=user, pk=token_id)))


def tokens_revoke_all(*, user) -> int:
    """Revoke every API token of the user, the first version's included. Returns how many."""
    deleted = tokens_revoke(tokens=ApiToken.objects.filter(user=user))
    legacy, _ = LegacyToken.objects.filter(user=user).delete()
    return deleted + legacy


def tokens_revoke(*, tokens) -> int:
    """Revoke the knox tokens of a queryset (the admin's delete goes through here too). Returns how many."""
    digests = list(tokens.values_list("pk", flat=True))
    deleted, _ = ApiToken.objects.filter(pk__in=digests).delete()
    _tokens_forget(digests)
    return deleted


# Token lookups are cached (api/authentication.py): the knox lookup is two queries and a hash per request. An
# entry lives until the token's last use is due to be written again (so that write still happens, once a minute),
# never past the token's expiry. Revoking replaces the entry with a tombstone that outlives any entry, and entries
# are only ever added, never overwritten: a lookup that read the row just before a revocation cannot bring the
# token back. The user is not cached: it is read on every request, so deactivating or deleting it takes effect
# at once.
TOKEN_REVOKED = "revoked"  # noqa: S105 - a marker, not a secret
_TOKEN_TOMBSTONE_SECONDS = 2 * _LAST_USE_PRECISION
_TOKEN_FIELDS = [field.attname for field in ApiToken._meta.concrete_fields]


def _token_cache_key(digest: str) -> str:
    return f"lumiku:token:{digest}"


def token_cached(*, digest: str) -> ApiToken | str | None:
    """The token of this digest as its last lookup cached it (without its user), TOKEN_REVOKED when it was revoked
    recently, None when the cache does not know it (or cannot be reached)."""
    if not settings.AVATAR_TOKEN_CACHE:
        return None
    try:
        entry = cache.get(_token_cache_key(digest))
    except Exception:  # the cache is an optimisation: without it the lookup goes to the database
        logger.warning("token cache unavailable", exc_info=True)
        return None
    if entry is None or entry == TOKEN_REVOKED:
        return entry
    token = ApiToken.from_db("default", _TOKEN_FIELDS, entry)
    if token.expiry is not None and token.expiry <= timezone.now():
        return None
    return token


# The user of a cached token is read on every request (see above): that read's SQL is compiled once (prepared.py).
_ACTIVE_USER = PreparedRead(User, lambda pk: User._default_manager.filter(pk=pk, is_active=True), pk=User._meta.pk)


def user_active(*, user_id):
    """The active user of this id, or None (deactivated or deleted)."""
    found = _ACTIVE_USER.get(pk=user_id)
    return found[0] if found else None


def token_cache_add(*, token: ApiToken) -> None:
    """Cache a token that was just looked up in the database and touched (see token_touch)."""
    if not settings.AVATAR_TOKEN_CACHE or token.last_used_at is None:
        return
    now = timezone.now()
    seconds = _LAST_USE_PRECISION - (now - token.last_used_at).total_seconds()
    if token.expiry is not None:
        seconds = min(seconds, (token.expiry - now).total_seconds())
    if seconds >= 1:
        try:
            cache.add(_token_cache_key(token.pk), [getattr(token, name) for name in _TOKEN_FIELDS], int(seconds))
        except Exception:
            logger.warning("token cache unavailable", exc_info=True)


def _tokens_forget(digests: list[str]) -> None:
    if not digests or not settings.AVATAR_TOKEN_CACHE:
        return
    try:
        cache.set_many({_token_cache_key(d): TOKEN_REVOKED for d in digests}, _TOKEN_TOMBSTONE_SECONDS)
    except Exception:
        # The rows are gone; a cached entry could outlive them by at most a minute, and only with the cache down.
        logger.error("token cache unavailable: revoked tokens may work until their entries expire", exc_info=True)
