"""Every read, scoped to the user who asks. Another user's row is simply not found."""

import math
from datetime import UTC, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Q, QuerySet, Sum, Window
from django.db.models.functions import RowNumber, TruncDate
from django.utils import timezone
from rest_framework.authtoken.models import Token as LegacyToken

from avatar_creator.errors import NotFound
from avatar_creator.models import (
    ApiToken,
    Avatar,
    CreditAccount,
    CreditLedgerEntry,
    LedgerReason,
    Preset,
    Preview,
    PreviewStatus,
    Project,
)
from avatar_creator.prepared import PreparedCount, PreparedRead, model_instance

User = get_user_model()


def project_list_for_user(*, user) -> QuerySet[Project]:
    return Project.objects.filter(owner=user).annotate(avatar_count=Count("avatars")).order_by("-created_at")


def project_list_with_covers(*, user) -> list[Project]:
    """The user's projects, each with `covers`: its latest avatars' thumbnails, for the project cards."""
    return projects_with_covers(projects=list(project_list_for_user(user=user)))


def projects_with_covers(*, projects: list[Project], per_project: int = 3) -> list[Project]:
    """Set `covers` on each project: its latest avatars (at most `per_project`), read in one query."""
    latest = (
        Avatar.objects.filter(project__in=projects)
        .annotate(rank=Window(RowNumber(), partition_by=F("project_id"), order_by=F("created_at").desc()))
        .filter(rank__lte=per_project)
        .order_by("project_id", "rank")
    )
    covers = {}
    for avatar in latest:
        covers.setdefault(avatar.project_id, []).append(avatar)
    for project in projects:
        project.covers = covers.get(project.pk, [])
    return projects


def project_get_for_user(*, user, project_id) -> Project:
    try:
        return project_list_for_user(user=user).get(pk=project_id)
    except (Project.DoesNotExist, ValueError, ValidationError):
        raise NotFound("Project not found.") from None


# The avatar list's owner check, its SQL compiled once (prepared.py): the project itself, without the avatar count
# that project_get_for_user's answers carry (a join and a GROUP BY the list does not need).
_PROJECT_OF_OWNER = PreparedRead(
    Project,
    lambda pk, owner: Project.objects.filter(pk=pk, owner_id=owner),
    pk=Project._meta.pk,
    owner=Project._meta.get_field("owner"),
)


def project_owned_by(*, user, project_id) -> Project:
    """The user's project of this id, without its avatar count; NotFound as project_get_for_user."""
    try:
        found = _PROJECT_OF_OWNER.get(pk=project_id, owner=user.pk)
    except (ValueError, ValidationError):
        found = None
    if found is None:
        raise NotFound("Project not found.")
    return found[0]


def avatar_list_for_project(*, project: Project) -> QuerySet[Avatar]:
    return project.avatars.order_by("-created_at")


def avatar_get_for_user(*, user, avatar_id) -> Avatar:
    try:
        return Avatar.objects.select_related("project").get(pk=avatar_id, project__owner=user)
    except (Avatar.DoesNotExist, ValueError, ValidationError):
        raise NotFound("Avatar not found.") from None


def preview_get_for_user(*, user, preview_id) -> Preview:
    return _preview_get(_PREVIEW_OF_OWNER, pk=preview_id, owner=user.pk)


def preview_get_authorized(*, preview_id) -> Preview:
    """For a reader whose right to this preview was checked when it started (the ASGI event stream)."""
    return _preview_get(_PREVIEW, pk=preview_id)


# The status poll's read, the API's hottest: its SQL compiled once (prepared.py). The answer names the preview's
# saved avatar (avatarId): its id comes in the same row, not a second query per poll. One row by its key: without the
# model's ordering, which PostgreSQL would otherwise sort it by.
def _preview_query(**lookup) -> QuerySet[Preview]:
    return Preview.objects.filter(**lookup).annotate(saved_avatar_id=F("avatar__id")).order_by()


