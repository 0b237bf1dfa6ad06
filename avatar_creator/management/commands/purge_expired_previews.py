from django.core.management.base import BaseCommand

from avatar_creator import services


class Command(BaseCommand):
    help = (
        "Expire previews past AVATAR_PREVIEW_TTL and delete their files; fail previews stuck past their deadline; "
        "delete expired API tokens."
    )

    def handle(self, *args, **options):
        expired = services.previews_expire_due()
        reaped = services.previews_reap_stuck()
        tokens = services.tokens_purge_expired()
        self.stdout.write(
            f"Expired {expired} preview(s); failed {reaped} stuck preview(s); deleted {tokens} expired token(s)."
        )
