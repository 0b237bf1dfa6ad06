"""Input validation and output shape of the API. camelCase on the wire, exactly as SPEC.md."""

import base64

from django.conf import settings
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from rest_framework import serializers

from avatar_creator import files, selectors
from avatar_creator.models import (
    PROJECT_DESCRIPTION_MAX_CHARS,
    Avatar,
    CreditLedgerEntry,
    Preset,
    Preview,
    PreviewStatus,
    Project,
)
from avatar_creator.prompts import (
    NAME_MAX_CHARS,
    PERSONA_FIELDS,
    PROMPT_MAX_CHARS,
    PROMPT_MIN_CHARS,
    Persona,
    PersonaField,
)
from avatar_creator.services.accounts import EMAIL_MAX_CHARS

MAX_SEED = 2**32 - 1
OFFSET_MAX = 2**31 - 1
MAX_PREVIEW_COUNT = 4


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers, lists and objects instead of quietly turning them into text."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def absolute_url(request, url: str | None) -> str | None:
    """The link as the client reaches it: from the request's address, or (outside a request: webhook payloads) from
    AVATAR_PUBLIC_URL when it is set."""
    if not url or url.startswith(("http://", "https://")):
        return url or None
    if request is None:
        return f"{settings.AVATAR_PUBLIC_URL}{url}" if settings.AVATAR_PUBLIC_URL and url.startswith("/") else url
    return request.build_absolute_uri(url)


_PATH_STAND_IN = "5e171e11-0000-4000-8000-00000000c0de"
_PREVIEW_FILES = ("image", "thumbnail")
_preview_paths: dict[str, tuple[tuple[str, str], ...]] = {}


def _preview_links(request, pk) -> tuple[str | None, ...]:
    """The links of a preview's image and thumbnail, as absolute_url writes them: reverse("api:preview-image") and
    "-thumbnail" for the pk, each route reversed once per script prefix, and the request's origin worked out once
    for both (the status poll names them on every call)."""
    prefix = get_script_prefix()
    parts = _preview_paths.get(prefix)
    if parts is None:
        reversed_ = (reverse(f"api:preview-{kind}", kwargs={"pk": _PATH_STAND_IN}) for kind in _PREVIEW_FILES)
        parts = _preview_paths[prefix] = tuple((path.partition(_PATH_STAND_IN)[::2]) for path in reversed_)
    paths = [f"{before}{pk}{after}" for before, after in parts]
    if request is None:
        return tuple(absolute_url(None, path) for path in paths)
    # A reversed path is already a URI (reverse() quotes it), so the origin and the path join as
    # build_absolute_uri(path) would join them.
    origin = request.build_absolute_uri("/")[:-1]
    return tuple(origin + path for path in paths)


# Persona fields


def persona_input_field(spec: PersonaField) -> serializers.Field:
    """The input field of one persona field, under its camelCase wire name."""
    if spec.choices is not None:
        if spec.default is not None:
            return serializers.ChoiceField(choices=spec.choices.choices, required=False, default=spec.default)
        return serializers.ChoiceField(choices=spec.choices.choices, required=False, allow_null=True)
    return StrictCharField(max_length=spec.max_length, required=False, allow_blank=True, allow_null=True)


def persona_output_field(spec: PersonaField) -> serializers.Field:
    # DRF refuses a `source` equal to the field's own name.
    kwargs = {"allow_null": spec.default is None, "read_only": True}
    if spec.wire != spec.name:
        kwargs["source"] = spec.name
    if spec.choices is not None:
        return serializers.ChoiceField(choices=spec.choices.choices, **kwargs)
    return serializers.CharField(**kwargs)


def with_persona_fields(field_for):
    """Class decorator: declare every persona field (prompts.PERSONA_FIELDS) under its wire name, so a new persona
    field reaches the API's inputs, outputs and schema without a change here."""

    def decorate(serializer_class):
        for spec in PERSONA_FIELDS:
            serializer_class._declared_fields[spec.wire] = field_for(spec)
        return serializer_class

    return decorate


PERSONA_WIRE_NAMES = [spec.wire for spec in PERSONA_FIELDS]


