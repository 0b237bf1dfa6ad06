import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from knox.models import AbstractAuthToken

from avatar_creator.prompts import (  # noqa: F401 - the vocabulary, importable from here as before
    ETHNICITY_MAX_CHARS,
    NAME_MAX_CHARS,
    AgeRange,
    BodyType,
    Gender,
    Style,
)


class SourceType(models.TextChoices):
    AI_GENERATED = "ai_generated", "AI generated"
    UPLOADED = "uploaded", "Uploaded"


class PreviewStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    EXPIRED = "expired", "Expired"


ACTIVE_PREVIEW_STATUSES = (PreviewStatus.QUEUED, PreviewStatus.RUNNING)
FINISHED_PREVIEW_STATUSES = (
    PreviewStatus.SUCCEEDED,
    PreviewStatus.FAILED,
    PreviewStatus.CANCELED,
    PreviewStatus.EXPIRED,
)


PROJECT_DESCRIPTION_MAX_CHARS = 500


class Project(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=NAME_MAX_CHARS)
    description = models.TextField(max_length=PROJECT_DESCRIPTION_MAX_CHARS, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self):
        return self.name


class PersonaFields(models.Model):
    """The columns of a prompts.Persona (shared by Avatar and Preview); `Persona.of(row)` reads them back."""

    gender = models.CharField(max_length=10, choices=Gender.choices, null=True, blank=True)
    age_range = models.CharField(max_length=10, choices=AgeRange.choices, null=True, blank=True)
    style = models.CharField(max_length=20, choices=Style.choices, null=True, blank=True)
    ethnicity = models.CharField(max_length=ETHNICITY_MAX_CHARS, null=True, blank=True)
    body_type = models.CharField(max_length=10, choices=BodyType.choices, default=BodyType.HALF_BODY)

    class Meta:
        abstract = True


class Avatar(PersonaFields):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="avatars")
    name = models.CharField(max_length=NAME_MAX_CHARS)
    image = models.ImageField(upload_to="avatars/", max_length=200)
    thumbnail = models.ImageField(upload_to="avatars/thumbnails/", max_length=200)
    source_type = models.CharField(max_length=20, choices=SourceType.choices, default=SourceType.AI_GENERATED)
    generation_prompt = models.TextField(blank=True, default="")
    enhanced_prompt = models.TextField(null=True, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # One avatar per saved preview: saving the same preview twice returns this row.
    preview = models.OneToOneField("Preview", on_delete=models.SET_NULL, null=True, blank=True, related_name="avatar")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self):
        return self.name

    @property
    def prompt(self) -> str:
        """The description it was made from, under the name `Persona.of(avatar)` reads."""
        return self.generation_prompt


class PresetCategory(models.TextChoices):
    PROFESSIONAL = "professional", "Professional"
    CASUAL = "casual", "Casual"
    TRADITIONAL = "traditional", "Traditional"
    SPORTY = "sporty", "Sporty"
    CREATIVE = "creative", "Creative"


