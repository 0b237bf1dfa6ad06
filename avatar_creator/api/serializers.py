"""Input validation and output shape of the API. camelCase on the wire, exactly as SPEC.md."""

import base64

from rest_framework import serializers

from avatar_creator import files
from avatar_creator.models import PROJECT_DESCRIPTION_MAX_CHARS, Avatar, Preview, Project
from avatar_creator.prompts import (
    NAME_MAX_CHARS,
    PERSONA_FIELDS,
    PROMPT_MAX_CHARS,
    PROMPT_MIN_CHARS,
    Persona,
    PersonaField,
)

MAX_SEED = 2**32 - 1


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
    if not url:
        return None
    if url.startswith(("http://", "https://")) or request is None:
        return url
    return request.build_absolute_uri(url)


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
    email = serializers.EmailField(required=False, allow_blank=True, default="")

    def validate_username(self, value):
        from django.contrib.auth.validators import UnicodeUsernameValidator

        UnicodeUsernameValidator()(value)
        return value


class TokenInput(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=128, trim_whitespace=False)


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

    class Meta:
        model = Preview
        fields = [
            "id", "projectId", "status", "prompt", "enhancedPrompt", *PERSONA_WIRE_NAMES, "seed", "width", "height",
            "attempts", "imageUrl", "thumbnailUrl", "error", "avatarId",
            "createdAt", "startedAt", "finishedAt", "expiresAt",
        ]  # fmt: skip

    def _url(self, preview, kind: str) -> str | None:
        from django.urls import reverse

        if preview.status != "succeeded" or not preview.image:
            return None
        path = reverse(f"api:preview-{kind}", kwargs={"pk": preview.pk})
        return absolute_url(self.context.get("request"), path)

    def get_imageUrl(self, preview) -> str | None:
        return self._url(preview, "image")

    def get_thumbnailUrl(self, preview) -> str | None:
        return self._url(preview, "thumbnail")

    def get_error(self, preview) -> dict | None:
        if preview.status != "failed":
            return None
        return {"code": preview.error_code, "message": preview.error_message}

    def get_avatarId(self, preview) -> str | None:
        try:
            return str(preview.avatar.pk)
        except Avatar.DoesNotExist:
            return None

    def to_representation(self, preview):
        data = super().to_representation(preview)
        if self.context.get("include_base64") and preview.status == "succeeded" and preview.image:
            try:
                contents = files.read_bytes(files.preview_storage(), preview.image.name, preview.thumbnail.name)
                data["imageBase64"], data["thumbnailBase64"] = (base64.b64encode(c).decode("ascii") for c in contents)
            except OSError:
                # The files went missing (expired under us, storage fault): say so rather than fail the request.
                data["imageBase64"] = data["thumbnailBase64"] = None
        return data


class PreviewWithImagesOutput(PreviewOutput):
    """Documents the base64 fields a preview carries when they were asked for (see to_representation).

    Not read-only on purpose: the schema would then list them as required, and they are absent unless asked for.
    """

    imageBase64 = serializers.CharField(required=False, allow_null=True)
    thumbnailBase64 = serializers.CharField(required=False, allow_null=True)

    class Meta(PreviewOutput.Meta):
        fields = [*PreviewOutput.Meta.fields, "imageBase64", "thumbnailBase64"]
