"""Credits: every change of a balance is a ledger entry written in the same transaction."""

from django.db import transaction
from django.db.models import F

from avatar_creator.errors import InsufficientCredits
from avatar_creator.models import Avatar, CreditAccount, CreditLedgerEntry, LedgerReason


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
