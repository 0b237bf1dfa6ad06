"""Avatars: saving a preview (charged), the legacy uploads and one-call generation, renaming and deleting."""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.files import File
from django.db import DatabaseError, transaction

from avatar_creator import events, files, images
from avatar_creator.errors import NotFound, PreviewNotAvailable, ServiceError, StorageFailed
from avatar_creator.models import Avatar, CreditHold, Preview, PreviewStatus, Project, SourceType
from avatar_creator.prompts import NAME_MAX_CHARS, Persona
from avatar_creator.services.credits import credits_charge, credits_hold, credits_release, credits_require
from avatar_creator.services.previews import preview_error, previews_request
from avatar_creator.services.projects import project_touch

logger = logging.getLogger(__name__)


def avatar_rename(*, avatar: Avatar, name: str) -> Avatar:
    avatar.name = name
    avatar.save(update_fields=["name"])
    project_touch(project_id=avatar.project_id)
    return avatar


def avatar_delete(*, avatar: Avatar) -> None:
    with transaction.atomic():
        avatar.delete()
        project_touch(project_id=avatar.project_id)
        files.delete_after_commit(files.avatar_storage(), [avatar.image.name, avatar.thumbnail.name])


def preview_save(
    *, user, project: Project, preview_id, name: str | None = None, variation: tuple[int, int] = (1, 1),
    hold: CreditHold | None = None,
) -> tuple[Avatar, bool]:  # fmt: skip
    """Save a succeeded preview as an avatar and charge for it (out of `hold` when given), in one transaction.

    `variation` (number, count) names one of several saved together "<name> - Variation <number>"; without a name,
    the first words of the description stand for it. Returns (avatar, created). Saving the same preview again
    returns its avatar and charges nothing.
    """
    with transaction.atomic():
        preview = Preview.objects.select_for_update().filter(pk=preview_id, owner=user, project=project).first()
        if preview is None:
            raise NotFound("Preview not found.")
        existing = Avatar.objects.filter(preview=preview).first()
        if existing is not None:
            return existing, False
        status = preview.effective_status
        if status != PreviewStatus.SUCCEEDED:
            raise PreviewNotAvailable(
                f"This preview is {_preview_state_words(status)} and cannot be saved. Generate a new one.",
                details={"status": status},
            )
        try:
            image_bytes, thumb_bytes = files.read_bytes(
                files.preview_storage(), preview.image.name, preview.thumbnail.name
            )
        except OSError as exc:
            logger.error("preview %s files unreadable: %s", preview.pk, exc)
            raise PreviewNotAvailable(
                "This preview's image is no longer available. Generate a new one.", details={"status": preview.status}
            ) from None
        avatar = Avatar(
            project=project,
            name=_variation_name(name or _default_avatar_name(preview), *variation),
            source_type=SourceType.AI_GENERATED,
            generation_prompt=preview.prompt,
            enhanced_prompt=preview.enhanced_prompt,
            **Persona.of(preview).fields(),
            seed=preview.seed,
            width=preview.width,
            height=preview.height,
            preview=preview,
        )
        extension = preview.image.name.rsplit(".", 1)[-1]
        _avatar_store(avatar=avatar, user=user, image=(image_bytes, extension), thumbnail=thumb_bytes, hold=hold)
    return avatar, True


def _preview_state_words(status: str) -> str:
    return {"queued": "still queued", "running": "still generating"}.get(status, status)


def _default_avatar_name(preview: Preview) -> str:
    """The first words of the description, without a dangling comma or full stop."""
    words = preview.prompt.split()
    name = " ".join(words[:6])[:NAME_MAX_CHARS].rstrip(" ,;:.-")
    return name or "Avatar"


