"""Issue 12, for operators: the seed's .env, CORS, /healthz and /readyz, start-up checks, the JSON envelope under
DEBUG and the purge of expired previews without Celery beat."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.test import Client
from django.utils import timezone

from avatar_creator import selectors
from avatar_creator.checks import redacted
from avatar_creator.models import ApiToken, Preview, PreviewStatus, Project
from lumiku.settings.seed_env import database_config, redis_url
from tests.factories import make_preview, make_project

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = os.environ.get("LUMIKU_REQUIRE_SERVICES") == "1"
CLOSED_PORT = 1  # nothing listens on port 1 of this host: a connection there is refused at once

# The seed deployment guide's `.env` lines for the database and Redis, verbatim.
GUIDE_DATABASE_URL = '"postgresql://lumiku:lumiku_password@localhost:5432/lumiku_db?schema=public"'
GUIDE_ENV = f"""\
DATABASE_URL={GUIDE_DATABASE_URL}
REDIS_HOST=localhost
REDIS_PORT=6379
HUGGINGFACE_API_KEY=hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxx
FLUX_MODEL=black-forest-labs/FLUX.1-dev
FLUX_LORA_MODEL=XLabs-AI/flux-RealismLora
FLUX_USE_LORA=true
FLUX_LORA_SCALE=0.9
"""
REPORT = (
    "import json; from django.conf import settings as s; d = s.DATABASES['default']; "
    "print(json.dumps({'db': {k: d[k] for k in ('ENGINE', 'NAME', 'USER', 'HOST', 'PORT', 'OPTIONS')}, "
    "'redis': s.REDIS_URL, 'broker': s.CELERY_BROKER_URL, 'eager': s.CELERY_TASK_ALWAYS_EAGER, "
    "'cache': s.CACHES['default']['BACKEND'], 'scale': s.FLUX_LORA_SCALE}))"
)


def _clean_env(**values: str) -> dict[str, str]:
    """This environment without the variables a .env would set (a .env never overrides the environment)."""
    controlled = ("DATABASE_URL", "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "CELERY_BROKER_URL", "FLUX_LORA_SCALE")
    env = {key: value for key, value in os.environ.items() if key not in controlled and not key.startswith("DJANGO_")}
    return {**env, **values}


def _python(script: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


# The seed's .env


def test_seed_env_schema_becomes_the_search_path():
    config = database_config(GUIDE_DATABASE_URL.strip('"'))
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["NAME"], config["USER"], config["HOST"], config["PORT"]) == (
        "lumiku_db",
        "lumiku",
        "localhost",
        5432,
    )
    assert config["OPTIONS"] == {"options": "-c search_path=public"}


def test_seed_env_prisma_pool_options_are_dropped():
    config = database_config("postgresql://u:p@db:5432/app?schema=tenant&connection_limit=5&sslmode=require")
    assert config["OPTIONS"] == {"options": "-c search_path=tenant", "sslmode": "require"}


def test_seed_env_pgbouncer_turns_prepared_statements_off():
    config = database_config("postgresql://u:p@db:6432/app?schema=public&pgbouncer=true")
    assert config["OPTIONS"] == {
        "options": "-c search_path=public", "server_side_binding": False, "prepare_threshold": None,
    }  # fmt: skip


@pytest.mark.django_db
def test_postgresql_prepares_a_query_that_keeps_coming_back():
    """The hot reads' statements are parsed and planned once per connection (lumiku/settings/base.py)."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    for _ in range(6):
        list(Project.objects.filter(name="prepared-probe").values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    assert any("prepared-probe" not in text and '"name" = $1' in text for text in statements), statements


def test_seed_env_redis_host_and_port_build_the_url():
    assert redis_url({"REDIS_HOST": "localhost", "REDIS_PORT": "6379"}) == "redis://localhost:6379/0"


def test_seed_env_redis_password_is_quoted_into_the_url():
    url = redis_url({"REDIS_HOST": "cache", "REDIS_PASSWORD": "p@ss/word", "REDIS_DB": "2"})
    assert url == "redis://:p%40ss%2Fword@cache:6379/2"
    assert redacted(url) == "redis://:***@cache:6379/2"


def test_seed_env_redis_url_wins_over_host():
    assert redis_url({"REDIS_URL": "redis://a:1/3", "REDIS_HOST": "b"}) == "redis://a:1/3"


def test_seed_env_without_redis_is_the_embedded_default():
    assert redis_url({"REDIS_PORT": "6379"}) == ""


def test_seed_env_file_configures_the_app_unchanged(tmp_path):
    """The guide's .env file, loaded the way base.py loads the one beside manage.py, then the real settings."""
    dotenv = tmp_path / ".env"
    dotenv.write_text(GUIDE_ENV)
    script = f"import environ; environ.Env.read_env({str(dotenv)!r}); import django; django.setup(); {REPORT}"
    result = _python(script, _clean_env(DJANGO_SETTINGS_MODULE="lumiku.settings.local"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "db": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "lumiku_db",
            "USER": "lumiku",
            "HOST": "localhost",
            "PORT": 5432,
            "OPTIONS": {"options": "-c search_path=public", "server_side_binding": True, "prepare_threshold": 5},
        },
        "redis": "redis://localhost:6379/0",
        "broker": "redis://localhost:6379/0",
        "eager": False,
        "cache": "lumiku.cache.RedisCache",
        "scale": 0.9,
    }


def test_seed_env_redis_host_satisfies_production():
    env = _clean_env(
        DJANGO_SETTINGS_MODULE="lumiku.settings.production",
        DJANGO_SECRET_KEY="x" * 50,
        DJANGO_ALLOWED_HOSTS="avatars.example.com",
        DATABASE_URL=GUIDE_DATABASE_URL.strip('"'),
        AVATAR_GENERATOR="offline",
        REDIS_HOST="redis",
        REDIS_PORT="6380",
    )
    result = _python(REPORT, env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["redis"], report["broker"], report["eager"]) == (
        "redis://redis:6380/0",
        "redis://redis:6380/0",
        False,
    )
    assert report["db"]["OPTIONS"]["options"] == "-c search_path=public"


@pytest.mark.skipif(not REQUIRED, reason="needs PostgreSQL")
def test_seed_env_schema_url_connects_to_postgresql():
    """`?schema=public` used to stop every connection with `invalid connection option "schema"`."""
    url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres?schema=public"
    script = (
        "import django; django.setup(); from django.db import connection; c = connection.cursor(); "
        "c.execute('SHOW search_path'); print(c.fetchone()[0])"
    )
    env = _clean_env(DJANGO_SETTINGS_MODULE="lumiku.settings.local", DATABASE_URL=url)
    result = _python(script, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "public"


def test_seed_env_redis_host_unreachable_stops_startup():
    env = _clean_env(
        DJANGO_SETTINGS_MODULE="lumiku.settings.local",
        DATABASE_URL="sqlite://:memory:",
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=str(CLOSED_PORT),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"(avatar_creator.E002) Redis for the cache at redis://127.0.0.1:{CLOSED_PORT}/0 is unreachable" in (
        result.stderr
    )
    assert f"(avatar_creator.E002) Redis for the broker at redis://127.0.0.1:{CLOSED_PORT}/0 is unreachable" in (
        result.stderr
    )


# FLUX_LORA_SCALE is checked at start-up


@pytest.mark.parametrize("scale", [0.0, 0.9, 2.0])
def test_lora_scale_within_range_passes_the_check(settings, scale):
    settings.FLUX_LORA_SCALE = scale
    assert [message.id for message in run_checks() if message.id == "avatar_creator.E001"] == []


@pytest.mark.parametrize("scale", [-0.1, 2.01, 5.0])
def test_lora_scale_outside_range_is_a_check_error(settings, scale):
    settings.FLUX_LORA_SCALE = scale
    (error,) = [message for message in run_checks() if message.id == "avatar_creator.E001"]
    assert error.msg == f"FLUX_LORA_SCALE must be between 0 and 2; it is {scale:g}."
    assert error.is_serious()


def test_lora_scale_outside_range_stops_startup():
    env = _clean_env(DJANGO_SETTINGS_MODULE="lumiku.settings.test", FLUX_LORA_SCALE="5")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "?: (avatar_creator.E001) FLUX_LORA_SCALE must be between 0 and 2; it is 5." in result.stderr


# CORS


@pytest.fixture
def cors(settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    return Client()


def _preflight(client: Client, origin: str, path: str = "/api/auth/me"):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )


def test_cors_preflight_from_an_allowed_origin_is_answered(cors):
    response = _preflight(cors, "https://app.example.com")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "authorization" in response["Access-Control-Allow-Headers"].split(", ")
    assert "GET" in response["Access-Control-Allow-Methods"].split(", ")
    assert "Access-Control-Allow-Credentials" not in response


def test_cors_preflight_from_another_origin_is_refused(cors):
    response = _preflight(cors, "https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Headers" not in response


def test_cors_bearer_call_from_an_allowed_origin_is_readable(cors, alice):
    response = cors.get(
        "/api/auth/me", HTTP_ORIGIN="https://app.example.com", HTTP_AUTHORIZATION=f"Bearer {alice.token}"
    )
    assert response.json()["user"]["username"] == "alice"
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_cors_headers_stay_off_the_browser_ui(cors):
    response = _preflight(cors, "https://app.example.com", path="/login/")
    assert "Access-Control-Allow-Origin" not in response


def test_cors_default_allows_no_origin(settings):
    assert settings.CORS_ALLOWED_ORIGINS == []
    response = _preflight(Client(), "https://app.example.com")
    assert "Access-Control-Allow-Origin" not in response


# /healthz and /readyz


@pytest.mark.django_db
def test_healthz_answers_without_auth_or_a_known_host():
    response = Client(HTTP_HOST="10.0.3.7:8000").get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_readyz_reports_every_check_ok():
    response = Client(HTTP_HOST="10.0.3.7:8000").get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "storage": "ok"}}


@pytest.mark.django_db
def test_readyz_names_a_missing_broker(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{CLOSED_PORT}/0"
    response = Client().get("/readyz/")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "cache": "ok", "broker": "failed: ConnectionError", "storage": "ok"},
        "failed": ["broker"],
    }


@pytest.mark.django_db
def test_readyz_with_real_redis_is_ready(settings):
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    settings.CACHES = {"default": {"BACKEND": "lumiku.cache.RedisCache", "LOCATION": url}}
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = url
    try:
        response = Client().get("/readyz")
    finally:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    if response.status_code != 200 and not REQUIRED:
        pytest.skip("no Redis here")
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "broker": "ok", "storage": "ok"}


