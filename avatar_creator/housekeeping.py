"""What the embedded default does on the request path for want of Celery: its background pool started with the first
request (start_background_work), and expired previews and tokens purged (nothing runs beat without a broker).

Once a response has been sent (Django's `request_finished`), at most once per AVATAR_HOUSEKEEPING_INTERVAL seconds
(an atomic `cache.add` picks one request of those that finish together), that request's thread expires the previews
past their time to live, deletes their files and deletes the expired API tokens: the client already has its answer,
and when nothing is due the cost is two queries. With a broker the interval defaults to 0 and Celery beat does this
instead.
"""

import logging

from django.conf import settings
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.dispatch import receiver

from avatar_creator import queue, services

logger = logging.getLogger(__name__)

CACHE_KEY = "lumiku:housekeeping:previews"
START_UID = "avatar_creator.housekeeping.start_background_work"


@receiver(request_started, dispatch_uid=START_UID)
def start_background_work(sender, **kwargs) -> None:
    """The embedded default's background pool starts with the first request the process serves, not only with the
    first preview queued: after a restart, what was left queued runs even if nobody asks for a new preview (a poll
    of it is enough). Once per process; nothing with a broker."""
    request_started.disconnect(dispatch_uid=START_UID)
    queue.start()


@receiver(request_finished, dispatch_uid="avatar_creator.housekeeping.purge_after_request")
def purge_after_request(sender, **kwargs) -> None:
    interval = settings.AVATAR_HOUSEKEEPING_INTERVAL
    if interval <= 0 or not cache.add(CACHE_KEY, True, timeout=interval):
        return
    for purge, done in (
        (services.previews_expire_due, "Expired %d preview(s) and removed their files"),
        (services.tokens_purge_expired, "Deleted %d expired API token(s)"),
    ):
        try:
            count = purge()
        except Exception:
            # Never the request's problem: the next interval tries again.
            logger.exception("Housekeeping failed: %s", purge.__name__)
            continue
        if count:
            logger.info(done, count)
