"""Where a preview runs (and a webhook is delivered): on the Celery queue, or, with no broker configured (the
embedded default), on a bounded pool of background threads in this process.

The pool lets a `Prefer: respond-async` request answer 202 before the image exists, as with a broker. A retry waits
on a timer, not in a pool thread. The pool starts with the process's first request (housekeeping.py) or first job;
its sweep then picks up what a restart left behind (queued previews, each when due; webhooks not yet delivered) and,
every AVATAR_REAP_INTERVAL seconds, re-queues the previews whose thread vanished (services.previews_reap_stuck), as
Celery beat does with a broker.

Kept apart from tasks.py so that the Celery tasks stay the production path only.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection

from avatar_creator import services, tasks

logger = logging.getLogger(__name__)

_pool: ThreadPoolExecutor | None = None
_sweeper: threading.Thread | None = None
_pool_lock = threading.Lock()
_stopped = threading.Event()


def _in_process() -> bool:
    # The Celery app's own flag (from CELERY_TASK_ALWAYS_EAGER): what its producer would obey.
    return bool(tasks.run_preview.app.conf.task_always_eager)


def enqueue_preview(preview_id) -> None:
    """Hand a committed preview to whoever runs previews. Raises the broker's error when it cannot take the job."""
    if _in_process():
        _background(_run_preview, str(preview_id))
    else:
        tasks.run_preview.delay(str(preview_id))


def enqueue_webhook(preview_id) -> None:
    """Deliver a finished preview's webhook (retried with backoff for a day)."""
    if _in_process():
        _background(_deliver_webhook, str(preview_id), 0)
    else:
        try:
            tasks.deliver_webhook.delay(str(preview_id))
        except Exception as exc:  # the preview is finished either way; a lost webhook is logged, never an error
            logger.error("could not queue the webhook of preview %s: %s", preview_id, exc)


def start() -> None:
    """Start the embedded default's pool and its sweep now, rather than with the first job (nothing with a broker)."""
    if _in_process():
        _get_pool()


def _background(function, *args) -> None:
    pool = _get_pool()
    if pool is None:
        logger.info("not running %s%r: the background pool has stopped", function.__name__, args)
        return
    pool.submit(_job, function, *args)


def _later(seconds: float, function, *args) -> None:
    timer = threading.Timer(seconds, _background, args=(function, *args))
    timer.daemon = True
    timer.start()


def _job(function, *args) -> None:
    """One job on a pool thread, with its own database connection, closed afterwards as a request's would be."""
    close_old_connections()
    try:
        function(*args)
    except Exception:
        logger.exception("background job %s%r failed", function.__name__, args)
    finally:
        connection.close()


def _run_preview(preview_id: str) -> None:
    outcome = services.preview_attempt(preview_id=preview_id)
    if outcome.retry_in is not None:
        _later(outcome.retry_in, _run_preview, preview_id)


def _deliver_webhook(preview_id: str, attempt: int) -> None:
    from avatar_creator import webhooks

    retry_in = webhooks.webhook_deliver(preview_id=preview_id, attempt=attempt)
    if retry_in is not None:
        _later(retry_in, _deliver_webhook, preview_id, attempt + 1)


def _get_pool() -> ThreadPoolExecutor | None:
    """The pool, started with its sweep on first use; None once stopped."""
    global _pool, _sweeper
    with _pool_lock:
        if _pool is None and not _stopped.is_set():
            _pool = ThreadPoolExecutor(
                max_workers=max(settings.AVATAR_BACKGROUND_WORKERS, 1), thread_name_prefix="preview"
            )
            _sweeper = threading.Thread(target=_sweep, name="preview-sweeper", daemon=True)
            _sweeper.start()
        return _pool


def stop(timeout: float = 10) -> None:
    """Stop the pool and its sweep for good: waits for the jobs running (queued ones are dropped) and the sweep's
    current pass. For the end of a test session, whose database goes away; a process that simply ends needs nothing."""
    global _pool, _sweeper
    with _pool_lock:
        _stopped.set()
        pool, sweeper, _pool, _sweeper = _pool, _sweeper, None, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
    if sweeper is not None:
        sweeper.join(timeout)


def _sweep() -> None:
    """Pick up what a restart left queued, then re-queue previews whose thread died, every little while, until
    stopped."""
    first = True
    while not _stopped.is_set():
        close_old_connections()
        try:
            if first:
                for preview_id, due_in in services.previews_left_queued():
                    _later(due_in, _run_preview, str(preview_id))
                for preview_id in services.previews_left_undelivered():
                    _background(_deliver_webhook, str(preview_id), 0)
            services.previews_reap_stuck()
        except Exception:
            logger.exception("the background sweep failed")
        finally:
            connection.close()
        first = False
        _stopped.wait(settings.AVATAR_REAP_INTERVAL)
