"""Accounts: registration, the password rule this app adds, and API tokens (django-rest-knox).

A token is issued per device and stored only as a hash (knox); it expires after AVATAR_TOKEN_TTL. Tokens made by
the first version (DRF's `authtoken`, stored in clear) keep working until they are revoked.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token as LegacyToken

from avatar_creator.errors import ValidationFailed
from avatar_creator.models import ApiToken, CreditAccount, LedgerReason
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


# What the user model's column holds (254, as RFC 5321 allows an address to be).
EMAIL_MAX_CHARS = User._meta.get_field("email").max_length


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
    token.delete()


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


def tokens_purge_expired() -> int:
    """Delete every token past its expiry (none of them authenticates any more). Returns how many.

    Knox's own lookup deleted a user's expired tokens whenever one of that user's tokens authenticated; the lookup
    that answers now (selectors.py `token_lookup`) reads the one token asked for, so the rest are purged on a
    schedule: Celery beat, or the embedded default's housekeeping (avatar_creator/housekeeping.py)."""
    deleted, _ = ApiToken.objects.filter(expiry__lte=timezone.now()).delete()
    return deleted


def tokens_revoke(*, tokens) -> int:
    """Revoke the knox tokens of a queryset (the admin's delete goes through here too). Returns how many."""
    digests = list(tokens.values_list("pk", flat=True))
    deleted, _ = ApiToken.objects.filter(pk__in=digests).delete()
    return deleted
