"""lumiku.settings.production demands what base.py would otherwise default: a database, a broker with a shared
cache, and an explicit generator; whatever is missing stops start-up with one line naming all of it.

Each test imports the settings in a fresh interpreter. The variables a test leaves out are set to "" rather than
deleted: base.py fills unset variables from a `.env` beside manage.py (without overwriting), so a blank value is
what keeps a developer's `.env` out of these tests, and production treats blank as missing.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTROLLED = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "AVATAR_GENERATOR", "HUGGINGFACE_API_KEY")
PREFIX = "django.core.exceptions.ImproperlyConfigured: "
TAIL = ': set them in the environment (see README "Configuration").'
START = "import django; from django.conf import settings; settings.INSTALLED_APPS"
REPORT = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps({'cache': s.CACHES['default'], 'broker': s.CELERY_BROKER_URL, "
    "'eager': s.CELERY_TASK_ALWAYS_EAGER, 'generator': s.AVATAR_GENERATOR, "
    "'engine': s.DATABASES['default']['ENGINE'], 'name': str(s.DATABASES['default']['NAME'])}))"
)


def _env(**values: str | None) -> dict[str, str]:
    """The caller's environment without its DJANGO_* and the controlled variables (blanked, see above), then a
    complete production set-up, then `values` (a value of None deletes the variable)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(dict.fromkeys(CONTROLLED, ""))
    env.update(
        DJANGO_SETTINGS_MODULE="lumiku.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="avatars.example.com",
        DATABASE_URL="sqlite:////tmp/lumiku-production-settings-test.db",
        REDIS_URL="redis://127.0.0.1:6379/0",
        AVATAR_GENERATOR="offline",
    )
    for key, value in values.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _run(env: dict[str, str], script: str = START) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def _refusal(env: dict[str, str]) -> str:
    """Start production settings under `env`; they must refuse. The message, proven to be one line."""
    result = _run(env)
    assert result.returncode != 0, result.stdout
    last = result.stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith(PREFIX), result.stderr
    message = last.removeprefix(PREFIX)
    assert message.startswith("Production settings need ") and message.endswith(TAIL), message
    assert result.stderr.count("Production settings need") == 1, result.stderr
    return message


def _needs(env: dict[str, str]) -> str:
    """What the refusal names, between "need" and the advice."""
    return _refusal(env).removeprefix("Production settings need ").removesuffix(TAIL)


def test_production_all_present_starts():
    result = _run(_env(), REPORT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "cache": {"BACKEND": "lumiku.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"},
        "broker": "redis://127.0.0.1:6379/0",
        "eager": False,
        "generator": "offline",
        "engine": "django.db.backends.sqlite3",
        "name": "/tmp/lumiku-production-settings-test.db",
    }


def test_production_database_url_missing_stops_startup():
    assert _needs(_env(DATABASE_URL="")) == "DATABASE_URL"


def test_production_database_url_blank_stops_startup():
    assert _needs(_env(DATABASE_URL="   ")) == "DATABASE_URL"


def test_production_broker_missing_stops_startup():
    assert _needs(_env(REDIS_URL="", CELERY_BROKER_URL="")) == "REDIS_URL or CELERY_BROKER_URL"


def test_production_redis_broker_alone_starts_with_shared_cache():
    result = _run(_env(REDIS_URL="", CELERY_BROKER_URL="rediss://cache.example.com:6380/2"), REPORT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cache"] == {
        "BACKEND": "lumiku.cache.RedisCache",
        "LOCATION": "rediss://cache.example.com:6380/2",
    }
    assert (report["broker"], report["eager"]) == ("rediss://cache.example.com:6380/2", False)


def test_production_redis_url_with_other_broker_caches_on_redis_url():
    result = _run(_env(CELERY_BROKER_URL="amqp://guest:guest@rabbit:5672//"), REPORT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cache"]["LOCATION"] == "redis://127.0.0.1:6379/0"
    assert (report["broker"], report["eager"]) == ("amqp://guest:guest@rabbit:5672//", False)


def test_production_non_redis_broker_without_redis_url_stops_startup():
    needs = _needs(_env(REDIS_URL="", CELERY_BROKER_URL="amqp://guest:guest@rabbit:5672//"))
    assert needs == "REDIS_URL (the throttles need a shared cache and CELERY_BROKER_URL is not Redis)"


def test_production_avatar_generator_missing_stops_startup():
    assert _needs(_env(AVATAR_GENERATOR="")) == "AVATAR_GENERATOR"


def test_production_avatar_generator_not_defaulted_from_api_key_stops_startup():
    """base.py would pick `huggingface` because a key is set; production still wants the choice spelled out."""
    assert _needs(_env(AVATAR_GENERATOR="", HUGGINGFACE_API_KEY="hf_test")) == "AVATAR_GENERATOR"


def test_production_avatar_generator_unknown_stops_startup():
    needs = _needs(_env(AVATAR_GENERATOR="dall-e"))
    assert needs == "AVATAR_GENERATOR=huggingface or offline (not 'dall-e')"


def test_production_avatar_generator_huggingface_starts():
    result = _run(_env(AVATAR_GENERATOR=" HuggingFace ", HUGGINGFACE_API_KEY="hf_test"), REPORT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["generator"] == "huggingface"


def test_production_everything_missing_stops_startup_naming_all_in_one_line():
    env = _env(DJANGO_SECRET_KEY="", DJANGO_ALLOWED_HOSTS="", DATABASE_URL="", REDIS_URL="", AVATAR_GENERATOR="")
    assert _refusal(env) == (
        "Production settings need DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL, "
        "REDIS_URL or CELERY_BROKER_URL, AVATAR_GENERATOR" + TAIL
    )


@pytest.mark.skipif((ROOT / ".env").exists(), reason="a .env beside manage.py would fill the unset variables")
def test_production_unset_variables_stop_startup():
    env = _env(**dict.fromkeys(("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", *CONTROLLED)))
    assert _needs(env) == (
        "DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL, REDIS_URL or CELERY_BROKER_URL, AVATAR_GENERATOR"
    )


def test_production_manage_py_check_stops_startup():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=_env(DATABASE_URL="", AVATAR_GENERATOR=""),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.rstrip("\n").splitlines()[-1] == (
        PREFIX + "Production settings need DATABASE_URL, AVATAR_GENERATOR" + TAIL
    )


def test_production_avatar_generator_unknown_multiline_stays_one_line():
    assert _needs(_env(AVATAR_GENERATOR="dall-e\nmidjourney")) == (
        "AVATAR_GENERATOR=huggingface or offline (not 'dall-e\\nmidjourney')"
    )
