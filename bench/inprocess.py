"""One hot route in one process: Django's WSGI handler called directly, no server, no load, no other client.

    .venv/bin/python bench/inprocess.py status            # CPU per request, 5 rounds of 2,000 calls
    .venv/bin/python bench/inprocess.py status --floor    # the same for its floor (bench/urls.py)
    .venv/bin/python bench/inprocess.py status --instructions   # instructions per request (valgrind), exact

Routes: `status` (a succeeded preview's status poll), `queued` (a queued one's) and `avatars` (a project's 24
avatars), each called as an API client calls it (a knox Bearer token, plain JSON). Production settings with the
bench's URLconf, on a fresh PostgreSQL database (BENCH_INPROCESS_DB, dropped at the end) and Redis db 13.

CPU time on a shared VM moves by ±15 % from one round to the next. `--instructions` counts the instructions this
process executes per request instead: it runs the route 100 and 300 times under valgrind's callgrind and divides
the difference by 200 (start-up and exit cancel out). The count is the same from run to run, so a change of 1 %
shows. It leaves out what the kernel and PostgreSQL do, and what a cache miss costs: CPU time under load
(`make bench`) stays the figure; this says which way a change moved the code, and by how much.
"""

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stack import PG_ADMIN_DSN, ROOT  # the bench's own: the same server, the same override

DB_NAME = os.environ.get("BENCH_INPROCESS_DB", "lumiku_inprocess")
DATABASE_URL = os.environ.get("BENCH_INPROCESS_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB_NAME}")
ROUTES = ("status", "queued", "avatars")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("route", choices=ROUTES)
    parser.add_argument("--floor", action="store_true", help="call the route's floor instead")
    parser.add_argument("--instructions", action="store_true", help="instructions per request, under valgrind")
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)  # one valgrind run: this many calls, no report
    return parser.parse_args(argv)


def instructions(args: argparse.Namespace) -> int:
    """Instructions per request: two callgrind runs of this script, 100 and 300 calls, their difference over 200."""
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for calls in (100, 300):
            command = [
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/{calls}.out", sys.executable, __file__,
                args.route, "--calls", str(calls), *(["--floor"] if args.floor else []),
            ]  # fmt: skip
            runs[calls] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                           env={**os.environ, "BENCH_INPROCESS_DB": f"{DB_NAME}_{calls}"})  # fmt: skip
        for calls, run in runs.items():
            _, err = run.communicate()
            if run.returncode != 0:
                raise SystemExit(f"valgrind run of {calls} calls failed:\n{err[-2000:]}")
            totals = [line for line in err.splitlines() if "Collected" in line]
            counts[calls] = int(totals[-1].split(":")[-1].replace(",", "").strip())
    return round((counts[300] - counts[100]) / 200)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.instructions:
        print(f"{args.route}{' floor' if args.floor else ''}: {instructions(args):,} instructions per request")
        return 0
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    try:
        with tempfile.TemporaryDirectory() as media:
            return measure(args, media)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def measure(args: argparse.Namespace, media: str) -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.settings", DJANGO_SECRET_KEY="in-process-" * 5, DJANGO_ALLOWED_HOSTS="localhost",
        DATABASE_URL=DATABASE_URL, REDIS_URL="redis://127.0.0.1:6379/13", AVATAR_GENERATOR="offline",
        MEDIA_ROOT=f"{media}/media", PRIVATE_MEDIA_ROOT=f"{media}/private", BENCH_FLOOR_DIR=media, LOG_LEVEL="WARNING",
    )  # fmt: skip
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command

    from avatar_creator import services
    from avatar_creator.models import PreviewStatus
    from tests.factories import make_avatar, make_preview, make_project

    call_command("migrate", verbosity=0)
    cache.clear()
    user, token = services.user_register(
        username="inprocess", password="a-long-in-process-passphrase-9", email="i@example.com"
    )
    project = make_project(user)
    if args.route == "avatars":
        for i in range(24):
            make_avatar(project, name=f"Avatar {i}")
        path, floor = f"/api/avatar-creator/projects/{project.pk}/avatars", "/api/bench/floor/avatars"
    else:
        status = PreviewStatus.SUCCEEDED if args.route == "status" else PreviewStatus.QUEUED
        preview = make_preview(user, project, status=status, files=status == PreviewStatus.SUCCEEDED)
        path, floor = f"/api/avatar-creator/previews/{preview.pk}", "/api/bench/floor/status"
    handler = WSGIHandler()

    def call(target: str) -> bytes:
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": target, "QUERY_STRING": "", "SERVER_NAME": "localhost",
            "SERVER_PORT": "443", "HTTP_HOST": "localhost", "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr, "HTTP_AUTHORIZATION": f"Bearer {token.key}",
        }  # fmt: skip
        answered = []
        body = b"".join(handler(environ, lambda status, headers, exc_info=None: answered.append(status)))
        if not answered[0].startswith("200"):
            raise SystemExit(f"{target} answered {answered[0]}: {body[:300]!r}")
        return body

    # The floor answers the route's own body (bench/urls.py reads it from BENCH_FLOOR_DIR).
    Path(media, Path(floor).name + ".json").write_bytes(call(path))
    target = floor if args.floor else path
    for _ in range(300):  # warm: the first calls import, compile and connect
        call(target)
    if args.calls is not None:
        for _ in range(args.calls):
            call(target)
        return 0
    for _ in range(5):
        started = time.process_time()
        for _ in range(2000):
            call(target)
        per_request = (time.process_time() - started) / 2  # ms: 2,000 calls
        print(f"{args.route}{' floor' if args.floor else ''}: {per_request:.3f} ms of CPU per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
