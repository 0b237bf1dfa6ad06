"""The prompt builder: a persona's fields -> the enhanced prompt, the negative prompt and the image size.

Pure functions over the plain vocabulary values (the strings stored in the DB and sent on the wire), so they
can be tested and reused without Django. The enhanced prompt reads, in order: what kind of photo (the body type
leads, because FLUX weighs early tokens most), the user's own words, who the person is (gender, age, ethnicity),
what they wear (style), and a fixed photorealism suffix.
"""

import re

MAX_PROMPT_CHARS = 1000
MAX_ETHNICITY_CHARS = 50

HALF_BODY = "half_body"
FULL_BODY = "full_body"

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
    text = collapse_whitespace(ethnicity or "")[:MAX_ETHNICITY_CHARS].strip()
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
