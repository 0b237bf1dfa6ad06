"""The persona (who to draw) and the prompt builder: a Persona -> the enhanced prompt, the negative prompt, the size.

`Persona` is the one value that forms, serializers, services, the admin and the builder pass around, and
PERSONA_FIELDS is the one list of its fields with their wire names and limits: the API's and the UI's inputs are
built from it. Adding a persona field: its vocabulary and a PersonaField entry here (plus its phrase in
build_prompt), the column on models.PersonaFields, and `makemigrations` -- the README's code map has the recipe.

The builder is pure functions over the plain vocabulary values (the strings stored in the DB and sent on the
wire), so it can be tested and reused without a configured Django. The enhanced prompt reads, in order: what
kind of photo (the body type leads, because FLUX weighs early tokens most), the user's own words, who the person
is (gender, age, ethnicity), what they wear (style), and a fixed photorealism suffix.
"""

import dataclasses
import re
from dataclasses import dataclass

from django.db.models import TextChoices

# Limits, each defined once: the forms, serializers, models and the builder read them from here.
PROMPT_MIN_CHARS = 10
PROMPT_MAX_CHARS = 500
NAME_MAX_CHARS = 100
ETHNICITY_MAX_CHARS = 50
MAX_PROMPT_CHARS = 1000  # the enhanced prompt sent to the model

HALF_BODY = "half_body"
FULL_BODY = "full_body"


class Gender(TextChoices):
    MALE = "male", "Male"
    FEMALE = "female", "Female"
    UNISEX = "unisex", "Unisex"


class AgeRange(TextChoices):
    YOUNG = "young", "Young (20-25)"
    ADULT = "adult", "Adult (30-40)"
    MATURE = "mature", "Mature (45-55)"


class Style(TextChoices):
    CASUAL = "casual", "Casual"
    FORMAL = "formal", "Formal"
    SPORTY = "sporty", "Sporty"
    PROFESSIONAL = "professional", "Professional"
    TRADITIONAL = "traditional", "Traditional"


class BodyType(TextChoices):
    HALF_BODY = HALF_BODY, "Half body (portrait)"
    FULL_BODY = FULL_BODY, "Full body"


@dataclass(frozen=True)
class PersonaField:
    """One field of a persona besides the prompt: its model/keyword name, its camelCase wire name, and either a
    vocabulary (`choices`) or a free-text `max_length`. `default` is used when the field is not given."""

    name: str
    wire: str
    label: str
    choices: type[TextChoices] | None = None
    max_length: int | None = None
    default: str | None = None


PERSONA_FIELDS = (
    PersonaField("gender", "gender", "Gender", choices=Gender),
    PersonaField("age_range", "ageRange", "Age range", choices=AgeRange),
    PersonaField("style", "style", "Style", choices=Style),
    PersonaField("ethnicity", "ethnicity", "Ethnicity", max_length=ETHNICITY_MAX_CHARS),
    PersonaField("body_type", "bodyType", "Body type", choices=BodyType, default=HALF_BODY),
)


@dataclass(frozen=True)
class Persona:
    """Who to draw: the user's description and the persona fields. Blank optional fields are None."""

    prompt: str
    gender: str | None = None
    age_range: str | None = None
    style: str | None = None
    ethnicity: str | None = None
    body_type: str = HALF_BODY

    def __post_init__(self):
        # One normal form whatever the source: blanks are "not given", the body type has its default.
        for field in PERSONA_FIELDS:
            value = getattr(self, field.name)
            if isinstance(value, str):
                value = value.strip()
            object.__setattr__(self, field.name, value or field.default)

    @classmethod
    def of(cls, source, **overrides) -> "Persona":
        """The persona of anything that has the fields as attributes (a Preview, an Avatar), with overrides."""
        values = {name: getattr(source, name) for name in ("prompt", *PERSONA_NAMES)}
        return cls(**{**values, **overrides})

    @classmethod
    def from_data(cls, data: dict, *, prompt: str | None = None) -> "Persona":
        """From a dict keyed by the Python names (a form's or serializer's cleaned data); unknown keys ignored."""
        values = {name: data.get(name) for name in PERSONA_NAMES if name in data}
        return cls(prompt=data.get("prompt", "") if prompt is None else prompt, **values)

    def fields(self) -> dict:
        """The persona fields (not the prompt) as model keyword arguments."""
        return {name: getattr(self, name) for name in PERSONA_NAMES}

    def replace(self, **changes) -> "Persona":
        return dataclasses.replace(self, **changes)

    @property
    def enhanced_prompt(self) -> str:
        return build_prompt(prompt=self.prompt, **self.fields())

    @property
    def negative_prompt(self) -> str:
        return build_negative_prompt(body_type=self.body_type)

    @property
    def dimensions(self) -> tuple[int, int]:
        return dimensions_for(self.body_type)


