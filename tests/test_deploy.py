"""The deployment: docker-compose.dev.yml as Docker would read it, and the image's entrypoint run as several replicas
starting together against one fresh PostgreSQL database."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
REQUIRED = os.environ.get("LUMIKU_REQUIRE_SERVICES") == "1"
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "lumiku.settings.production",
    "DATABASE_URL": "postgres://lumiku:lumiku@postgres:5432/lumiku",
    "REDIS_URL": "redis://redis:6379/0",
    "CELERY_BROKER_URL": "redis://redis:6379/1",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.dev.yml").read_text())


def test_compose_runs_the_five_services(compose):
    assert sorted(compose["services"]) == ["beat", "postgres", "redis", "web", "worker"]


def test_compose_web_serves_the_asgi_app_and_leaves_migrating_to_the_entrypoint(compose):
    web = compose["services"]["web"]
    command = web["command"].split()
    assert (command[0], command[-1]) == ("granian", "lumiku.asgi:application")
    assert command[command.index("--interface") + 1] == "asgi"
    assert "migrate" not in web["command"]
    assert web["environment"]["LUMIKU_MIGRATE"] == "true"
    assert web["ports"] == ["8000:8000"]
    assert web["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }


def test_compose_web_healthcheck_probes_readyz(compose):
    check = compose["services"]["web"]["healthcheck"]
    assert check["test"][:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:8000/readyz" in check["test"][3]
    assert check["start_period"] == "30s"


def test_compose_worker_runs_celery_once_web_is_ready(compose):
    worker = compose["services"]["worker"]
    assert worker["command"] == "celery -A lumiku worker --loglevel=INFO --concurrency=4"
    assert worker["environment"]["LUMIKU_MIGRATE"] == "false"
    assert worker["depends_on"] == {"web": {"condition": "service_healthy"}}
    assert worker["healthcheck"]["test"] == [
        "CMD-SHELL",
        "celery -A lumiku inspect ping --destination celery@$$HOSTNAME --timeout 5",
    ]


def test_compose_beat_runs_celery_beat_once_web_is_ready(compose):
    beat = compose["services"]["beat"]
    assert beat["command"].split()[:4] == ["celery", "-A", "lumiku", "beat"]
    assert beat["environment"]["LUMIKU_MIGRATE"] == "false"
    assert beat["depends_on"] == {"web": {"condition": "service_healthy"}}
    assert "celerybeat-schedule" in beat["healthcheck"]["test"][1]


@pytest.mark.parametrize("service", ["web", "worker", "beat"])
def test_compose_app_services_share_the_production_environment(compose, service):
    environment = compose["services"][service]["environment"]
    assert {key: environment[key] for key in PRODUCTION_ENV} == PRODUCTION_ENV
    assert environment["AVATAR_GENERATOR"] == "${AVATAR_GENERATOR:-offline}"
    assert environment["DJANGO_CORS_ALLOWED_ORIGINS"] == "${DJANGO_CORS_ALLOWED_ORIGINS:-}"
    assert compose["services"][service]["build"] == "."


@pytest.mark.parametrize("service", ["postgres", "redis"])
def test_compose_services_have_healthchecks(compose, service):
    assert compose["services"][service]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")


def test_dockerfile_serves_the_asgi_app_as_compose_does(compose):
    (cmd,) = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    assert json.loads(cmd[len("CMD ") :]) == compose["services"]["web"]["command"].split()


def test_dockerfile_uses_the_entrypoint_as_a_non_root_user():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert 'ENTRYPOINT ["sh", "/app/docker/entrypoint.sh"]' in lines
    assert "USER lumiku" in lines
    assert lines.index("USER lumiku") < lines.index('ENTRYPOINT ["sh", "/app/docker/entrypoint.sh"]')


# The entrypoint itself


def _admin_url() -> str:
    return os.environ.get("DATABASE_URL", "").rsplit("/", 1)[0] + "/postgres"


@pytest.fixture
def fresh_database():
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        if REQUIRED:
            pytest.fail("DATABASE_URL must name PostgreSQL")
        pytest.skip("needs PostgreSQL")
    name = f"lumiku_entrypoint_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_admin_url(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(_admin_url(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _replica_env(database_url: str, media: Path, **values: str) -> dict[str, str]:
    """Local settings on `database_url`; started as root (as CI runs), the entrypoint execs the command as `nobody`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "LUMIKU_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONDONTWRITEBYTECODE="1",
        DJANGO_SETTINGS_MODULE="lumiku.settings.local",
        DATABASE_URL=database_url,
        REDIS_URL="",
        CELERY_BROKER_URL="",
        MEDIA_ROOT=str(media / "public"),
        PRIVATE_MEDIA_ROOT=str(media / "private"),
        LUMIKU_USER="nobody",
        **values,
    )
    return env


def test_entrypoint_replicas_migrate_once_then_serve(fresh_database, tmp_path):
    """Three replicas start together: all of them serve, not as root, and each migration was applied once."""
    env = _replica_env(fresh_database, tmp_path)
    replicas = [
        subprocess.Popen(
            ["sh", str(ENTRYPOINT), "id", "-u"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [replica.communicate(timeout=180) for replica in replicas]

    assert [replica.returncode for replica in replicas] == [0, 0, 0], [err for _, err in outcomes]
    # The command ran as a user other than root.
    assert [int(out.splitlines()[-1]) != 0 for out, _ in outcomes] == [True] * 3
    with psycopg.connect(fresh_database) as connection:
        (duplicates,) = connection.execute(
            "SELECT count(*) FROM (SELECT app, name FROM django_migrations GROUP BY app, name HAVING count(*) > 1) d"
        ).fetchone()
        (applied,) = connection.execute(
            "SELECT count(*) FROM django_migrations WHERE app = 'avatar_creator'"
        ).fetchone()
    assert duplicates == 0
    assert applied == len(list((ROOT / "avatar_creator" / "migrations").glob("0*.py")))
    applying = sum(out.count("Applying avatar_creator.0001_initial") for out, _ in outcomes)
    assert applying == 1


def _entrypoint(word: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """One replica whose command prints `word`."""
    return subprocess.run(["sh", str(ENTRYPOINT), "echo", word], env=env, capture_output=True, text=True, timeout=60)


def test_entrypoint_without_migrate_only_serves(fresh_database, tmp_path):
    result = _entrypoint("worker", _replica_env(fresh_database, tmp_path, LUMIKU_MIGRATE="false"))
    assert (result.returncode, result.stdout.splitlines()) == (
        0,
        ["System check identified no issues (0 silenced).", "worker"],
    )
    with psycopg.connect(fresh_database) as connection:
        (tables,) = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'django_migrations'"
        ).fetchone()
    assert tables == 0


@pytest.mark.parametrize("migrate", ["true", "false"])
def test_entrypoint_stops_on_a_failed_startup_check(fresh_database, tmp_path, migrate):
    result = _entrypoint("served", _replica_env(fresh_database, tmp_path, FLUX_LORA_SCALE="5", LUMIKU_MIGRATE=migrate))
    assert result.returncode != 0
    assert "served" not in result.stdout
    assert "(avatar_creator.E001) FLUX_LORA_SCALE must be between 0 and 2; it is 5." in result.stderr