def avatar_save_upload(*, user, project: Project, name: str, image_base64: str, persona: Persona) -> Avatar:
    """The legacy save: the client sends the image bytes. They are decoded, checked and re-encoded, never trusted;
    the client's thumbnail is ignored and made anew from the image. `persona.prompt` is the generationPrompt."""
    # Bytes that came with a generation prompt are the client's earlier preview; without one, an upload.
    source_type = SourceType.AI_GENERATED if persona.prompt else SourceType.UPLOADED
    processed = images.process_image(images.decode_base64_image(image_base64), body_type=persona.body_type)
    return _avatar_from_image(user=user, project=project, name=name, persona=persona, processed=processed,
                              source_type=source_type, cost=settings.AVATAR_SAVE_COST)  # fmt: skip


def avatar_upload(*, user, project: Project, name: str, image: File, persona: Persona) -> Avatar:
    """The user's own photo (an uploaded file): its size checked before it is read, then checked as an image (up to
    images.UPLOAD_MAX_SIDE a side), turned upright, stripped of its metadata, downscaled to images.MAX_SIDE and
    re-encoded, with its own thumbnail. Costs AVATAR_UPLOAD_COST."""
    images.refuse_oversized(image.size)
    raw = image.read(images.MAX_IMAGE_BYTES + 1)
    processed = images.process_image(raw, body_type=persona.body_type, max_side=images.UPLOAD_MAX_SIDE)
    return _avatar_from_image(user=user, project=project, name=name, persona=persona, processed=processed,
                              source_type=SourceType.UPLOADED, cost=settings.AVATAR_UPLOAD_COST)  # fmt: skip


def _avatar_from_image(*, user, project: Project, name: str, persona: Persona, processed: images.ProcessedImage,
                       source_type: str, cost: int) -> Avatar:  # fmt: skip
    avatar = Avatar(
        project=project,
        name=name,
        source_type=source_type,
        generation_prompt=persona.prompt or "",
        **persona.fields(),
        width=processed.width,
        height=processed.height,
    )
    with transaction.atomic():
        _avatar_store(avatar=avatar, user=user, image=(processed.image_bytes, processed.extension),
                      thumbnail=processed.thumbnail_bytes, cost=cost)  # fmt: skip
    return avatar


def _avatar_store(
    *, avatar: Avatar, user, image: tuple[bytes, str], thumbnail: bytes, hold: CreditHold | None = None,
    cost: int | None = None,
) -> None:  # fmt: skip
    """Charge (`cost`, by default AVATAR_SAVE_COST), write the files and the row, inside the caller's transaction.
    A failure leaves nothing behind: the transaction undoes the charge and the row, and the files written so far
    are deleted."""
    cost = settings.AVATAR_SAVE_COST if cost is None else cost
    entry = credits_charge(user=user, amount=cost, note=f"Avatar {avatar.name[:60]}", hold=hold)
    image_bytes, extension = image
    storage = files.avatar_storage()
    try:
        avatar.image.name, avatar.thumbnail.name = files.write_all(
            storage,
            [
                (files.new_name(folder="avatars/", extension=extension), image_bytes),
                (files.new_name(folder="avatars/thumbnails/"), thumbnail),
            ],
        )
    except Exception as exc:
        # Any storage backend fault (disk full, S3 down, permissions): nothing was charged or written.
        logger.error("storing avatar files failed: %s", exc)
        raise StorageFailed() from exc
    try:
        avatar.save()
    except DatabaseError:
        files.delete_now(storage, [avatar.image.name, avatar.thumbnail.name])
        raise
    entry.avatar = avatar
    entry.save(update_fields=["avatar"])
    project_touch(project_id=avatar.project_id)


