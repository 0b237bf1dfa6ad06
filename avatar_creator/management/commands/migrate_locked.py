"""`migrate` that several replicas can run at once: on PostgreSQL they take turns under an advisory lock, so the
first applies the migrations and the others, once they hold the lock, find nothing left to do. The lock belongs to
the database session, so a replica that dies while migrating releases it. Other databases (SQLite: one host, one
file) migrate directly. docker/entrypoint.sh runs this before it starts the server.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

# Any 64-bit number that nothing else in the database locks on: "LUMIKU" in ASCII.
MIGRATION_LOCK = 0x4C554D494B55


class Command(BaseCommand):
    help = "Apply migrations once even when several replicas start together (PostgreSQL advisory lock)."

    def handle(self, *args, **options):
        verbosity = options["verbosity"]
        connection = connections["default"]
        if connection.vendor != "postgresql":
            call_command("migrate", interactive=False, verbosity=verbosity)
            return
        with connection.cursor() as cursor:
            self.stdout.write("Waiting for the migration lock ...")
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
            try:
                call_command("migrate", interactive=False, verbosity=verbosity)
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])
