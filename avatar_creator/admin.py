from django import forms
from django.contrib import admin
from django.utils.html import format_html
from knox.models import AuthToken
from rest_framework.authtoken.models import TokenProxy

from avatar_creator import services
from avatar_creator.models import (
    ApiToken,
    Avatar,
    CreditAccount,
    CreditLedgerEntry,
    LedgerReason,
    Preset,
    Preview,
    Project,
)
from avatar_creator.prompts import PERSONA_FIELDS, PERSONA_NAMES
from avatar_creator.services.credits import MAX_BALANCE

# The persona fields with a vocabulary make good filters; all of them show on an avatar.
PERSONA_FILTERS = [spec.name for spec in PERSONA_FIELDS if spec.choices is not None]


def _thumbnail_tag(file_field, size: int = 64):
    if not file_field:
        return "-"
    return format_html('<img src="{}" width="{}" height="{}" alt="" loading="lazy">', file_field.url, size, size)


class AvatarInline(admin.TabularInline):
    model = Avatar
    fields = ["thumbnail_preview", "name", *PERSONA_NAMES, "source_type", "created_at"]
    readonly_fields = ["thumbnail_preview", *PERSONA_NAMES, "source_type", "created_at"]
    extra = 0
    show_change_link = True

    @admin.display(description="Thumbnail")
    def thumbnail_preview(self, avatar):
        return _thumbnail_tag(avatar.thumbnail)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "avatar_count", "created_at", "updated_at"]
    search_fields = ["name", "description", "owner__username"]
    list_filter = ["created_at"]
    raw_id_fields = ["owner"]
    inlines = [AvatarInline]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).select_related("owner").annotate(_avatar_count=Count("avatars"))

    @admin.display(description="Avatars", ordering="_avatar_count")
    def avatar_count(self, project):
        return project._avatar_count


@admin.register(Avatar)
class AvatarAdmin(admin.ModelAdmin):
    list_display = ["thumbnail_preview", "name", "project", "owner", "style", "body_type", "source_type", "created_at"]
    list_display_links = ["thumbnail_preview", "name"]
    list_filter = ["style", "body_type", "gender", "age_range", "source_type", "created_at"]
    search_fields = ["name", "generation_prompt", "enhanced_prompt", "project__owner__username", "project__name"]
    readonly_fields = ["image_preview", "preview", "seed", "width", "height", "created_at", "enhanced_prompt"]
    raw_id_fields = ["project"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("project__owner")

    @admin.display(description="Thumbnail")
    def thumbnail_preview(self, avatar):
        return _thumbnail_tag(avatar.thumbnail)

    @admin.display(description="Image")
    def image_preview(self, avatar):
        return _thumbnail_tag(avatar.image, size=300)

    @admin.display(description="Owner", ordering="project__owner__username")
    def owner(self, avatar):
        return avatar.project.owner


@admin.register(Preview)
class PreviewAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "project", "status", "body_type", "attempts", "error_code", "created_at"]
    list_filter = ["status", *PERSONA_FILTERS, "error_code", "created_at"]
    search_fields = ["id", "prompt", "owner__username"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner", "project")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class LedgerEntryInline(admin.TabularInline):
    model = CreditLedgerEntry
    fields = ["created_at", "delta", "balance_after", "reason", "note", "avatar", "created_by"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at", "-id"]

    def has_add_permission(self, request, obj=None):
        return False


class CreditAdjustmentForm(forms.ModelForm):
    """The balance is never edited: an operator adds a ledger entry, and the balance follows it."""

    adjustment = forms.IntegerField(
        required=False,
        min_value=-MAX_BALANCE,
        max_value=MAX_BALANCE,
        help_text="Credits to add (negative to remove; the balance never goes below zero).",
    )
    adjustment_note = forms.CharField(required=False, max_length=200)

    class Meta:
        model = CreditAccount
        fields = ["user"]

    def clean_adjustment(self):
        amount = self.cleaned_data.get("adjustment")
        balance = self.instance.balance if self.instance.pk else 0
        if amount and balance + amount > MAX_BALANCE:
            raise forms.ValidationError(
                "The balance cannot go above %(max)s credits: add at most %(room)s.",
                params={"max": MAX_BALANCE, "room": MAX_BALANCE - balance},
            )
        return amount


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    form = CreditAdjustmentForm
    list_display = ["user", "balance", "updated_at"]
    search_fields = ["user__username", "user__email"]
    readonly_fields = ["balance", "updated_at"]
    raw_id_fields = ["user"]
    inlines = [LedgerEntryInline]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "user"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if not change:
            obj.balance = 0
            obj.save()
        amount = form.cleaned_data.get("adjustment")
        if amount:
            reason = LedgerReason.GRANT if amount > 0 else LedgerReason.ADJUSTMENT
            note = form.cleaned_data.get("adjustment_note") or "Admin adjustment"
            services.credits_add(account=obj, amount=amount, reason=reason, note=note, created_by=request.user)


@admin.register(CreditLedgerEntry)
class CreditLedgerEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "account", "delta", "balance_after", "reason", "note", "created_by"]
    list_filter = ["reason", "created_at"]
    search_fields = ["account__user__username", "note"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# API tokens: the admin never shows one. Knox's and DRF's own admins list the digest and the clear key; this one
# lists whose token it is and when it was used, and can revoke it (delete), nothing more. Tokens of the first version
# are revoked by the user (logout-all, the API tokens page) or by a password change.
for _model in (AuthToken, TokenProxy):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


class _RevokeOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(_RevokeOnlyAdmin):
    list_display = ["name", "user", "created", "last_used_at", "expiry"]
    fields = ["name", "user", "created", "last_used_at", "expiry"]
    readonly_fields = fields
    search_fields = ["user__username", "name"]
    list_filter = ["created"]

    # Through the service, as every revocation.
    def delete_model(self, request, obj):
        services.token_revoke(token=obj)

    def delete_queryset(self, request, queryset):
        services.tokens_revoke(tokens=queryset)


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    """The curated starting points of the "Start from a preset" gallery and GET /api/avatar-creator/presets."""

    list_display = ["thumbnail_preview", "name", "category", "style", "body_type", "position", "is_active"]
    list_display_links = ["thumbnail_preview", "name"]
    list_editable = ["position", "is_active"]
    list_filter = ["category", "is_active", "style", "body_type"]
    search_fields = ["name", "description", "prompt", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    fields = ["name", "slug", "category", "description", "prompt", *PERSONA_NAMES, "thumbnail", "static_thumbnail",
              "position", "is_active"]  # fmt: skip

    @admin.display(description="Thumbnail")
    def thumbnail_preview(self, preset):
        url = preset.thumbnail_url
        return format_html('<img src="{}" width="64" height="64" alt="" loading="lazy">', url) if url else "-"