def _readyz_in_a_process(**values: str) -> tuple[int, dict]:
    """GET /readyz in a fresh process on the local settings (so the database and Redis can really be down)."""
    script = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/readyz'); print(json.dumps([r.status_code, r.json()]))"
    )
    env = _clean_env(DJANGO_SETTINGS_MODULE="lumiku.settings.local", DJANGO_ALLOWED_HOSTS="testserver", **values)
    result = _python(script, env)
    assert result.returncode == 0, result.stderr
    status, body = json.loads(result.stdout.strip().splitlines()[-1])
    return status, body


def test_readyz_with_the_database_down_names_the_database():
    status, body = _readyz_in_a_process(DATABASE_URL=f"postgres://postgres@127.0.0.1:{CLOSED_PORT}/lumiku")
    assert status == 503
    assert body["failed"] == ["database"]
    assert body["checks"]["database"] == "failed: OperationalError"
    assert (body["checks"]["cache"], body["checks"]["storage"]) == ("ok", "ok")


def test_readyz_with_redis_down_names_the_cache_and_the_broker():
    status, body = _readyz_in_a_process(
        DATABASE_URL="sqlite://:memory:", REDIS_URL=f"redis://127.0.0.1:{CLOSED_PORT}/0"
    )
    assert status == 503
    assert body == {
        "status": "unavailable",
        "checks": {
            "database": "ok",
            "cache": "failed: ConnectionError",
            "broker": "failed: ConnectionError",
            "storage": "ok",
        },
        "failed": ["cache", "broker"],
    }