class PersonaReader:
    def persona(self, *, prompt_field: str = "prompt") -> Persona:
        """The validated persona fields as a Persona (the prompt from `prompt_field`)."""
        data = self.validated_data
        values = {spec.name: data.get(spec.wire) for spec in PERSONA_FIELDS}
        return Persona(prompt=data.get(prompt_field) or "", **values)


# Accounts


class RegisterInput(serializers.Serializer):
    username = StrictCharField(max_length=150, min_length=3)
    password = StrictCharField(max_length=128, trim_whitespace=False)
    email = serializers.EmailField(max_length=EMAIL_MAX_CHARS, required=False, allow_blank=True, default="")

    def validate_username(self, value):
        from django.contrib.auth.validators import UnicodeUsernameValidator

        UnicodeUsernameValidator()(value)
        return value


class TokenInput(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=128, trim_whitespace=False)
    # Which device or script the token is for (shown on the UI's API tokens page).
    name = StrictCharField(max_length=100, required=False, allow_blank=True, default="")


class CreditEntryOutput(serializers.ModelSerializer):
    balanceAfter = serializers.IntegerField(source="balance_after")
    avatarId = serializers.UUIDField(source="avatar_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = CreditLedgerEntry
        fields = ["id", "delta", "balanceAfter", "reason", "note", "avatarId", "createdAt"]


class PreviewCountsOutput(serializers.Serializer):
    total = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()


class UsageDayOutput(serializers.Serializer):
    date = serializers.DateField()
    previews = serializers.IntegerField()
    saved = serializers.IntegerField()
    creditsSpent = serializers.IntegerField()


class UsageOutput(serializers.Serializer):
    previews = PreviewCountsOutput()
    avatarsSaved = serializers.IntegerField()
    creditsSpent = serializers.IntegerField()
    days = UsageDayOutput(many=True)


class UserOutput(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    credits = serializers.IntegerField()


def user_data(user, *, balance: int) -> dict:
    return {"username": user.username, "email": user.email, "credits": balance}


# Projects


class ProjectInput(serializers.Serializer):
    name = StrictCharField(min_length=1, max_length=NAME_MAX_CHARS)
    description = StrictCharField(
        max_length=PROJECT_DESCRIPTION_MAX_CHARS, required=False, allow_blank=True, allow_null=True
    )

    def validate_description(self, value):
        return value or ""


class ProjectOutput(serializers.ModelSerializer):
    avatarCount = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = Project
        fields = ["id", "name", "description", "avatarCount", "createdAt", "updatedAt"]

    def get_avatarCount(self, project) -> int:
        count = getattr(project, "avatar_count", None)
        return project.avatars.count() if count is None else count


# Avatars


class AvatarRenameInput(serializers.Serializer):
    name = StrictCharField(min_length=1, max_length=NAME_MAX_CHARS)


_DATETIME = serializers.DateTimeField()


def _moments():
    """DRF's DateTimeField.to_representation for the datetimes of one answer, the current time zone looked up once
    (DRF looks it up for every value, through asgiref's Local: most of its cost). Aware values only; anything else
    is DRF's own."""
    zone = timezone.get_current_timezone()

    def moment(value) -> str | None:
        if value is None or value.tzinfo is None:
            return _DATETIME.to_representation(value)
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return moment


def _text(value) -> str | None:
    return None if value is None else str(value)


def _number(value) -> int | None:
    return None if value is None else int(value)


@with_persona_fields(persona_output_field)
class AvatarOutput(serializers.ModelSerializer):
    projectId = serializers.UUIDField(source="project_id")
    imageUrl = serializers.SerializerMethodField()
    thumbnailUrl = serializers.SerializerMethodField()
    sourceType = serializers.CharField(source="source_type")
    generationPrompt = serializers.CharField(source="generation_prompt", allow_null=True)
    enhancedPrompt = serializers.CharField(source="enhanced_prompt", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Avatar
        fields = [
            "id", "projectId", "name", "imageUrl", "thumbnailUrl", "sourceType", "generationPrompt",
            "enhancedPrompt", *PERSONA_WIRE_NAMES, "seed", "width", "height", "createdAt",
        ]  # fmt: skip

    def get_imageUrl(self, avatar) -> str | None:
        return absolute_url(self.context.get("request"), avatar.image.url if avatar.image else None)

    def get_thumbnailUrl(self, avatar) -> str | None:
        return absolute_url(self.context.get("request"), avatar.thumbnail.url if avatar.thumbnail else None)

    def to_representation(self, avatar):
        # Written out for the same reason as PreviewOutput's (a project's avatar list is the other hot read).
        text, number = _text, _number
        return {
            "id": str(avatar.id), "projectId": str(avatar.project_id), "name": text(avatar.name),
            "imageUrl": self.get_imageUrl(avatar), "thumbnailUrl": self.get_thumbnailUrl(avatar),
            "sourceType": text(avatar.source_type), "generationPrompt": text(avatar.generation_prompt),
            "enhancedPrompt": text(avatar.enhanced_prompt),
            **{spec.wire: text(getattr(avatar, spec.name)) for spec in PERSONA_FIELDS},
            "seed": number(avatar.seed), "width": number(avatar.width), "height": number(avatar.height),
            "createdAt": _DATETIME.to_representation(avatar.created_at),
        }  # fmt: skip


class ProjectDetailOutput(ProjectOutput):
    avatars = serializers.SerializerMethodField()

    class Meta(ProjectOutput.Meta):
        fields = [*ProjectOutput.Meta.fields, "avatars"]

    def get_avatars(self, project) -> list[dict]:
        return AvatarOutput(project.avatars.order_by("-created_at"), many=True, context=self.context).data


# Generation


@with_persona_fields(persona_input_field)
class PersonaInput(PersonaReader, serializers.Serializer):
    prompt = StrictCharField(min_length=PROMPT_MIN_CHARS, max_length=PROMPT_MAX_CHARS)
    seed = StrictIntegerField(min_value=0, max_value=MAX_SEED, required=False, allow_null=True)


class GeneratePreviewInput(PersonaInput):
    """generate-preview: the persona, `count` variations, and an optional starting point (a preset or one of the
    user's avatars) whose fields are the defaults; the fields given override them."""

    prompt = StrictCharField(min_length=PROMPT_MIN_CHARS, max_length=PROMPT_MAX_CHARS, required=False)
    count = StrictIntegerField(min_value=1, max_value=MAX_PREVIEW_COUNT, required=False, default=1)
    presetId = serializers.UUIDField(required=False, allow_null=True)
    fromAvatarId = serializers.UUIDField(required=False, allow_null=True)
    webhook = StrictCharField(max_length=2000, required=False, allow_blank=True, allow_null=True)

    def validate_webhook(self, value):
        from avatar_creator import webhooks
        from avatar_creator.errors import ValidationFailed

        if not value:
            return ""
        try:
            return webhooks.webhook_url_check(value)
        except ValidationFailed as exc:
            raise serializers.ValidationError(exc.details["webhook"]) from None

    def validate(self, attrs):
        if attrs.get("presetId") and attrs.get("fromAvatarId"):
            raise serializers.ValidationError({"fromAvatarId": ["Give presetId or fromAvatarId, not both."]})
        base = self._starting_point(attrs)
        given = {spec.name: attrs.get(spec.wire) for spec in PERSONA_FIELDS if spec.wire in self.initial_data}
        prompt = attrs.get("prompt") or (base.prompt if base else "")
        if base is not None:
            self._persona = base.replace(prompt=prompt, **given)
        else:
            self._persona = Persona(prompt=prompt, **given)
        if len(self._persona.prompt.strip()) < PROMPT_MIN_CHARS:
            # Only a starting point without a usable description (an uploaded photo) gets here: ask for one.
            raise serializers.ValidationError({"prompt": ["This field is required."]})
        if len(self._persona.prompt) > PROMPT_MAX_CHARS:
            # A legacy save keeps a description of up to 2000 characters; a generation takes 500 at most.
            message = f"The avatar's description is longer than {PROMPT_MAX_CHARS} characters: send a shorter prompt."
            raise serializers.ValidationError({"prompt": [message]})
        return attrs

    def _starting_point(self, attrs) -> Persona | None:
        from avatar_creator import selectors
        from avatar_creator.errors import NotFound

        if attrs.get("presetId"):
            try:
                return Persona.of(selectors.preset_get(preset_id=attrs["presetId"]))
            except NotFound:
                raise serializers.ValidationError({"presetId": ["No preset with this id."]}) from None
        if attrs.get("fromAvatarId"):
            try:
                avatar = selectors.avatar_get_for_user(user=self.context["user"], avatar_id=attrs["fromAvatarId"])
            except NotFound:
                # Another user's avatar reads exactly like one that does not exist.
                raise serializers.ValidationError({"fromAvatarId": ["No avatar of yours with this id."]}) from None
            return Persona.of(avatar)
        return None

    def persona(self, *, prompt_field: str = "prompt") -> Persona:
        return self._persona


class LegacyGenerateInput(PersonaInput):
    name = StrictCharField(min_length=1, max_length=NAME_MAX_CHARS)
    count = StrictIntegerField(min_value=1, max_value=5, required=False, default=1)


class SaveByPreviewInput(serializers.Serializer):
    previewId = serializers.UUIDField()
    name = StrictCharField(min_length=1, max_length=NAME_MAX_CHARS, required=False)


@with_persona_fields(persona_input_field)
class SaveLegacyInput(PersonaReader, serializers.Serializer):
    name = StrictCharField(min_length=1, max_length=NAME_MAX_CHARS)
    imageBase64 = StrictCharField(trim_whitespace=False)
    thumbnailBase64 = StrictCharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)
    generationPrompt = StrictCharField(max_length=2000, required=False, allow_blank=True, allow_null=True)


@with_persona_fields(persona_output_field)
class PreviewOutput(serializers.ModelSerializer):
    """A preview's state. Image URLs only once it succeeded; base64 only when asked for."""

    # `expired` from expiresAt on, also before the purge has marked it so (Preview.effective_status).
    status = serializers.ChoiceField(source="effective_status", choices=PreviewStatus.choices, read_only=True)
    enhancedPrompt = serializers.CharField(source="enhanced_prompt")
    projectId = serializers.UUIDField(source="project_id")
    imageUrl = serializers.SerializerMethodField()
    thumbnailUrl = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    avatarId = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    expiresAt = serializers.DateTimeField(source="expires_at")
    batchId = serializers.UUIDField(source="batch_id", allow_null=True)
    queuePosition = serializers.SerializerMethodField()
    etaSeconds = serializers.SerializerMethodField()
    nextAttemptAt = serializers.DateTimeField(source="next_attempt_at", allow_null=True)

    class Meta:
        model = Preview
        fields = [
            "id", "projectId", "status", "prompt", "enhancedPrompt", *PERSONA_WIRE_NAMES, "seed", "width", "height",
            "attempts", "batchId", "queuePosition", "etaSeconds", "nextAttemptAt", "imageUrl", "thumbnailUrl",
            "error", "avatarId", "createdAt", "startedAt", "finishedAt", "expiresAt",
        ]  # fmt: skip

    def get_queuePosition(self, preview) -> int | None:
        return selectors.preview_queue_position(preview=preview)

    def get_etaSeconds(self, preview) -> int | None:
        return selectors.preview_eta_seconds(preview=preview)

    def get_imageUrl(self, preview) -> str | None:
        return _preview_files(self.context.get("request"), preview, preview.effective_status)[0]

    def get_thumbnailUrl(self, preview) -> str | None:
        return _preview_files(self.context.get("request"), preview, preview.effective_status)[1]

    def get_error(self, preview) -> dict | None:
        return _preview_error(preview, preview.effective_status)

    def get_avatarId(self, preview) -> str | None:
        return _preview_avatar_id(preview)

    def to_representation(self, preview):
        return preview_representation(
            preview, request=self.context.get("request"), include_base64=self.context.get("include_base64", False)
        )


def preview_representation(preview: Preview, *, request=None, include_base64: bool = False) -> dict:
    """PreviewOutput's answer for one preview, written out instead of DRF's walk over its fields (which stay the
    schema): this is the status poll, the API's hottest read, and a ModelSerializer rebuilds its fields from the model
    on every instance (bench/README.md). The API's answers, the event stream and webhooks call it without a serializer
    at all. tests/test_query_counts.py checks it against that walk in every state."""
    text, number, moment = _text, _number, _moments()
    status = preview.effective_status
    position = selectors.preview_queue_position(preview=preview)  # counted once, for the position and the estimate
    eta = selectors.preview_eta_seconds(preview=preview, queue_position=position)
    image_url, thumbnail_url = _preview_files(request, preview, status)
    data = {
        "id": str(preview.id), "projectId": str(preview.project_id), "status": text(status),
        "prompt": text(preview.prompt), "enhancedPrompt": text(preview.enhanced_prompt),
        **{spec.wire: text(getattr(preview, spec.name)) for spec in PERSONA_FIELDS},
        "seed": number(preview.seed), "width": number(preview.width), "height": number(preview.height),
        "attempts": number(preview.attempts), "batchId": text(preview.batch_id),
        "queuePosition": position, "etaSeconds": eta,
        "nextAttemptAt": moment(preview.next_attempt_at), "imageUrl": image_url, "thumbnailUrl": thumbnail_url,
        "error": _preview_error(preview, status), "avatarId": _preview_avatar_id(preview),
        "createdAt": moment(preview.created_at), "startedAt": moment(preview.started_at),
        "finishedAt": moment(preview.finished_at), "expiresAt": moment(preview.expires_at),
    }  # fmt: skip
    if include_base64 and status == "succeeded" and preview.image:
        try:
            contents = files.read_bytes(files.preview_storage(), preview.image.name, preview.thumbnail.name)
            data["imageBase64"], data["thumbnailBase64"] = (base64.b64encode(c).decode("ascii") for c in contents)
        except OSError:
            # The files went missing (expired under us, storage fault): say so rather than fail the request.
            data["imageBase64"] = data["thumbnailBase64"] = None
    return data


def _preview_files(request, preview, status: str) -> tuple[str | None, str | None]:
    """The links of the image and the thumbnail: only once the preview succeeded, until it expires (`status` is its
    effective_status)."""
    if status != "succeeded" or not preview.image:
        return None, None
    return _preview_links(request, preview.pk)


def _preview_error(preview, status: str) -> dict | None:
    # A queued preview with an error is waiting for a retry: the reason stays visible until it runs again.
    if status != "failed" and not (status == "queued" and preview.error_code):
        return None
    return {"code": preview.error_code, "message": preview.error_message}


def _preview_avatar_id(preview) -> str | None:
    if not preview.is_finished:
        return None  # only a succeeded preview is ever saved, and a finished one never runs again: no query
    try:
        return str(preview.avatar.pk)
    except Avatar.DoesNotExist:
        return None


class PreviewWithImagesOutput(PreviewOutput):
    """Documents the base64 fields a preview carries when they were asked for (see to_representation).

    Not read-only on purpose: the schema would then list them as required, and they are absent unless asked for.
    """

    imageBase64 = serializers.CharField(required=False, allow_null=True)
    thumbnailBase64 = serializers.CharField(required=False, allow_null=True)

    class Meta(PreviewOutput.Meta):
        fields = [*PreviewOutput.Meta.fields, "imageBase64", "thumbnailBase64"]


class PageQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, required=False, default=20)
    # Bounded: a database refuses an OFFSET beyond its integers (a 500), and no list is near this long.
    offset = serializers.IntegerField(min_value=0, max_value=OFFSET_MAX, required=False, default=0)


class PreviewListQuery(PageQuery):
    status = serializers.ChoiceField(choices=PreviewStatus.choices, required=False)


# Presets and uploads


@with_persona_fields(persona_output_field)
class PresetOutput(serializers.ModelSerializer):
    thumbnailUrl = serializers.SerializerMethodField()

    class Meta:
        model = Preset
        fields = ["id", "name", "category", "description", "prompt", *PERSONA_WIRE_NAMES, "thumbnailUrl"]

    def get_thumbnailUrl(self, preset) -> str | None:
        return absolute_url(self.context.get("request"), preset.thumbnail_url)


@with_persona_fields(persona_input_field)
class UploadInput(PersonaReader, serializers.Serializer):
    image = serializers.FileField(allow_empty_file=True)
    name = StrictCharField(min_length=1, max_length=NAME_MAX_CHARS)
    generationPrompt = StrictCharField(max_length=PROMPT_MAX_CHARS, required=False, allow_blank=True, allow_null=True)
