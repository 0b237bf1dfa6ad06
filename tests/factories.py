"""Small builders for rows the tests need but are not testing."""

import io
import uuid

from django.core.files.base import ContentFile
from PIL import Image

from avatar_creator import services
from avatar_creator.models import Avatar, Project


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
