FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# collectstatic imports the production settings, which demand a database, a broker and a generator; these
# build-only values satisfy that for this step alone (nothing is connected to) and are not kept in the image.
RUN DJANGO_SETTINGS_MODULE=lumiku.settings.production DJANGO_SECRET_KEY=build-only DJANGO_ALLOWED_HOSTS=build \
    DATABASE_URL=sqlite://:memory: REDIS_URL=redis://build:6379/0 AVATAR_GENERATOR=offline \
    python manage.py collectstatic --noinput \
 && useradd --create-home --uid 1000 lumiku \
 && mkdir -p /app/media /app/private && chown -R lumiku /app/media /app/private
USER lumiku

EXPOSE 8000
# Migrates once (an advisory lock, safe with several replicas) and runs the start-up checks, then execs CMD as the
# non-root `lumiku` user; set LUMIKU_MIGRATE=false on workers and beat. Probes: GET /healthz, GET /readyz.
ENTRYPOINT ["sh", "/app/docker/entrypoint.sh"]
# granian serves lumiku.asgi: the waiting routes (Prefer: wait, the event stream, the waiting generate-preview) hold no
# thread; everything else runs on WEB_THREADS threads per worker process (bench/README.md, "Serving").
CMD ["granian", "--interface", "asgi", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--backpressure", "2048", "--no-ws", "--access-log", "lumiku.asgi:application"]
