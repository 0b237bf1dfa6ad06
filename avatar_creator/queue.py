"""Where a preview runs: on the Celery queue, or, with no broker configured (the embedded default), in this process.

Kept apart from tasks.py so that the Celery tasks stay the production path only.
"""

import time

from avatar_creator import services, tasks


def enqueue_preview(preview_id) -> None:
    """Hand a committed preview to whoever runs previews. Raises the broker's error when it cannot take the job."""
    # The Celery app's own flag (from CELERY_TASK_ALWAYS_EAGER): what its producer would obey.
    if tasks.run_preview.app.conf.task_always_eager:
        run_preview_in_process(str(preview_id))
    else:
        tasks.run_preview.delay(str(preview_id))


def run_preview_in_process(preview_id: str) -> str:
    """Without a broker nobody schedules a retry: attempts run here, one after another, and retries wait here."""
    outcome = services.preview_attempt(preview_id=preview_id)
    while outcome.retry_in is not None:
        time.sleep(outcome.retry_in)
        outcome = services.preview_attempt(preview_id=preview_id)
    return outcome.status
