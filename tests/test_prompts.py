import pytest

from avatar_creator.prompts import (
    MAX_PROMPT_CHARS,
    build_negative_prompt,
    build_prompt,
    dimensions_for,
)

HALF_LEAD = "professional head-and-shoulders portrait photo"
FULL_LEAD = "full-length portrait photo, head to toe, entire body visible"
SUFFIX = "photorealistic, natural skin texture, sharp focus, soft studio lighting, 85mm lens, high detail"


def test_build_prompt_spec_example_reads_lead_user_persona_wardrobe_suffix():
    result = build_prompt(
        prompt="Professional Indonesian woman with modern hijab, smiling",
        gender="female",
        age_range="adult",
        style="professional",
        ethnicity="Indonesian",
        body_type="half_body",
    )

    assert result == (
        "professional head-and-shoulders portrait photo, Professional Indonesian woman with modern hijab, smiling, "
        "woman, in their thirties (30-40 years old), Indonesian ethnicity, wearing smart business attire, "
        "photorealistic, natural skin texture, sharp focus, soft studio lighting, 85mm lens, high detail"
    )


def test_build_prompt_full_body_leads_with_full_length_framing():
    result = build_prompt(
        prompt="a runner stretching on a city street",
        gender="male",
        age_range="young",
        style="sporty",
        ethnicity=None,
        body_type="full_body",
    )

    assert result == (
        "full-length portrait photo, head to toe, entire body visible, a runner stretching on a city street, man, "
        "in their early twenties (20-25 years old), wearing sporty athletic wear, " + SUFFIX
    )


def test_build_prompt_none_fields_are_skipped():
    result = build_prompt(prompt="a friendly librarian", gender=None, age_range=None, style=None, ethnicity=None)

    assert result == f"{HALF_LEAD}, a friendly librarian, {SUFFIX}"


def test_build_prompt_blank_fields_are_skipped_like_none():
    result = build_prompt(prompt="a friendly librarian", gender="", age_range="", style="", ethnicity="  \n ")

    assert result == f"{HALF_LEAD}, a friendly librarian, {SUFFIX}"


def test_build_prompt_unisex_adds_nothing():
    unisex = build_prompt(prompt="a chef in a kitchen", gender="unisex", age_range=None, style="casual", ethnicity=None)
    unspecified = build_prompt(
        prompt="a chef in a kitchen", gender=None, age_range=None, style="casual", ethnicity=None
    )

    assert unisex == f"{HALF_LEAD}, a chef in a kitchen, wearing casual everyday clothes, {SUFFIX}"
    assert unisex == unspecified


def test_build_prompt_collapses_whitespace_in_prompt_and_ethnicity():
    result = build_prompt(
        prompt="  A  smiling\n\tteacher \r\n in a  classroom.  ",
        gender="female",
        age_range="mature",
        style="traditional",
        ethnicity=" South \n East\tAsian ",
    )

    assert result == (
        "professional head-and-shoulders portrait photo, A smiling teacher in a classroom, woman, "
        "in their late forties to mid fifties (45-55 years old), South East Asian ethnicity, "
        "wearing traditional cultural attire, " + SUFFIX
    )


def test_build_prompt_formal_wardrobe():
    result = build_prompt(prompt="a diplomat at a gala", gender=None, age_range=None, style="formal", ethnicity=None)

    assert result == f"{HALF_LEAD}, a diplomat at a gala, wearing elegant formal attire, {SUFFIX}"


def test_build_prompt_trailing_separators_do_not_double_up():
    result = build_prompt(prompt="a pilot, smiling,.", gender=None, age_range=None, style=None, ethnicity=None)

    assert result == f"{HALF_LEAD}, a pilot, smiling, {SUFFIX}"


def test_build_prompt_blank_prompt_keeps_lead_and_suffix():
    result = build_prompt(prompt=" \n ", gender="male", age_range=None, style=None, ethnicity=None)

    assert result == f"{HALF_LEAD}, man, {SUFFIX}"


def test_build_prompt_length_bound_truncates_user_text_on_a_word_boundary():
    result = build_prompt(prompt="word " * 300, gender=None, age_range=None, style=None, ethnicity=None)

    assert result == f"{HALF_LEAD}, {' '.join(['word'] * 171)}, {SUFFIX}"
    assert len(result) <= MAX_PROMPT_CHARS


def test_build_prompt_length_bound_hard_cuts_text_without_spaces():
    result = build_prompt(prompt="abcdefghij" * 120, gender=None, age_range=None, style=None, ethnicity=None)

    # 1000 - len(lead) - len(suffix) - two separators = 855 characters of the user's text.
    assert result == f"{HALF_LEAD}, {('abcdefghij' * 120)[:855]}, {SUFFIX}"
    assert len(result) == MAX_PROMPT_CHARS


def test_build_prompt_length_bound_keeps_persona_and_suffix():
    result = build_prompt(
        prompt="x " * 600,
        gender="female",
        age_range="young",
        style="casual",
        ethnicity="Javanese" * 20,
        body_type="full_body",
    )

    assert len(result) <= MAX_PROMPT_CHARS
    assert result.startswith(FULL_LEAD + ", x x ")
    # The ethnicity is capped at 50 characters, the rest of the tail survives whole.
    assert result.endswith(
        ", woman, in their early twenties (20-25 years old), "
        + ("Javanese" * 20)[:50]
        + " ethnicity, wearing casual everyday clothes, "
        + SUFFIX
    )


def test_build_prompt_unknown_vocabulary_raises():
    with pytest.raises(ValueError, match="Unknown gender 'robot'"):
        build_prompt(prompt="someone", gender="robot", age_range=None, style=None, ethnicity=None)


def test_build_prompt_unknown_body_type_raises():
    with pytest.raises(ValueError, match="Unknown body type 'torso'"):
        build_prompt(prompt="someone", gender=None, age_range=None, style=None, ethnicity=None, body_type="torso")


def test_build_negative_prompt_half_body_guards_the_head():
    assert build_negative_prompt(body_type="half_body") == (
        "blurry, deformed, distorted face, extra fingers, extra limbs, bad anatomy, watermark, text, logo, "
        "cartoon, illustration, lowres, jpeg artifacts, oversaturated, cropped head"
    )


def test_build_negative_prompt_full_body_guards_the_feet():
    assert build_negative_prompt(body_type="full_body") == (
        "blurry, deformed, distorted face, extra fingers, extra limbs, bad anatomy, watermark, text, logo, "
        "cartoon, illustration, lowres, jpeg artifacts, oversaturated, cropped feet, cut off legs"
    )


def test_build_negative_prompt_defaults_to_half_body():
    assert build_negative_prompt() == build_negative_prompt(body_type="half_body")


def test_dimensions_for_body_types():
    assert dimensions_for("half_body") == (1024, 1024)
    assert dimensions_for("full_body") == (768, 1344)
