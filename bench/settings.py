"""The benchmark's web settings: production's, plus the bench-only URLconf that adds the floor (bench/urls.py).

Only bench/stack.py names this module (for gunicorn); nothing in lumiku/ imports it, so the floor route does not
exist in any deployment.
"""

from lumiku.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