PERSONA_NAMES = tuple(field.name for field in PERSONA_FIELDS)

_LEADS = {
    HALF_BODY: "professional head-and-shoulders portrait photo",
    FULL_BODY: "full-length portrait photo, head to toe, entire body visible",
}
_DIMENSIONS = {
    HALF_BODY: (1024, 1024),
    FULL_BODY: (768, 1344),
}
# "unisex" is a valid choice that deliberately says nothing about gender.
_GENDERS: dict[str, str | None] = {
    "male": "man",
    "female": "woman",
    "unisex": None,
}
_AGES = {
    "young": "in their early twenties (20-25 years old)",
    "adult": "in their thirties (30-40 years old)",
    "mature": "in their late forties to mid fifties (45-55 years old)",
}
_WARDROBES = {
    "casual": "wearing casual everyday clothes",
    "formal": "wearing elegant formal attire",
    "sporty": "wearing sporty athletic wear",
    "professional": "wearing smart business attire",
    "traditional": "wearing traditional cultural attire",
}
PHOTO_SUFFIX = "photorealistic, natural skin texture, sharp focus, soft studio lighting, 85mm lens, high detail"

_NEGATIVE_BASE = (
    "blurry, deformed, distorted face, extra fingers, extra limbs, bad anatomy, watermark, text, logo, "
    "cartoon, illustration, lowres, jpeg artifacts, oversaturated"
)
_NEGATIVE_FRAMING = {
    HALF_BODY: "cropped head",
    FULL_BODY: "cropped feet, cut off legs",
}

_SEPARATOR = ", "
_WHITESPACE = re.compile(r"\s+")


def collapse_whitespace(text: str) -> str:
    """Any run of whitespace (newlines and tabs included) becomes one space; the ends are stripped."""
    return _WHITESPACE.sub(" ", text).strip()


def dimensions_for(body_type: str) -> tuple[int, int]:
    """(width, height) of the image for a body type."""
    return _DIMENSIONS[_checked_body_type(body_type)]


def build_prompt(
    *,
    prompt: str,
    gender: str | None,
    age_range: str | None,
    style: str | None,
    ethnicity: str | None,
    body_type: str = HALF_BODY,
) -> str:
    """The enhanced prompt sent to the model; at most MAX_PROMPT_CHARS long.

    Only the user's text is ever shortened: the lead and the suffix carry the framing and quality the
    product promises, so they always survive.
    """
    lead = _LEADS[_checked_body_type(body_type)]
    persona = [
        _lookup(_GENDERS, gender, "gender"),
        _lookup(_AGES, age_range, "age_range"),
        _ethnicity_phrase(ethnicity),
        _lookup(_WARDROBES, style, "style"),
    ]
    tail = [part for part in persona if part] + [PHOTO_SUFFIX]

    fixed_chars = len(_SEPARATOR.join([lead, *tail]))
    budget = MAX_PROMPT_CHARS - fixed_chars - len(_SEPARATOR)
    user_text = _truncate(_clean_user_text(prompt), budget)

    parts = [lead, user_text, *tail] if user_text else [lead, *tail]
    return _SEPARATOR.join(parts)


def build_negative_prompt(*, body_type: str = HALF_BODY) -> str:
    """What the image must not show; the framing part guards the crop the body type asks for."""
    return f"{_NEGATIVE_BASE}{_SEPARATOR}{_NEGATIVE_FRAMING[_checked_body_type(body_type)]}"


def _checked_body_type(body_type: str) -> str:
    if body_type not in _LEADS:
        raise ValueError(f"Unknown body type {body_type!r}; expected one of {sorted(_LEADS)}.")
    return body_type


def _lookup(table: dict[str, str | None], value: str | None, field: str) -> str | None:
    # Blank and None both mean "not given"; anything else must be vocabulary, so a typo fails loudly.
    if not value:
        return None
    if value not in table:
        raise ValueError(f"Unknown {field} {value!r}; expected one of {sorted(table)}.")
    return table[value]


def _ethnicity_phrase(ethnicity: str | None) -> str | None:
    text = collapse_whitespace(ethnicity or "")[:ETHNICITY_MAX_CHARS].strip()
    return f"{text} ethnicity" if text else None


def _clean_user_text(prompt: str) -> str:
    # Trailing separators would otherwise double up with the ", " the builder adds after the user's text.
    return collapse_whitespace(prompt).rstrip(" ,;.")


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = text[:limit]
    # Prefer ending on a word boundary unless that would throw away most of the text.
    if not text[limit].isspace() and " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;.")
