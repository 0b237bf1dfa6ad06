"""The ASGI application production serves (see the Dockerfile): Django, with the routes that wait answered in front
of it without holding a thread (avatar_creator/api/waiting.py)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumiku.settings.production")

django_application = get_asgi_application()

from avatar_creator.api.waiting import WaitingRoutes  # noqa: E402 - needs the apps loaded by the line above

application = WaitingRoutes(django_application)
