"""Small builders for rows the tests need but are not testing."""

import io
import uuid
from datetime import datetime, timedelta

from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from avatar_creator import services
from avatar_creator.models import Avatar, BodyType, Preview, PreviewStatus, Project, preview_storage

PROMPT = "Professional Indonesian woman with modern hijab, smiling"


def jpeg_bytes(width: int = 64, height: int = 64, color=(120, 90, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "JPEG")
    return buffer.getvalue()


def make_project(owner, name: str = "Team portraits", description: str = "") -> Project:
    return services.project_create(owner=owner, name=name, description=description)


def make_avatar(project: Project, name: str = "Ayu", **fields) -> Avatar:
    avatar = Avatar(project=project, name=name, generation_prompt="A friendly portrait of a person", **fields)
    avatar.image.save(f"{uuid.uuid4()}.jpg", ContentFile(jpeg_bytes(128, 128)), save=False)
    avatar.thumbnail.save(f"{uuid.uuid4()}.jpg", ContentFile(jpeg_bytes(30, 30)), save=False)
    avatar.save()
    return avatar


def make_preview(
    owner,
    project: Project,
    *,
    status: str = PreviewStatus.QUEUED,
    prompt: str = PROMPT,
    gender: str | None = None,
    age_range: str | None = None,
    style: str | None = None,
    ethnicity: str | None = None,
    body_type: str = BodyType.HALF_BODY,
    seed: int = 7,
    width: int = 1024,
    height: int = 1024,
    attempts: int = 0,
    error_code: str = "",
    error_message: str = "",
    retry_after: float | None = None,
    files: bool = False,
    created_at: datetime | None = None,
    started_at: datetime | None = None,
    deadline_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> Preview:
    """A preview row in any state, without the generator; `files` stores a real image and thumbnail for it."""
    now = timezone.now()
    preview = Preview(
        owner=owner, project=project, status=status, prompt=prompt, enhanced_prompt=f"enhanced {prompt}",
        gender=gender, age_range=age_range, style=style, ethnicity=ethnicity, body_type=body_type,
        seed=seed, width=width, height=height, attempts=attempts, error_code=error_code,
        error_message=error_message, retry_after=retry_after, started_at=started_at,
        deadline_at=deadline_at or now + timedelta(minutes=10), expires_at=expires_at or now + timedelta(hours=1),
    )  # fmt: skip
    if files:
        storage = preview_storage()
        preview.image.name = storage.save(f"{uuid.uuid4().hex}.jpg", ContentFile(jpeg_bytes(width, height)))
        preview.thumbnail.name = storage.save(f"{uuid.uuid4().hex}-thumb.jpg", ContentFile(jpeg_bytes(30, 30)))
    preview.save()
    if created_at is not None:  # created_at is auto_now_add: only an update can backdate it
        Preview.objects.filter(pk=preview.pk).update(created_at=created_at)
        preview.created_at = created_at
    return preview


def load_presets() -> None:
    """The curated presets as the data migration ships them (a transactional test's flush removes them)."""
    from importlib import import_module

    from django.apps import apps

    import_module("avatar_creator.migrations.0003_presets").add_presets(apps, None)


def wait_finished(preview: Preview, timeout: float = 30) -> Preview:
    """Previews generate in the background (queue.py): hold until this one is finished (refreshed in place)."""
    from avatar_creator import events

    return events.preview_wait(preview=preview, timeout=timeout)