_PREVIEW_OF_OWNER = PreparedRead(
    Preview,
    lambda pk, owner: _preview_query(pk=pk, owner_id=owner),
    pk=Preview._meta.pk,
    owner=Preview._meta.get_field("owner"),
)
_PREVIEW = PreparedRead(Preview, lambda pk: _preview_query(pk=pk), pk=Preview._meta.pk)


def _preview_get(read: PreparedRead, **values) -> Preview:
    try:
        found = read.get(**values)
    except (ValueError, ValidationError):
        found = None
    if found is None:
        raise NotFound("Preview not found.")
    return _with_saved_avatar(*found)


def _with_saved_avatar(preview: Preview, columns: dict) -> Preview:
    avatar_id = columns["saved_avatar_id"]
    # Known to have no avatar, or one whose id is known: `preview.avatar` asks the database for nothing more.
    avatar = (
        None
        if avatar_id is None
        else model_instance(Avatar, preview._state.db, ["id", "preview_id"], [avatar_id, preview.pk])
    )
    Preview.avatar.related.set_cached_value(preview, avatar)
    return preview


# A known token and its active user in one query (api/authentication.py): knox's own lookup is two queries (the
# tokens of the key's prefix, every token of the user) and the user's row; this is one round trip, its SQL compiled
# once (prepared.py) and, on PostgreSQL, a prepared statement. Nothing is cached, so a revoked token (its row gone)
# or a deactivated or deleted user (however it was changed) is refused on the next request.
_TOKEN_FIELDS = [field.attname for field in ApiToken._meta.concrete_fields]


# What makes a token good, in one place for both reads below: its digest is known and its user is active (the lookups,
# `user` leading from the queried model to the user: "" or "owner__"), and it has not expired (`_token_of`).
def _token_of_active_user(user: str, digest) -> dict:
    return {f"{user}auth_token_set__digest": digest, f"{user}is_active": True}


def _token_columns(path: str, fields=_TOKEN_FIELDS) -> dict:
    """The token's columns as annotations named token_<field>, `path` leading from the queried model to it."""
    return {f"token_{name}": F(f"{path}{name}") for name in fields}


def _token_of(user, columns: dict, fields=_TOKEN_FIELDS) -> ApiToken | None:
    """The token the annotations describe (its `fields`, the others deferred), its `user` set; None once it has
    expired."""
    values = [columns[f"token_{name}"] for name in fields]
    token = model_instance(ApiToken, user._state.db, fields, values)
    if token.expiry is not None and token.expiry <= timezone.now():
        return None
    token.user = user
    return token


_TOKEN_OF_ACTIVE_USER = PreparedRead(
    User,
    lambda digest: User._default_manager.filter(**_token_of_active_user("", digest)).annotate(
        **_token_columns("auth_token_set__")
    ),
    digest=ApiToken._meta.pk,
)


def token_lookup(*, digest: str) -> ApiToken | None:
    """The unexpired token of this digest, with its active user as `token.user`; None for anything else (unknown,
    expired, a user deactivated or deleted: knox's own lookup then refuses it and deletes an expired token)."""
    found = _TOKEN_OF_ACTIVE_USER.get(digest=digest)
    return None if found is None else _token_of(*found)


# The status poll with a Bearer token: the preview, its owner and the token in one query (api/views.py), when the
# token is its owner's; anything else goes the usual way (authentication, then preview_get_for_user).
#
# It reads only what the poll uses; the rest stays deferred (read on first use, one query each: the query-count guard,
# tests/test_query_counts.py, would show any). Each column costs PostgreSQL about a microsecond to write out and the
# poll as much again to take in, and a third of them went unread (bench/README.md, issue 13):
# - of the token, what authenticates (its expiry) and what token_touch writes (its last use);
# - of its owner, who `request.user` is (no middleware or view on the poll's path reads more);
# - of the preview, everything its answer uses (PreviewOutput, the estimate, `include=base64`, `Prefer: wait`).
_POLL_TOKEN_FIELDS = ["digest", "user_id", "expiry", "last_used_at"]
_POLL_USER_FIELDS = ["id", "username", "is_active"]
_POLL_UNREAD_PREVIEW_FIELDS = [
    "negative_prompt", "model_used", "retry_after", "duration_ms", "deadline_at", "version", "heartbeat_at",
    "webhook_url", "webhook_delivered_at",
]  # fmt: skip
_PREVIEW_WITH_TOKEN = PreparedRead(
    Preview,
    lambda pk, digest: (
        _preview_query(pk=pk, **_token_of_active_user("owner__", digest))
        .defer(*_POLL_UNREAD_PREVIEW_FIELDS)
        .annotate(
            **{f"user_{name}": F(f"owner__{name}") for name in _POLL_USER_FIELDS},
            **_token_columns("owner__auth_token_set__", _POLL_TOKEN_FIELDS),
        )
    ),
    pk=Preview._meta.pk,
    digest=ApiToken._meta.pk,
)


