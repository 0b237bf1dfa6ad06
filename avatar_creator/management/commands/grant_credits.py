from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from avatar_creator import services
from avatar_creator.models import LedgerReason


class Command(BaseCommand):
    help = "Add credits to a user (a negative amount removes them, never below zero)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("amount", type=int)
        parser.add_argument("--note", default="Granted with manage.py grant_credits")

    def handle(self, *args, username, amount, note, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        account = services.credit_account_for_user(user=user)
        reason = LedgerReason.GRANT if amount >= 0 else LedgerReason.ADJUSTMENT
        entry = services.credits_add(account=account, amount=amount, reason=reason, note=note)
        self.stdout.write(f"{username}: {entry.delta:+d} credits, balance now {entry.balance_after}.")
