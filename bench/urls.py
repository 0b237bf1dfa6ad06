"""The site's URLconf plus the floor: `GET /api/bench/floor/<name>` answers a JSON document held in memory.

The floor is what Django itself costs for an answer of the same size, served by the same server with the same
middleware (under /api/ like the API's routes: asked with the same Bearer token, it goes past the browser middleware
as they do, lumiku/browser.py): no authentication, no query, no serializer. The benchmark writes the document (the
exact body a hot route answered) to BENCH_FLOOR_DIR/<name>.json before it loads the floor; the view reads it once and
keeps it.
"""

import json
import os
from pathlib import Path

from django.http import Http404, JsonResponse
from django.urls import re_path

from lumiku.urls import handler400, handler403, handler404, handler500
from lumiku.urls import urlpatterns as site_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]

_documents: dict[str, dict] = {}


def floor(request, name: str):
    document = _documents.get(name)
    if document is None:
        path = Path(os.environ.get("BENCH_FLOOR_DIR", "")) / f"{name}.json"
        try:
            document = _documents[name] = json.loads(path.read_text())
        except (OSError, ValueError):
            raise Http404("No floor document of that name.") from None
    return JsonResponse(document)


urlpatterns = [re_path(r"^api/bench/floor/(?P<name>[a-z-]{1,40})$", floor), *site_urlpatterns]
