"""Helpers for tests that need PostgreSQL, Redis or a browser: skip locally when missing, fail in CI."""

import os

import pytest

REQUIRED = os.environ.get("LUMIKU_REQUIRE_SERVICES") == "1"


def unavailable(reason: str):
    """Skip on a developer's machine; in CI (LUMIKU_REQUIRE_SERVICES=1) a missing service is a failure."""
    if REQUIRED:
        pytest.fail(f"{reason} (CI requires it)")
    pytest.skip(reason)


def require_postgresql():
    from django.db import connection

    if connection.vendor != "postgresql":
        unavailable("needs PostgreSQL: set DATABASE_URL=postgres://...")


def redis_url() -> str:
    from django.conf import settings

    return settings.TEST_REDIS_URL


def require_redis():
    import redis

    try:
        redis.Redis.from_url(redis_url(), socket_connect_timeout=1).ping()
    except redis.RedisError:
        unavailable(f"needs Redis at {redis_url()}")
