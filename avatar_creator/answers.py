"""Whole answers of a hot read kept in the cache, for reads whose every change is known (issue 13).

A project's avatar list is read far more often than it changes (a client polls it, a page shows it), and building it
costs more than everything else on its route (a row per avatar, two absolute links each). Its answer is kept per
project and per origin (the links are absolute), tagged with the project's *version*: a random token that every
change of the project's avatars replaces (post_save / post_delete of an Avatar, post_delete of a Project: the
services, the admin and cascades all go through them).

Why it cannot serve a stale list: a reader reads the version *before* it reads the database and stores what it built
under the version it read; a writer replaces the version when it writes and again once its transaction has committed.
Whatever a reader built from rows older than a commit carries a version older than that commit's, so it is never
served again. A version token is random, so a lost or evicted version key can never be confused with an older
one; entries live ENTRY_SECONDS at most, which also bounds signed storage links (S3) well inside their expiry.
With the cache unreachable, every read builds its answer (and a change that could not replace the version is
logged: the old answer can then be served until it expires).

A bulk `QuerySet.update()` of avatars sends no signal: code that changes avatars that way must call
`avatar_list_changed` itself (nothing in the app does).
"""

import logging
import uuid
from collections.abc import Callable

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from avatar_creator.models import Avatar, Project

logger = logging.getLogger(__name__)

ENTRY_SECONDS = 60


def _keys(project_id) -> tuple[str, str]:
    # The answer is the list's JSON since a ninth look at issue 13 (a list of dicts before): a new key, so that no
    # process of either kind ever reads what the other kind kept.
    return f"lumiku:avatars:{project_id}:version", f"lumiku:avatars:{project_id}:answer-json"


def avatar_list(*, project_id, owner_id: int, origin: str, build: Callable[[], object]) -> object:
    """The avatar list answer of `project_id` with links on `origin`: the kept one when its version is current and it
    was built for this owner, else `build()`, kept for the next reader.

    `build` makes the answer with the route's own checks (it raises for a project that is not the reader's): it runs
    after the version is read, which is what makes the answer it returns safe to keep under that version."""
    try:
        # The key is the canonical id, as writers name it (the URL may spell the same id in capitals).
        version_key, answer_key = _keys(uuid.UUID(str(project_id)))
    except ValueError:
        return build()
    try:
        found = cache.get_many([version_key, answer_key])
    except Exception:
        logger.warning("answer cache unavailable", exc_info=True)
        return build()
    version, entry = found.get(version_key), found.get(answer_key)
    answers = {}
    if version is not None and entry is not None and entry[0] == version and entry[1] == owner_id:
        answers = entry[2]
        if origin in answers:
            return answers[origin]
    if version is None:
        version = uuid.uuid4().hex
        try:
            if not cache.add(version_key, version, ENTRY_SECONDS):
                version = None  # a writer or another reader set one meanwhile: build, keep nothing this time
        except Exception:
            version = None
    answer = build()
    if version is not None:
        try:
            cache.set(answer_key, (version, owner_id, {**answers, origin: answer}), ENTRY_SECONDS)
        except Exception:
            logger.warning("answer cache unavailable", exc_info=True)
    return answer


def avatar_list_changed(project_id) -> None:
    """Every kept answer of the project's avatar list is dead: now, and again once the current transaction commits."""
    _new_version(project_id)
    transaction.on_commit(lambda: _new_version(project_id))


def _new_version(project_id) -> None:
    try:
        cache.set(_keys(project_id)[0], uuid.uuid4().hex, ENTRY_SECONDS)
    except Exception:
        logger.error("answer cache unavailable: project %s's avatar list may be served stale for up to %s s",
                     project_id, ENTRY_SECONDS, exc_info=True)  # fmt: skip


@receiver(post_save, sender=Avatar, dispatch_uid="avatar_creator.answers.avatar_saved")
@receiver(post_delete, sender=Avatar, dispatch_uid="avatar_creator.answers.avatar_deleted")
def _avatar_changed(sender, instance: Avatar, **kwargs) -> None:
    avatar_list_changed(instance.project_id)


@receiver(post_delete, sender=Project, dispatch_uid="avatar_creator.answers.project_deleted")
def _project_deleted(sender, instance: Project, **kwargs) -> None:
    avatar_list_changed(instance.pk)