def preview_with_token(*, preview_id, digest: str) -> tuple[Preview, ApiToken] | None:
    """The preview of this id with the unexpired token of this digest, when both belong to one active user; else
    None."""
    try:
        found = _PREVIEW_WITH_TOKEN.get(pk=preview_id, digest=digest)
    except (ValueError, ValidationError):
        return None
    if found is None:
        return None
    preview, columns = found
    names = _POLL_USER_FIELDS
    user = model_instance(User, preview._state.db, names, [columns[f"user_{name}"] for name in names])
    token = _token_of(user, columns, _POLL_TOKEN_FIELDS)
    if token is None:
        return None
    preview.owner = user
    return _with_saved_avatar(preview, columns), token


def preview_batch_for_user(*, user, preview: Preview) -> list[Preview]:
    """The previews asked for together with this one (itself included), in seed order."""
    if preview.batch_id is None:
        return [preview]
    batch = Preview.objects.select_related("avatar").filter(owner=user, batch_id=preview.batch_id)
    return list(batch.order_by("created_at", "seed"))


def preview_list_for_project(*, user, project: Project, status: str | None = None) -> QuerySet[Preview]:
    """The project's previews that have not expired (saved or not), newest first."""
    previews = Preview.objects.select_related("avatar").filter(owner=user, project=project)
    previews = previews.filter(expires_at__gt=timezone.now()).exclude(status=PreviewStatus.EXPIRED)
    if status:
        previews = previews.filter(status=status)
    return previews.order_by("-created_at", "-seed")


def preset_list() -> QuerySet[Preset]:
    return Preset.objects.filter(is_active=True).order_by("position", "name")


def preset_get(*, preset_id) -> Preset:
    try:
        return preset_list().get(pk=preset_id)
    except (Preset.DoesNotExist, ValueError, ValidationError):
        raise NotFound("Preset not found.") from None


def credit_balance_for_user(*, user) -> int:
    return CreditAccount.objects.filter(user=user).values_list("balance", flat=True).first() or 0


# Live results: where a queued preview stands and how long it should take.

# How many recent generations of a model its expected duration is measured on, and for how long that is reused.
_ETA_SAMPLE = 20
_ETA_CACHE_SECONDS = 30


# The previews queued ahead of one created at `created_at` with `seed`: a batch's previews share one creation time and
# are queued in seed order. Read on every status poll and event of a queued preview, so its SQL is compiled once.
_QUEUED_AHEAD = PreparedCount(
    Preview,
    lambda created_at, seed: Preview.objects.filter(
        Q(created_at__lt=created_at) | Q(created_at=created_at, seed__lt=seed), status=PreviewStatus.QUEUED
    ),
    created_at=Preview._meta.get_field("created_at"),
    seed=Preview._meta.get_field("seed"),
)


def preview_queue_position(*, preview: Preview) -> int | None:
    """1 = next to start, among every queued preview (first come, first served); None unless queued."""
    if preview.status != PreviewStatus.QUEUED:
        return None
    return _QUEUED_AHEAD.count(created_at=preview.created_at, seed=preview.seed) + 1


