"""Stored files, in one place: names, writing a set of files or none, deleting after commit, reading bytes.

Saved avatars live in the default storage (public media, or S3); previews in the private "previews" storage,
served only through an owner-checking view. File names are random UUIDs, never user input.
"""

import logging
import uuid
from collections.abc import Iterable
from functools import partial

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db import transaction

from avatar_creator.images import content_type_for, extension_for  # noqa: F401 - the one content-type map

logger = logging.getLogger(__name__)


def avatar_storage() -> Storage:
    return storages["default"]


def preview_storage() -> Storage:
    return storages["previews"]


def new_name(*, folder: str = "", extension: str = "jpg", suffix: str = "") -> str:
    """A fresh random file name, e.g. `avatars/3f2a....jpg`."""
    return f"{folder}{uuid.uuid4().hex}{suffix}.{extension}"


def write_all(storage: Storage, files: Iterable[tuple[str, bytes]]) -> list[str]:
    """Write every (name, bytes) pair, or none: on any failure the files written so far are deleted and the
    error is raised. Returns the names the storage chose, in order."""
    written: list[str] = []
    try:
        for name, content in files:
            written.append(storage.save(name, ContentFile(content)))
    except BaseException:
        delete_now(storage, written)
        raise
    return written


def delete_now(storage: Storage, names: Iterable[str]) -> None:
    """Delete files, never failing: a file left behind is garbage, not data loss."""
    for name in names:
        if not name:
            continue
        try:
            storage.delete(name)
        except OSError:
            logger.warning("could not delete stored file %s", name)


def delete_after_commit(storage: Storage, names: Iterable[str]) -> None:
    """Delete files once the current transaction commits (their rows are gone for good by then)."""
    transaction.on_commit(partial(delete_now, storage, [name for name in names if name]))


def read_bytes(storage: Storage, *names: str) -> tuple[bytes, ...]:
    """The content of stored files; OSError when one cannot be read."""
    contents = []
    for name in names:
        with storage.open(name, "rb") as handle:
            contents.append(handle.read())
    return tuple(contents)
