"""Every read, scoped to the user who asks. Another user's row is simply not found."""

from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet

from avatar_creator.errors import NotFound
from avatar_creator.models import Avatar, CreditAccount, Preview, Project


def project_list_for_user(*, user) -> QuerySet[Project]:
    return Project.objects.filter(owner=user).annotate(avatar_count=Count("avatars")).order_by("-created_at")


def project_get_for_user(*, user, project_id) -> Project:
    try:
        return project_list_for_user(user=user).get(pk=project_id)
    except (Project.DoesNotExist, ValueError, ValidationError):
        raise NotFound("Project not found.") from None


def avatar_list_for_project(*, project: Project) -> QuerySet[Avatar]:
    return project.avatars.order_by("-created_at")


def avatar_get_for_user(*, user, avatar_id) -> Avatar:
    try:
        return Avatar.objects.select_related("project").get(pk=avatar_id, project__owner=user)
    except (Avatar.DoesNotExist, ValueError, ValidationError):
        raise NotFound("Avatar not found.") from None


def preview_get_for_user(*, user, preview_id) -> Preview:
    try:
        # The preview's answer names its avatar (avatarId): join it here rather than a second query per poll.
        return Preview.objects.select_related("avatar").get(pk=preview_id, owner=user)
    except (Preview.DoesNotExist, ValueError, ValidationError):
        raise NotFound("Preview not found.") from None


def credit_balance_for_user(*, user) -> int:
    return CreditAccount.objects.filter(user=user).values_list("balance", flat=True).first() or 0
