"""Settings shared by every environment; values come from the environment (django-environ).

The defaults here are the embedded local ones: SQLite, tasks in-process, local media and the
offline generator, so the app runs with nothing installed but Python.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ

from .seed_env import database_config, redis_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "corsheaders",
    "avatar_creator",
]

MIDDLEWARE = [
    # First: load balancer probes answer before the Host check, the HTTPS redirect and the session (lumiku/health.py).
    "lumiku.health.HealthCheckMiddleware",
    # Then /metrics (same reason), and the count and time of every other request (lumiku/metrics.py).
    "lumiku.metrics.MetricsMiddleware",
    # A request id on every log line of the request, echoed as X-Request-ID (lumiku/observability.py).
    "lumiku.observability.RequestIdMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Sessions, their user, messages and htmx: Django's and django-htmx's, gone past by an API call with a Bearer
    # token, which needs none of them (lumiku/browser.py).
    "lumiku.browser.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "lumiku.browser.AuthenticationMiddleware",
    "lumiku.browser.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "lumiku.browser.HtmxMiddleware",
    # Under DEBUG, /api/ errors keep the JSON envelope instead of Django's debug pages (lumiku/errors.py).
    "lumiku.errors.ApiDebugErrorMiddleware",
]

# A front-end on another origin may call the API with a Bearer token; no cookies cross origins.
CORS_ALLOWED_ORIGINS = env.list("DJANGO_CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "prefer", "last-event-id")
CORS_EXPOSE_HEADERS = ("location", "retry-after", "preference-applied")
CORS_PREFLIGHT_MAX_AGE = 3600

ROOT_URLCONF = "lumiku.urls"
WSGI_APPLICATION = "lumiku.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "avatar_creator.ui.context_processors.avatar_creator",
            ],
        },
    },
]

DATABASES = {
    # Through seed_env: the seed's `?schema=public` URL works unchanged (see lumiku/settings/seed_env.py).
    "default": database_config(env("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
if DATABASES["default"].get("ENGINE") == "django.db.backends.postgresql" and env.bool(
    "DB_PREPARED_STATEMENTS", default=True
):
    # Parameters bound by PostgreSQL, and a statement prepared once it has run 5 times on a connection: the hot
    # routes' queries are parsed and planned once per connection instead of on every call (the status read's
    # PostgreSQL CPU 0.46 -> 0.14 ms; bench/README.md). DB_PREPARED_STATEMENTS=false behind a pooler in transaction
    # mode (PgBouncer before 1.21), which cannot keep a statement prepared on one server connection for the next
    # transaction; the seed's `?pgbouncer=true` URL turns it off too (seed_env.py).
    for option, value in {"server_side_binding": True, "prepare_threshold": 5}.items():
        DATABASES["default"]["OPTIONS"].setdefault(option, value)
if DATABASES["default"].get("ENGINE") == "django.db.backends.sqlite3":
    # The embedded default writes from several threads (requests and the background pool). SQLite's deferred
    # transactions fail at once with "database is locked" when two upgrade to writing; IMMEDIATE ones wait their turn.
    DATABASES["default"].setdefault("OPTIONS", {}).update(transaction_mode="IMMEDIATE", timeout=20)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Refuses passwords of only whitespace, and revokes every API token when a password changes.
    {"NAME": "avatar_creator.services.accounts.NotOnlyWhitespaceValidator"},
]
# The database store, minus a 500 on crafted session cookies (see avatar_creator/sessions.py).
SESSION_ENGINE = "avatar_creator.sessions"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = env("MEDIA_URL", default="/media/")
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "media")))
# Preview images are private: they live outside MEDIA_ROOT and are served only through an
# owner-checking view, never by the media URL.
PRIVATE_MEDIA_ROOT = Path(env("PRIVATE_MEDIA_ROOT", default=str(BASE_DIR / "private")))
# Serve MEDIA_ROOT from Django itself (the embedded default; turn off behind a CDN or S3).
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=True)

AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL", default=None)
    AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME", default=None)
    AWS_QUERYSTRING_AUTH = env.bool("AWS_QUERYSTRING_AUTH", default=False)
    AWS_S3_FILE_OVERWRITE = False
    STORAGES = {
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {"location": "media"}},
        "previews": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"location": "previews", "default_acl": "private", "querystring_auth": True},
        },
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
else:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "previews": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(PRIVATE_MEDIA_ROOT), "base_url": None},
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

# Celery: without a broker, tasks run in-process (eagerly) so the app needs nothing but Python.
# REDIS_URL, or the seed's REDIS_HOST / REDIS_PORT (lumiku/settings/seed_env.py).
REDIS_URL = redis_url(os.environ)
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection around every task unless this is set (then every 2 x N
# tasks): a new PostgreSQL connection per preview. lumiku/celery.py closes it as a request would instead.
CELERY_DB_REUSE_MAX = 1000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message whose worker vanished mid-task is taken back after `visibility_timeout` seconds unacknowledged; workers
# sweep for such messages every interval * throttle seconds. The timeout must exceed a task's hard limit
# (FLUX_TIMEOUT + 60 s) or a slow but live task runs twice, and timeout + sweep + one generation must fit inside
# AVATAR_PREVIEW_DEADLINE or the redelivered attempt finds its preview already out of time.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=300),
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 3,
    "socket_connect_timeout": 3,
    "socket_timeout": 5,
    "max_retries": 1,
}
# How often the reaper looks for previews whose worker died (Celery beat with a broker, the background pool's sweep
# without): often, so that such a preview runs again well within a minute (see AVATAR_HEARTBEAT_STALE).
AVATAR_REAP_INTERVAL = 15.0
CELERY_BEAT_SCHEDULE = {
    "purge-expired-previews": {"task": "avatar_creator.tasks.purge_expired_previews", "schedule": 300.0},
    "reap-stuck-previews": {"task": "avatar_creator.tasks.reap_stuck_previews", "schedule": AVATAR_REAP_INTERVAL},
    "purge-expired-tokens": {"task": "avatar_creator.tasks.purge_expired_tokens", "schedule": 3600.0},
}
# Without a broker nobody runs Celery beat: expired previews are purged from the request path instead, at most once
# per this many seconds (avatar_creator/housekeeping.py); 0 turns that off.
AVATAR_HOUSEKEEPING_INTERVAL = env.int("AVATAR_HOUSEKEEPING_INTERVAL", default=0 if CELERY_BROKER_URL else 300)

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "lumiku.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "avatar_creator.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["avatar_creator.api.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "avatar_creator.api.errors.exception_handler",
    "DEFAULT_METADATA_CLASS": "avatar_creator.api.metadata.EnvelopedMetadata",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"auth": env("AUTH_THROTTLE_RATE", default="10/min")},
    # DRF's own X-Forwarded-For reading is not used (see TRUSTED_PROXIES); 0 keeps it on REMOTE_ADDR regardless.
    "NUM_PROXIES": 0,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# The proxies (addresses or networks) whose X-Forwarded-For is believed; every throttle keys on the client address
# they vouch for (avatar_creator/throttling.py `client_address`). None by default: REMOTE_ADDR is the client.
TRUSTED_PROXIES = env.list("DJANGO_TRUSTED_PROXIES", default=[])
# API tokens (django-rest-knox): hashed, one per device, expiring after AVATAR_TOKEN_TTL seconds.
KNOX_TOKEN_MODEL = "avatar_creator.ApiToken"  # noqa: S105 - a model name, not a secret
# Knox's own migrations would create its unused AuthToken table (the model is swapped for ApiToken above).
MIGRATION_MODULES = {"knox": None}
AVATAR_TOKEN_TTL = env.int("AVATAR_TOKEN_TTL", default=30 * 24 * 3600)
REST_KNOX = {
    "TOKEN_TTL": timedelta(seconds=AVATAR_TOKEN_TTL),
    "AUTH_HEADER_PREFIX": "Bearer",
    # 40 hex characters (160 bits), the shape clients already know from the first version's tokens.
    "AUTH_TOKEN_CHARACTER_LENGTH": 40,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lumiku Avatar Creator API",
    "DESCRIPTION": "Portrait avatars with FLUX.1-dev and the XLabs Realism LoRA: preview (free), then save (credits).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the installed sidecar package: no CDN is needed to read the docs.
    "SWAGGER_UI_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "avatar_creator.api.schema.postprocess",
    ],
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Upload bounds: a legacy base64 save carries up to 10 MB of image, about 13.4 MB of base64.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=30 * 1024 * 1024)

# The image generator.
HUGGINGFACE_API_KEY = env("HUGGINGFACE_API_KEY", default="")
FLUX_MODEL = env("FLUX_MODEL", default="black-forest-labs/FLUX.1-dev")
FLUX_LORA_MODEL = env("FLUX_LORA_MODEL", default="XLabs-AI/flux-RealismLora")
FLUX_USE_LORA = env.bool("FLUX_USE_LORA", default=True)
FLUX_LORA_SCALE = env.float("FLUX_LORA_SCALE", default=0.9)
FLUX_STEPS = env.int("FLUX_STEPS", default=28)
FLUX_GUIDANCE_SCALE = env.float("FLUX_GUIDANCE_SCALE", default=3.5)
FLUX_TIMEOUT = env.float("FLUX_TIMEOUT", default=120.0)
HF_PROVIDER = env("HF_PROVIDER", default="auto")
HF_INFERENCE_URL = env("HF_INFERENCE_URL", default="")
AVATAR_GENERATOR = env("AVATAR_GENERATOR", default="huggingface" if HUGGINGFACE_API_KEY else "offline")

# The product's economics and limits.
AVATAR_SAVE_COST = env.int("AVATAR_SAVE_COST", default=10)
AVATAR_UPLOAD_COST = env.int("AVATAR_UPLOAD_COST", default=0)
AVATAR_SIGNUP_CREDITS = env.int("AVATAR_SIGNUP_CREDITS", default=100)
# Where a user gets more credits (a shop); empty: the Credits & usage page says to ask the site's operator.
AVATAR_GET_CREDITS_URL = env("AVATAR_GET_CREDITS_URL", default="")
AVATAR_PREVIEW_TTL = env.int("AVATAR_PREVIEW_TTL", default=24 * 3600)
AVATAR_PREVIEW_RATE = env("AVATAR_PREVIEW_RATE", default="60/hour")
# Previews one user may have queued or running at once: no account can fill the queue (or the web threads).
AVATAR_MAX_ACTIVE_PREVIEWS = env.int("AVATAR_MAX_ACTIVE_PREVIEWS", default=4)
# How long a waiting (synchronous) generate-preview holds the request before answering 504.
AVATAR_SYNC_WAIT = env.float("AVATAR_SYNC_WAIT", default=180.0)
# A preview's whole life in the queue, retries included; the reaper fails it after this.
AVATAR_PREVIEW_DEADLINE = env.int("AVATAR_PREVIEW_DEADLINE", default=600)
AVATAR_MAX_ATTEMPTS = env.int("AVATAR_MAX_ATTEMPTS", default=5)
# Upper bound on one retry wait (model loading / Retry-After); keeps a retry inside the deadline.
AVATAR_RETRY_MAX_WAIT = env.float("AVATAR_RETRY_MAX_WAIT", default=60.0)
AVATAR_RETRY_BASE_DELAY = env.float("AVATAR_RETRY_BASE_DELAY", default=2.0)

# Live results (avatar_creator/events.py): the Redis that carries preview events between processes. Empty: the
# Celery broker when that is Redis, else (no broker, the embedded default) a notifier inside the process.
AVATAR_EVENTS_URL = env("AVATAR_EVENTS_URL", default=REDIS_URL)
# Without a broker, previews run on this many background threads of the web process (queue.py).
AVATAR_BACKGROUND_WORKERS = env.int("AVATAR_BACKGROUND_WORKERS", default=2)
# A running attempt beats every INTERVAL seconds; the reaper re-queues one whose beat is older than STALE.
AVATAR_HEARTBEAT_INTERVAL = env.float("AVATAR_HEARTBEAT_INTERVAL", default=2.0)
AVATAR_HEARTBEAT_STALE = env.float("AVATAR_HEARTBEAT_STALE", default=10.0)
# Webhooks: private, loopback and link-local targets (and plain http) only when this is true (local tests).
AVATAR_WEBHOOK_ALLOW_PRIVATE = env.bool("AVATAR_WEBHOOK_ALLOW_PRIVATE", default=False)
AVATAR_WEBHOOK_TIMEOUT = env.float("AVATAR_WEBHOOK_TIMEOUT", default=5.0)
# The site's public address (e.g. https://avatars.example.com): links in what is sent outside a request (webhook
# payloads) are made absolute with it. Empty: those links stay relative to the API's address.
AVATAR_PUBLIC_URL = env("AVATAR_PUBLIC_URL", default="").rstrip("/")

# Prometheus metrics at /metrics, only with this bearer token set (lumiku/metrics.py).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# `plain` lines, or `json`: one object a line with request_id and preview_id (lumiku/observability.py).
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "lumiku.observability.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "lumiku.observability.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
