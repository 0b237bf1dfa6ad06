"""Projects: a user's folders of avatars."""

from django.db import transaction
from django.utils import timezone

from avatar_creator import files
from avatar_creator.models import Project


def project_create(*, owner, name: str, description: str = "") -> Project:
    return Project.objects.create(owner=owner, name=name, description=description)


def project_update(*, project: Project, name: str | None = None, description: str | None = None) -> Project:
    fields = []
    if name is not None:
        project.name = name
        fields.append("name")
    if description is not None:
        project.description = description
        fields.append("description")
    if fields:
        project.save(update_fields=[*fields, "updated_at"])
    return project


def project_delete(*, project: Project) -> int:
    """Delete a project with its avatars and previews; their files go once the rows are gone for good.
    Returns how many avatars went with it."""
    avatar_files = [name for avatar in project.avatars.all() for name in (avatar.image.name, avatar.thumbnail.name)]
    preview_files = [name for p in project.previews.all() for name in (p.image.name, p.thumbnail.name)]
    with transaction.atomic():
        project.delete()
        files.delete_after_commit(files.avatar_storage(), avatar_files)
        files.delete_after_commit(files.preview_storage(), preview_files)
    return len(avatar_files) // 2


def project_touch(*, project_id) -> None:
    """A project's "last updated" follows changes to its avatars."""
    Project.objects.filter(pk=project_id).update(updated_at=timezone.now())
