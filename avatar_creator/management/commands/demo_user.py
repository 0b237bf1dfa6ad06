from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from avatar_creator import services

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "lumiku-demo-2026"  # noqa: S105 - a local-only login, refused outside DEBUG


class Command(BaseCommand):
    help = "Create (once) a local demo login with admin rights and print where to open the app. DEBUG only."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, url, **options):
        if not settings.DEBUG:
            raise CommandError("demo_user only runs with DEBUG on (the local settings); create real users instead.")
        User = get_user_model()
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            user, _ = services.user_register(username=DEMO_USERNAME, password=DEMO_PASSWORD, email="demo@example.com")
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
        generator = settings.AVATAR_GENERATOR
        self.stdout.write(
            "\n"
            f"  Lumiku Avatar Creator is starting at {url}\n"
            f"  Log in as {DEMO_USERNAME} / {DEMO_PASSWORD} (also the admin at {url}admin/)\n"
            f"  API docs: {url}api/docs/   Generator: {generator}\n"
        )
