"""Who learns that a preview changed: waiting for a preview to finish.

The waiting API (the default generate-preview and the legacy one-call generate) holds a request until the preview
finishes or its time runs out.
"""

import time

from avatar_creator.models import Preview


def preview_wait(*, preview: Preview, timeout: float) -> Preview:
    """Block until the preview finishes or `timeout` passes; the preview is refreshed in place."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while not preview.is_finished and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
        preview.refresh_from_db()
    return preview