def generation_seconds(*, generator: str) -> float | None:
    """The mean of the recently measured generation times of a generator (its model), or None before any."""
    key = f"lumiku:eta:{generator}"
    seconds = cache.get(key)
    if seconds is None:
        recent = (
            Preview.objects.filter(generator=generator, status__in=[PreviewStatus.SUCCEEDED, PreviewStatus.EXPIRED])
            .exclude(duration_ms=None)
            .order_by("-finished_at")
            .values_list("duration_ms", flat=True)[:_ETA_SAMPLE]
        )
        durations = list(recent)
        seconds = sum(durations) / len(durations) / 1000 if durations else 0.0
        cache.set(key, seconds, _ETA_CACHE_SECONDS)
    return seconds or None


def preview_eta_seconds(*, preview: Preview, queue_position: int | None = None) -> int | None:
    """Estimated seconds until the preview is finished: the wait for its retry and for the previews ahead of it
    (spread over the generation slots), then its own generation; None when finished or nothing was measured yet.
    `queue_position`, when the caller has it (preview_queue_position), saves counting the queue again."""
    if preview.is_finished:
        return None
    each = generation_seconds(generator=preview.generator)
    if each is None:
        return None
    now = timezone.now()
    if preview.status == PreviewStatus.RUNNING:
        elapsed = (now - preview.started_at).total_seconds() if preview.started_at else 0.0
        return max(math.ceil(each - elapsed), 1)
    if queue_position is None:
        queue_position = preview_queue_position(preview=preview)
    ahead = (queue_position or 1) - 1
    slots = max(settings.AVATAR_BACKGROUND_WORKERS, 1)
    retry_wait = max((preview.next_attempt_at - now).total_seconds(), 0.0) if preview.next_attempt_at else 0.0
    return max(math.ceil(retry_wait + each * (1 + ahead // slots)), 1)


def credit_ledger_for_user(*, user) -> QuerySet[CreditLedgerEntry]:
    """The user's ledger, newest first."""
    return CreditLedgerEntry.objects.filter(account__user=user).order_by("-created_at", "-id")


USAGE_DAYS = 30


def usage_for_user(*, user, days: int = USAGE_DAYS) -> dict:
    """The last `days` days (today included, UTC): previews asked for and how they ended, previews saved as
    avatars (not uploads) and credits spent, in total and day by day (oldest first, every day present)."""
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    previews = Preview.objects.filter(owner=user, created_at__gte=since)
    # An expired preview succeeded when it had a generation time (only a success records one).
    succeeded = Q(status=PreviewStatus.SUCCEEDED) | Q(status=PreviewStatus.EXPIRED, duration_ms__isnull=False)
    saved = Avatar.objects.filter(project__owner=user, preview__isnull=False, created_at__gte=since)
    spent = CreditLedgerEntry.objects.filter(
        account__user=user, reason=LedgerReason.AVATAR_SAVE, delta__lt=0, created_at__gte=since
    )
    per_day = {first + timedelta(days=i): {"previews": 0, "saved": 0, "creditsSpent": 0} for i in range(days)}
    for key, rows, value in (
        ("previews", previews, Count("pk")),
        ("saved", saved, Count("pk")),
        ("creditsSpent", spent, -Sum("delta")),
    ):
        by_day = rows.order_by().annotate(day=TruncDate("created_at", tzinfo=UTC)).values("day")
        for row in by_day.annotate(value=value).values_list("day", "value"):
            if row[0] in per_day:
                per_day[row[0]][key] += row[1] or 0
    totals = previews.aggregate(total=Count("pk"), succeeded=Count("pk", filter=succeeded),
                                failed=Count("pk", filter=Q(status=PreviewStatus.FAILED)))  # fmt: skip
    return {
        "previews": totals,
        "avatarsSaved": sum(day["saved"] for day in per_day.values()),
        "creditsSpent": sum(day["creditsSpent"] for day in per_day.values()),
        "days": [{"date": day, **values} for day, values in per_day.items()],
    }


def api_tokens_for_user(*, user) -> QuerySet[ApiToken]:
    """The user's API tokens that still work, newest first."""
    return ApiToken.objects.filter(user=user).exclude(expiry__lte=timezone.now()).order_by("-created")


def legacy_token_for_user(*, user) -> LegacyToken | None:
    """The token of the first version, while the user still has one."""
    return LegacyToken.objects.filter(user=user).first()