# The JSON envelope under DEBUG


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/no-such-thing", "/api/avatar-creator/nope/", "/api/"])
def test_api_unknown_path_answers_the_envelope_under_debug(settings, path):
    settings.DEBUG = True
    response = Client().get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"success": False, "error": {"code": "NOT_FOUND", "message": "Not found."}}


@pytest.mark.django_db
def test_api_unknown_path_answers_the_envelope_without_debug():
    response = Client().get("/api/no-such-thing")
    assert response.json() == {"success": False, "error": {"code": "NOT_FOUND", "message": "Not found."}}


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_api_envelope_follows_the_path_under_a_script_prefix(settings, debug):
    """Mounted under a prefix (SCRIPT_NAME), the site's paths are the same below it: the API's errors keep the envelope
    and the pages keep their HTML (both are told apart by the path the URL patterns see, not the full one)."""
    settings.DEBUG = debug
    api = Client().get("/api/no-such-thing", SCRIPT_NAME="/lumiku")
    page = Client().get("/no-such-page", SCRIPT_NAME="/lumiku")
    mounted_api = Client().get("/lumiku/api/no-such-thing")  # not the API: /lumiku is only a prefix when mounted

    assert api.status_code == page.status_code == mounted_api.status_code == 404
    assert api.json() == {"success": False, "error": {"code": "NOT_FOUND", "message": "Not found."}}
    assert page["Content-Type"].startswith("text/html")
    assert mounted_api["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_ui_unknown_path_keeps_the_html_page_under_debug(settings):
    settings.DEBUG = True
    response = Client().get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_api_view_error_answers_the_envelope_under_debug(settings, alice, monkeypatch):
    settings.DEBUG = True

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(selectors, "project_list_for_user", broken)
    client = Client(raise_request_exception=False)
    response = client.get("/api/avatar-creator/projects", HTTP_AUTHORIZATION=f"Bearer {alice.token}")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTERNAL_ERROR"
    assert "a bug" not in response.content.decode()


# Expired previews purged without Celery beat


@pytest.fixture
def expired_preview(alice):
    project = make_project(alice)
    return make_preview(
        alice, project, status=PreviewStatus.SUCCEEDED, files=True, expires_at=timezone.now() - timedelta(seconds=1)
    )


@pytest.mark.django_db(transaction=True)
def test_housekeeping_purges_expired_previews_and_tokens_after_a_request(settings, expired_preview, alice):
    settings.AVATAR_HOUSEKEEPING_INTERVAL = 300
    image = Path(expired_preview.image.path)
    assert image.exists()
    ApiToken.objects.create(user=alice, name="Old laptop", expiry=timedelta(seconds=-1))

    response = Client().get("/healthz")

    assert response.status_code == 200
    expired_preview.refresh_from_db()
    assert (expired_preview.status, expired_preview.image.name) == (PreviewStatus.EXPIRED, "")
    assert not image.exists()
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["Sign-up"]


@pytest.mark.django_db(transaction=True)
def test_housekeeping_runs_at_most_once_per_interval(settings, expired_preview, alice):
    settings.AVATAR_HOUSEKEEPING_INTERVAL = 300
    Client().get("/healthz")
    later = make_preview(alice, expired_preview.project, expires_at=timezone.now() - timedelta(seconds=1))

    Client().get("/healthz")

    assert Preview.objects.get(pk=later.pk).status == PreviewStatus.QUEUED


@pytest.mark.django_db(transaction=True)
def test_housekeeping_off_leaves_previews_to_beat(settings, expired_preview):
    settings.AVATAR_HOUSEKEEPING_INTERVAL = 0
    Client().get("/healthz")
    assert Preview.objects.get(pk=expired_preview.pk).status == PreviewStatus.SUCCEEDED


def test_housekeeping_is_on_by_default_only_without_a_broker():
    script = "from django.conf import settings as s; print(s.AVATAR_HOUSEKEEPING_INTERVAL)"
    script = "import django; django.setup(); " + script
    base = _clean_env(DJANGO_SETTINGS_MODULE="lumiku.settings.local", DATABASE_URL="sqlite://:memory:")
    assert _python(script, base).stdout.strip() == "300"
    with_broker = {**base, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/9"}
    assert _python(script, with_broker).stdout.strip() == "0"


@pytest.mark.django_db(transaction=True)
def test_probes_and_request_ids_work_under_asgi():
    """The project's middleware runs in async mode too (no thread hop for requests that are not probes)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from django.test import AsyncClient

    async def probe():
        client = AsyncClient()
        return await client.get("/healthz"), await client.get("/readyz"), await client.get("/api/no-such-thing")

    # A thread of its own: the browser tests leave an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        healthz, readyz, unknown = pool.submit(asyncio.run, probe()).result(timeout=60)

    assert (healthz.status_code, readyz.status_code) == (200, 200)
    assert readyz.json()["checks"] == {"database": "ok", "cache": "ok", "storage": "ok"}
    assert unknown.json()["error"]["code"] == "NOT_FOUND"
    assert len(unknown["X-Request-ID"]) == 32


def test_embedded_default_generates_a_batch_at_once_on_sqlite(tmp_path):
    """`make run`'s database is a SQLite file written by requests and the background pool at the same time: twenty
    previews asked for at once run on four pool threads, and none may fail with "database is locked"."""
    script = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from avatar_creator import events, services
from avatar_creator.prompts import Persona
user = get_user_model().objects.create_user("sqlite-batch", password="correct-horse-battery-9")
project = services.project_create(owner=user, name="Batch", description="")
persona = Persona(prompt="Professional woman smiling at the camera")
ask = dict(user=user, project=project, persona=persona, count=4)
previews = [p for _ in range(5) for p in services.previews_request(**ask)]
events.previews_wait(previews=previews, timeout=60)
print(" ".join(sorted(set(p.status for p in previews))))
"""
    env = _clean_env(
        DJANGO_SETTINGS_MODULE="lumiku.settings.local",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        MEDIA_ROOT=str(tmp_path / "media"),
        PRIVATE_MEDIA_ROOT=str(tmp_path / "private"),
        AVATAR_BACKGROUND_WORKERS="4",
        AVATAR_PREVIEW_RATE="100/hour",
        AVATAR_MAX_ACTIVE_PREVIEWS="20",
    )
    result = _python(script, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1:] == ["succeeded"], result.stderr[-3000:]
    assert "database is locked" not in result.stderr


def test_the_background_pool_stops_for_good(monkeypatch):
    """queue.stop() (the test session's end): the sweep ends, the pool is gone and nothing starts it again."""
    import threading

    from avatar_creator import queue

    monkeypatch.setattr(queue, "_stopped", threading.Event())  # this test's own stop; the session's comes later
    monkeypatch.setattr(queue, "_pool", None)
    monkeypatch.setattr(queue, "_sweeper", None)
    monkeypatch.setattr(queue, "_sweep", lambda: queue._stopped.wait(60))
    ran = threading.Event()
    queue._background(ran.set)
    assert ran.wait(5)
    sweeper = queue._sweeper
    assert sweeper.is_alive()
    queue.stop()
    assert not sweeper.is_alive()
    assert (queue._pool, queue._sweeper) == (None, None)
    queue._background(lambda: pytest.fail("ran after the stop"))
    assert queue._pool is None


def test_the_first_request_starts_the_embedded_pool_once(client, monkeypatch):
    """After a restart, what was left queued must run even if nobody queues anything new: the pool and its sweep start
    with the first request the process serves (a poll of a queued preview is enough)."""
    from django.core.signals import request_started

    from avatar_creator import housekeeping, queue

    started = []
    monkeypatch.setattr(queue, "_get_pool", lambda: started.append(1))
    request_started.connect(housekeeping.start_background_work, dispatch_uid=housekeeping.START_UID)
    try:
        client.get("/healthz")
        client.get("/healthz")
    finally:
        request_started.disconnect(dispatch_uid=housekeeping.START_UID)
    assert started == [1]
