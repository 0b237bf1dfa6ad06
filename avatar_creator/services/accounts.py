"""Accounts: registration and API tokens."""

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token

from avatar_creator.errors import ValidationFailed
from avatar_creator.models import CreditAccount, LedgerReason
from avatar_creator.services.credits import credits_add

User = get_user_model()


def user_register(*, username: str, password: str, email: str = "") -> tuple[User, Token]:
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
            token = Token.objects.create(user=user)
    except IntegrityError:
        raise ValidationFailed(details={"username": ["This username is taken."]}) from None
    return user, token


def token_for_user(*, user) -> Token:
    token, _ = Token.objects.get_or_create(user=user)
    return token
