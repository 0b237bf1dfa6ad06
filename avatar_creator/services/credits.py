"""Credits: every change of a balance is a ledger entry written in the same transaction.

What a user may spend is the balance minus their active holds (credits set aside for work charged when it is
done). Every charge and every hold locks the account row, so two requests can never both spend the same credits.
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from avatar_creator.errors import InsufficientCredits
from avatar_creator.models import Avatar, CreditAccount, CreditHold, CreditLedgerEntry, LedgerReason

# The largest balance the column holds (a 32-bit integer).
MAX_BALANCE = 2**31 - 1


def credit_account_for_user(*, user) -> CreditAccount:
    account, _ = CreditAccount.objects.get_or_create(user=user)
    return account


def credits_add(
    *, account: CreditAccount, amount: int, reason: str, note: str = "", created_by=None
) -> CreditLedgerEntry:
    """Add (or, negative, remove) credits; a removal stops at zero, an addition at MAX_BALANCE. Locks the row."""
    with transaction.atomic():
        locked = CreditAccount.objects.select_for_update().get(pk=account.pk)
        delta = min(max(amount, -locked.balance), MAX_BALANCE - locked.balance)
        locked.balance += delta
        locked.save(update_fields=["balance", "updated_at"])
        account.balance = locked.balance
        return CreditLedgerEntry.objects.create(
            account=locked, delta=delta, balance_after=locked.balance, reason=reason, note=note, created_by=created_by
        )


def _locked_account(user) -> CreditAccount:
    account = credit_account_for_user(user=user)
    return CreditAccount.objects.select_for_update().get(pk=account.pk)


def _available(account: CreditAccount, *, excluding: CreditHold | None = None) -> int:
    """The balance less what active holds (but `excluding`) set aside."""
    holds = CreditHold.objects.filter(account=account, expires_at__gt=timezone.now())
    if excluding is not None:
        holds = holds.exclude(pk=excluding.pk)
    return max(account.balance - (holds.aggregate(total=Sum("amount"))["total"] or 0), 0)


def credits_available_for_user(*, user) -> int:
    """What a new charge or hold may take."""
    return _available(credit_account_for_user(user=user))


_COSTS = "This costs {required} credits and you have {available}."
_SAVE_COSTS = "Saving costs {required} credits and you have {available}."


def _require(amount: int, available: int, message: str) -> None:
    """InsufficientCredits when `available` is short of `amount`; `message` may name {required} and {available}."""
    if available < amount:
        details = {"required": amount, "balance": available}
        raise InsufficientCredits(message.format(required=amount, available=available), details=details)


def credits_require(*, user, amount: int, message: str = _COSTS) -> None:
    """Raise InsufficientCredits unless `amount` credits are available now; nothing is set aside (credits_hold does
    that). `message` may name {required} and {available}."""
    _require(amount, credits_available_for_user(user=user), message)


def credits_hold(*, user, amount: int, ttl: float, message: str = _COSTS) -> CreditHold:
    """Set `amount` credits aside for up to `ttl` seconds, or raise InsufficientCredits (nothing held).
    `message` may name {required} and {available}."""
    with transaction.atomic():
        account = _locked_account(user)
        _require(amount, _available(account), message)
        return CreditHold.objects.create(
            account=account, amount=amount, expires_at=timezone.now() + timedelta(seconds=ttl)
        )


def credits_release(*, hold: CreditHold) -> None:
    """Give back what is left of a hold."""
    CreditHold.objects.filter(pk=hold.pk).delete()


def credits_charge(
    *, user, amount: int, avatar: Avatar | None = None, note: str = "", hold: CreditHold | None = None
) -> CreditLedgerEntry:
    """Take `amount` credits or raise InsufficientCredits; inside the caller's transaction when there is one (the
    row lock is then held until it ends).

    With `hold`, the credits come out of that hold (it shrinks by `amount`); otherwise out of what is available.
    """
    with transaction.atomic():
        account = _locked_account(user)
        if hold is not None:
            hold = CreditHold.objects.select_for_update().filter(pk=hold.pk, expires_at__gt=timezone.now()).first()
        if hold is not None and hold.amount >= amount:
            hold.amount -= amount
            hold.save(update_fields=["amount"])
        else:
            _require(amount, _available(account, excluding=hold), _SAVE_COSTS)
        account.balance -= amount
        account.save(update_fields=["balance", "updated_at"])
        return CreditLedgerEntry.objects.create(
            account=account,
            delta=-amount,
            balance_after=account.balance,
            reason=LedgerReason.AVATAR_SAVE,
            note=note,
            avatar=avatar,
        )
