"""Every write. Plain keyword-only functions; views and tasks call these and nothing else writes."""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.authtoken.models import Token

from avatar_creator.errors import InsufficientCredits, ValidationFailed
from avatar_creator.models import Avatar, CreditAccount, CreditLedgerEntry, LedgerReason, Project

logger = logging.getLogger(__name__)
User = get_user_model()


# Accounts


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


# Credits


def credit_account_for_user(*, user) -> CreditAccount:
    account, _ = CreditAccount.objects.get_or_create(user=user)
    return account


def credits_add(
    *, account: CreditAccount, amount: int, reason: str, note: str = "", created_by=None
) -> CreditLedgerEntry:
    """Add (or, negative, remove) credits; a removal stops at zero. Locks the row for the change."""
    with transaction.atomic():
        locked = CreditAccount.objects.select_for_update().get(pk=account.pk)
        delta = max(amount, -locked.balance)
        locked.balance += delta
        locked.save(update_fields=["balance", "updated_at"])
        account.balance = locked.balance
        return CreditLedgerEntry.objects.create(
            account=locked, delta=delta, balance_after=locked.balance, reason=reason, note=note, created_by=created_by
        )


def credits_charge(*, user, amount: int, avatar: Avatar | None = None, note: str = "") -> CreditLedgerEntry:
    """Take `amount` credits or raise InsufficientCredits; must run inside the caller's transaction.

    A single conditional UPDATE makes concurrent charges safe without reading the balance first.
    """
    account = credit_account_for_user(user=user)
    updated = CreditAccount.objects.filter(pk=account.pk, balance__gte=amount).update(balance=F("balance") - amount)
    if not updated:
        balance = CreditAccount.objects.filter(pk=account.pk).values_list("balance", flat=True).first() or 0
        raise InsufficientCredits(
            f"Saving costs {amount} credits and you have {balance}.",
            details={"required": amount, "balance": balance},
        )
    balance_after = CreditAccount.objects.filter(pk=account.pk).values_list("balance", flat=True).get()
    return CreditLedgerEntry.objects.create(
        account=account,
        delta=-amount,
        balance_after=balance_after,
        reason=LedgerReason.AVATAR_SAVE,
        note=note,
        avatar=avatar,
    )


# Projects


def project_create(*, owner, name: str, description: str = "") -> Project:
    return Project.objects.create(owner=owner, name=name, description=description)


def project_update(*, project: Project, name: str | None = None, description: str | None = None) -> Project:
    fields = []
    if name is not None:
        project.name = name
        fields.append("name")
    if description is not None:
        project.description = description
        fields.append("description")
    if fields:
        project.save(update_fields=[*fields, "updated_at"])
    return project


def project_delete(*, project: Project) -> int:
    """Delete a project with its avatars; their files go once the rows are gone for good."""
    files = [name for avatar in project.avatars.all() for name in (avatar.image.name, avatar.thumbnail.name)]
    count = project.avatars.count()
    with transaction.atomic():
        project.delete()
        transaction.on_commit(lambda: _delete_files(default_storage, files))
    return count


# Avatars


def avatar_rename(*, avatar: Avatar, name: str) -> Avatar:
    avatar.name = name
    avatar.save(update_fields=["name"])
    _project_touch(project_id=avatar.project_id)
    return avatar


def avatar_delete(*, avatar: Avatar) -> None:
    files = [avatar.image.name, avatar.thumbnail.name]
    with transaction.atomic():
        avatar.delete()
        _project_touch(project_id=avatar.project_id)
        transaction.on_commit(lambda: _delete_files(default_storage, files))


def _project_touch(*, project_id) -> None:
    """A project's "last updated" follows changes to its avatars."""
    Project.objects.filter(pk=project_id).update(updated_at=timezone.now())


def _delete_files(storage, names) -> None:
    for name in names:
        if not name:
            continue
        try:
            storage.delete(name)
        except OSError:
            # A file left behind is garbage, not data loss; the row is already gone.
            logger.warning("could not delete stored file %s", name)