class Preset(PersonaFields):
    """A curated starting point: a description and persona fields a user can start a preview from."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=NAME_MAX_CHARS)
    category = models.CharField(max_length=20, choices=PresetCategory.choices)
    description = models.CharField(max_length=200, blank=True, default="")
    prompt = models.TextField()
    # A thumbnail uploaded in the admin wins over the one shipped with the app (a path under static/).
    thumbnail = models.ImageField(upload_to="presets/", max_length=200, blank=True, default="")
    static_thumbnail = models.CharField(max_length=200, blank=True, default="")
    position = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self):
        return self.name

    @property
    def thumbnail_url(self) -> str | None:
        from django.templatetags.static import static

        if self.thumbnail:
            return self.thumbnail.url
        return static(self.static_thumbnail) if self.static_thumbnail else None


def preview_storage():
    """Previews live in their own private storage (settings.STORAGES["previews"])."""
    from avatar_creator import files

    return files.preview_storage()


class Preview(PersonaFields):
    """One generation job: the free, private, expiring image a user looks at before saving."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="previews")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="previews")
    status = models.CharField(max_length=10, choices=PreviewStatus.choices, default=PreviewStatus.QUEUED)
    prompt = models.TextField()
    enhanced_prompt = models.TextField(blank=True, default="")
    negative_prompt = models.TextField(blank=True, default="")
    seed = models.BigIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    generator = models.CharField(max_length=40, blank=True, default="")
    model_used = models.CharField(max_length=200, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=40, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # Seconds the upstream asked us to wait (model loading, rate limit), reported to clients with the error.
    retry_after = models.FloatField(null=True, blank=True)
    image = models.FileField(max_length=200, blank=True, default="", storage=preview_storage)
    thumbnail = models.FileField(max_length=200, blank=True, default="", storage=preview_storage)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # The previews asked for in one request (count > 1) share it; a single preview has its own.
    batch_id = models.UUIDField(null=True, blank=True, db_index=True)
    # Live results (events.py): every saved change bumps `version` (the event id); a scheduled retry says when it
    # starts; a running attempt beats `heartbeat_at` so the reaper can tell a dead worker from a slow one.
    version = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    webhook_url = models.URLField(max_length=2000, blank=True, default="")
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "created_at"]),
            models.Index(fields=["status", "deadline_at"]),
            models.Index(fields=["expires_at"]),
        ]

    def __str__(self):
        return f"Preview {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_PREVIEW_STATUSES

    @property
    def effective_status(self) -> str:
        """The status a reader is told: `expired` from `expires_at` on, also before the purge (every 5 minutes:
        services.previews_expire_due) has marked it so and removed its files. Saving it is refused from then on too."""
        if self.status != PreviewStatus.EXPIRED and self.expires_at <= timezone.now():
            return PreviewStatus.EXPIRED
        return self.status


class WebhookSecret(models.Model):
    """The key a user's webhooks are signed with (Standard Webhooks: `whsec_` + base64 of the key)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_secret")
    secret = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"webhook secret of {self.user}"


class CreditAccount(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credit_account")
    balance = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(balance__gte=0), name="credit_balance_not_negative")]

    def __str__(self):
        return f"{self.user} ({self.balance} credits)"


class LedgerReason(models.TextChoices):
    SIGNUP = "signup", "Signup bonus"
    AVATAR_SAVE = "avatar_save", "Avatar saved"
    GRANT = "grant", "Granted by an operator"
    ADJUSTMENT = "adjustment", "Adjustment"
    REFUND = "refund", "Refund"


class CreditLedgerEntry(models.Model):
    """Every change of a balance, written in the transaction that makes it."""

    account = models.ForeignKey(CreditAccount, on_delete=models.CASCADE, related_name="entries")
    delta = models.IntegerField()
    balance_after = models.IntegerField()
    reason = models.CharField(max_length=20, choices=LedgerReason.choices)
    note = models.CharField(max_length=200, blank=True, default="")
    avatar = models.ForeignKey(Avatar, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "credit ledger entries"
        constraints = [models.CheckConstraint(condition=Q(balance_after__gte=0), name="ledger_balance_not_negative")]

    def __str__(self):
        return f"{self.delta:+d} ({self.reason})"


class CreditHold(models.Model):
    """Credits set aside for work that will be charged when it is done (the legacy generate's whole count).

    The balance is untouched; what others may spend is the balance minus the active holds. A hold that outlives
    `expires_at` (its process died) holds nothing, so credits are never stuck.
    """

    account = models.ForeignKey(CreditAccount, on_delete=models.CASCADE, related_name="holds")
    amount = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    def __str__(self):
        return f"{self.amount} held for {self.account}"


class ApiToken(AbstractAuthToken):
    """An API token (django-rest-knox): only its hash is stored; one per device, each with a name and a last use."""

    # Knox's field, indexed with the digest instead of alone: the status poll finds its token through its owner
    # (selectors.py `_PREVIEW_WITH_TOKEN`), and PostgreSQL takes that path even when the owner has many tokens. With
    # the user alone in the index it read every one of them and dropped all but one; with both, it reads one. The
    # index still serves every lookup by user (it leads), as the plain foreign key index did.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, related_name="auth_token_set", on_delete=models.CASCADE, db_index=False
    )
    name = models.CharField(max_length=100, blank=True, default="")
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["user", "digest"], name="apitoken_user_digest")]

    def __str__(self):
        return f"{self.name or 'API token'} of {self.user}"
