"""The seed app's `.env` read as it is: its DATABASE_URL and Redis lines mean here what they meant there.

The seed (a Prisma app) writes `postgresql://...?schema=public` and `REDIS_HOST` / `REDIS_PORT`. Passed through
untouched, `schema` would reach libpq as a connection option (every connection fails) and the Redis lines would be
ignored (tasks silently run in-process). Here `schema` becomes the connection's search path, Prisma's own pool
options are dropped, and the Redis lines build the URL that `REDIS_URL` would otherwise give.
"""

from collections.abc import Mapping
from urllib.parse import quote

import environ

# Query options that only Prisma reads; libpq would refuse them as unknown connection options.
PRISMA_ONLY_OPTIONS = ("connection_limit", "pool_timeout", "pgbouncer", "socket_timeout", "statement_cache_size")


def database_config(url: str) -> dict:
    """Django's DATABASES entry for `url`, taking Prisma's `?schema=` as the PostgreSQL search path."""
    config = environ.Env.db_url_config(url)
    options = config.get("OPTIONS", {})
    schema = options.pop("schema", None)
    behind_pgbouncer = str(options.get("pgbouncer", "")).lower() in ("true", "1")
    for name in PRISMA_ONLY_OPTIONS:
        options.pop(name, None)
    if behind_pgbouncer and config["ENGINE"] == "django.db.backends.postgresql":
        # Prisma's pgbouncer flag means a pooler in transaction mode: no statement may stay prepared.
        options.update(server_side_binding=False, prepare_threshold=None)
    if schema and config["ENGINE"] == "django.db.backends.postgresql":
        options["options"] = f"-c search_path={schema}"
    config["OPTIONS"] = options
    return config


def redis_url(environ_: Mapping[str, str]) -> str:
    """REDIS_URL when set, else the URL REDIS_HOST / REDIS_PORT (/ REDIS_PASSWORD / REDIS_DB) describe, else ""."""
    url = environ_.get("REDIS_URL", "").strip()
    if url:
        return url
    host = environ_.get("REDIS_HOST", "").strip()
    if not host:
        return ""
    port = environ_.get("REDIS_PORT", "").strip() or "6379"
    password = environ_.get("REDIS_PASSWORD", "")
    database = environ_.get("REDIS_DB", "").strip() or "0"
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{database}"
