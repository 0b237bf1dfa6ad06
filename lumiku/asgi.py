"""The ASGI application production serves (see the Dockerfile).

The routes that wait are answered in front of Django without holding a thread (avatar_creator/api/waiting.py).
Everything else is Django's WSGI handler on a bounded pool of threads (a2wsgi), as under gunicorn's gthread
workers: one hand-over per request, and a thread keeps its database connection between requests. Django's own ASGI
handler gives each request a new thread and hands every middleware hook to it and back: four times the CPU per
request in bench/README.md's comparison, and a new PostgreSQL connection per request unless pooled.
"""

import os

from a2wsgi import WSGIMiddleware
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumiku.settings.production")

# Threads per process for the plain requests (each keeps its database connection): WEB_THREADS.
WEB_THREADS = int(os.environ.get("WEB_THREADS", "8"))
django_application = WSGIMiddleware(get_wsgi_application(), workers=WEB_THREADS)

from avatar_creator.api.waiting import WaitingRoutes  # noqa: E402 - needs the apps loaded above
from lumiku.metrics import CountedRequests  # noqa: E402

# Each request counted once in the metrics, however many calls of Django a waiting route makes for it.
application = CountedRequests(WaitingRoutes(django_application))