def avatars_generate(
    *, user, project: Project, name: str, count: int, wait: bool, persona: Persona, seed: int | None = None
) -> tuple[list[Preview], list[Avatar]]:
    """The legacy one-call flow: `count` variations, each saved and charged.

    With `wait`, the credits for the whole count are held before anything is generated (InsufficientCredits, with
    nothing created, when they are not there); each saved avatar is charged out of the hold and the rest is
    released. Returns the avatars (at least one, or the first failure is raised), so the answer is what was charged.
    This waits on a thread: under ASGI the waiting route does the same in three steps (avatars_generate_begin,
    its own wait, avatars_generate_finish) and holds no thread meanwhile.
    Without `wait`, the credits are checked and the queued previews returned for the client to poll and save.
    """
    if not wait:
        credits_require(user=user, amount=settings.AVATAR_SAVE_COST * count, message=_generate_refusal(count))
        return previews_request(user=user, project=project, persona=persona, seed=seed, count=count), []
    generation = avatars_generate_begin(user=user, project=project, name=name, count=count, persona=persona, seed=seed)
    try:
        events.previews_wait(previews=generation.previews, timeout=settings.AVATAR_SYNC_WAIT)
    except BaseException:
        avatars_generate_abandon(generation=generation)
        raise
    return generation.previews, avatars_generate_finish(generation=generation)


def _generate_refusal(count: int) -> str:
    """The legacy generate's InsufficientCredits message, for credits_require / credits_hold to fill in."""
    return f"{count} avatar(s) cost {{required}} credits and you have {{available}}."


@dataclass(frozen=True)
class HeldGeneration:
    """A legacy generation under way: its previews queued, the credits for all of them held until it finishes."""

    user: object
    project: Project
    name: str
    previews: list[Preview]
    hold: CreditHold


def avatars_generate_begin(
    *, user, project: Project, name: str, count: int, persona: Persona, seed: int | None = None
) -> HeldGeneration:
    """Hold the credits for `count` avatars (InsufficientCredits, nothing created, when they are not there), then
    queue the previews. The hold lasts the sync wait and a minute more, should nobody finish or abandon it."""
    hold = credits_hold(
        user=user,
        amount=settings.AVATAR_SAVE_COST * count,
        ttl=settings.AVATAR_SYNC_WAIT + 60,
        message=_generate_refusal(count),
    )
    try:
        # One batch (seeds seed, seed+1, ...): admitted together or refused with nothing created.
        previews = previews_request(user=user, project=project, persona=persona, seed=seed, count=count)
    except BaseException:
        credits_release(hold=hold)
        raise
    return HeldGeneration(user=user, project=project, name=name, previews=previews, hold=hold)


def avatars_generate_finish(*, generation: HeldGeneration) -> list[Avatar]:
    """Save each preview that has succeeded by now, charged out of the hold; release what is left of it. Returns the
    avatars (at least one), or raises the first failure (a preview's own error when none succeeded: still running
    is GENERATION_TIMEOUT), with nothing charged."""
    avatars, first_error = [], None
    try:
        previews = _refreshed(generation.previews)  # inside: a read that fails lets the hold go too
        for i, preview in enumerate(previews, start=1):
            if preview.status != PreviewStatus.SUCCEEDED:
                continue
            try:
                avatar, _ = preview_save(user=generation.user, project=generation.project, preview_id=preview.pk,
                                         hold=generation.hold, name=generation.name,
                                         variation=(i, len(previews)))  # fmt: skip
            except ServiceError as exc:  # a save that fails is skipped, not half-reported
                first_error = first_error or exc
                continue
            avatars.append(avatar)
    finally:
        credits_release(hold=generation.hold)
    if not avatars:
        raise first_error or preview_error(preview=previews[0])
    return avatars


def avatars_generate_abandon(*, generation: HeldGeneration) -> None:
    """Nobody will take the answer (the client left): release the credits, save nothing. The previews stay, to be
    saved later like any other."""
    credits_release(hold=generation.hold)


def _refreshed(previews: list[Preview]) -> list[Preview]:
    found = Preview.objects.in_bulk([preview.pk for preview in previews])
    return [found.get(preview.pk, preview) for preview in previews]


def _variation_name(name: str, number: int, count: int) -> str:
    """ "Name - Variation i" for one of several avatars saved together (the name kept whole to the suffix's room);
    the name itself for one."""
    if count == 1:
        return name
    suffix = f" - Variation {number}"
    return name[: NAME_MAX_CHARS - len(suffix)].rstrip() + suffix
