"""Variations, history, presets and starting points through the API (SPEC.md, "Variations, history, presets,
starting points"), on the offline generator with in-process tasks."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from avatar_creator.models import Avatar, Preset, Preview, PreviewStatus
from tests.factories import load_presets, make_avatar, make_preview, make_project
from tests.fake_image_api import Reply

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "Professional Indonesian woman with modern hijab, smiling"


@pytest.fixture
def project(alice):
    return make_project(alice)


@pytest.fixture(autouse=True)
def presets(db):
    load_presets()


def generate(api, project, *, asynchronous=False, **fields):
    headers = {"HTTP_PREFER": "respond-async"} if asynchronous else {}
    url = f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview"
    return api.post(url, fields, format="json", **headers)


def previews_url(project, query: str = "") -> str:
    return f"/api/avatar-creator/projects/{project.pk}/previews{query}"


def error_of(response) -> tuple[int, str, dict]:
    body = response.json()
    assert body["success"] is False
    return response.status_code, body["error"]["code"], body["error"].get("details", {})


# Variations


def test_generate_preview_count_makes_a_batch_with_consecutive_seeds(alice_api, project):
    response = generate(alice_api, project, prompt=PROMPT, count=3, seed=100)
    assert response.status_code == 200
    body = response.json()
    seeds = [p["seed"] for p in body["previews"]]
    assert seeds == [100, 101, 102]
    assert [p["status"] for p in body["previews"]] == ["succeeded"] * 3
    assert body["preview"]["id"] == body["previews"][0]["id"]
    assert all(p["imageBase64"] for p in body["previews"])
    batch_id = body["preview"]["batchId"]
    rows = Preview.objects.order_by("seed")
    assert [(r.seed, str(r.batch_id)) for r in rows] == [(100, batch_id), (101, batch_id), (102, batch_id)]
    assert {p["batchId"] for p in body["previews"]} == {batch_id}


def test_generate_preview_batch_answers_every_variation_when_one_fails(alice_api, project, flux):
    flux.script(Reply("ok"), Reply("bad_request"))
    response = generate(alice_api, project, prompt=PROMPT, count=2, seed=9)
    assert response.status_code == 200
    previews = response.json()["previews"]
    assert sorted(p["status"] for p in previews) == ["failed", "succeeded"]
    failed = next(p for p in previews if p["status"] == "failed")
    assert failed["imageUrl"] is None
    assert failed["error"]["code"] == Preview.objects.get(pk=failed["id"]).error_code != ""
    assert [p["seed"] for p in previews] == [9, 10]


def test_generate_preview_count_defaults_to_one_with_its_own_batch(alice_api, project):
    body = generate(alice_api, project, prompt=PROMPT).json()
    assert len(body["previews"]) == 1
    assert body["preview"]["batchId"] == str(Preview.objects.get().batch_id)


def test_generate_preview_count_async_answers_every_queued_preview(alice_api, project, held_queue):
    response = generate(alice_api, project, asynchronous=True, prompt=PROMPT, count=2, seed=5)
    assert response.status_code == 202
    body = response.json()
    assert [(p["status"], p["seed"]) for p in body["previews"]] == [("queued", 5), ("queued", 6)]
    assert response["Location"].endswith(f"/api/avatar-creator/previews/{body['previews'][0]['id']}")
    assert Preview.objects.count() == 2


@pytest.mark.parametrize("count", [0, 5, -1, "2", 1.5, None])
def test_generate_preview_count_out_of_range_is_refused_and_writes_nothing(alice_api, project, count):
    status, code, details = error_of(generate(alice_api, project, prompt=PROMPT, count=count))
    assert (status, code, list(details)) == (400, "VALIDATION_ERROR", ["count"])
    assert Preview.objects.count() == 0


def test_generate_preview_batch_over_the_rate_is_refused_whole(alice_api, alice, project, settings):
    settings.AVATAR_PREVIEW_RATE = "5/hour"
    for seed in range(3):
        make_preview(alice, project, seed=seed, status=PreviewStatus.SUCCEEDED)
    status, code, _ = error_of(generate(alice_api, project, prompt=PROMPT, count=3))
    assert (status, code) == (429, "RATE_LIMIT_EXCEEDED")
    assert Preview.objects.count() == 3


def test_generate_preview_batch_that_fits_the_rate_is_admitted(alice_api, alice, project, settings):
    settings.AVATAR_PREVIEW_RATE = "5/hour"
    for seed in range(3):
        make_preview(alice, project, seed=seed, status=PreviewStatus.SUCCEEDED)
    assert generate(alice_api, project, prompt=PROMPT, count=2).status_code == 200
    assert Preview.objects.count() == 5


# History


def test_preview_list_answers_the_unexpired_previews_newest_first(alice_api, alice, project):
    now = timezone.now()
    old = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True, created_at=now - timedelta(hours=2))
    new = make_preview(alice, project, status=PreviewStatus.FAILED, created_at=now - timedelta(minutes=1))
    make_preview(alice, project, status=PreviewStatus.EXPIRED, created_at=now - timedelta(minutes=2))
    make_preview(alice, project, expires_at=now - timedelta(seconds=1))
    body = alice_api.get(previews_url(project)).json()
    assert body["success"] is True
    assert [p["id"] for p in body["previews"]] == [str(new.pk), str(old.pk)]
    assert body["next"] is None
    assert body["previews"][1]["thumbnailUrl"].endswith(f"/previews/{old.pk}/thumbnail")


def test_preview_list_keeps_saved_previews_with_their_avatar(alice_api, alice, project):
    preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    avatar = make_avatar(project, preview=preview)
    body = alice_api.get(previews_url(project)).json()
    assert [(p["id"], p["avatarId"]) for p in body["previews"]] == [(str(preview.pk), str(avatar.pk))]


def test_preview_list_filters_by_status(alice_api, alice, project):
    make_preview(alice, project, status=PreviewStatus.FAILED)
    done = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    body = alice_api.get(previews_url(project, "?status=succeeded")).json()
    assert [p["id"] for p in body["previews"]] == [str(done.pk)]


def test_preview_list_pages_with_limit_and_next(alice_api, alice, project):
    now = timezone.now()
    made = [make_preview(alice, project, seed=i, created_at=now - timedelta(minutes=i)) for i in range(5)]
    first = alice_api.get(previews_url(project, "?limit=2")).json()
    assert [p["id"] for p in first["previews"]] == [str(p.pk) for p in made[:2]]
    second = alice_api.get(first["next"]).json()
    assert [p["id"] for p in second["previews"]] == [str(p.pk) for p in made[2:4]]
    third = alice_api.get(second["next"]).json()
    assert ([p["id"] for p in third["previews"]], third["next"]) == ([str(made[4].pk)], None)


@pytest.mark.parametrize("query", ["?limit=0", "?limit=101", "?limit=x", "?status=lost", "?offset=-1"])
def test_preview_list_refuses_bad_query_parameters(alice_api, project, query):
    status, code, _ = error_of(alice_api.get(previews_url(project, query)))
    assert (status, code) == (400, "VALIDATION_ERROR")


def test_preview_list_of_another_users_project_is_not_found(bob_api, alice, project):
    make_preview(alice, project)
    status, code, _ = error_of(bob_api.get(previews_url(project)))
    assert (status, code) == (404, "NOT_FOUND")


def test_preview_list_never_shows_another_users_previews(alice_api, alice, bob, project):
    bobs_project = make_project(bob)
    make_preview(bob, bobs_project)
    mine = make_preview(alice, project)
    assert [p["id"] for p in alice_api.get(previews_url(project)).json()["previews"]] == [str(mine.pk)]


# Presets


def test_presets_list_answers_the_curated_presets(alice_api):
    body = alice_api.get("/api/avatar-creator/presets").json()
    presets = body["presets"]
    assert body["success"] is True
    assert len(presets) >= 20
    assert len({p["category"] for p in presets}) >= 4
    batik = next(p for p in presets if p["name"] == "Batik shirt")
    assert (batik["category"], batik["style"], batik["ethnicity"], batik["bodyType"]) == (
        "traditional",
        "traditional",
        "Indonesian",
        "half_body",
    )
    assert batik["thumbnailUrl"].endswith("/static/img/presets/batik-shirt.webp")
    assert set(batik) == {
        "id", "name", "category", "description", "prompt", "gender", "ageRange", "style", "ethnicity", "bodyType",
        "thumbnailUrl",
    }  # fmt: skip


def test_presets_list_leaves_out_inactive_presets(alice_api):
    Preset.objects.filter(slug="batik-shirt").update(is_active=False)
    names = [p["name"] for p in alice_api.get("/api/avatar-creator/presets").json()["presets"]]
    assert "Batik shirt" not in names


def test_presets_list_requires_authentication(anon):
    status, code, _ = error_of(anon.get("/api/avatar-creator/presets"))
    assert (status, code) == (401, "UNAUTHENTICATED")


def test_generate_preview_from_a_preset_takes_its_fields_as_defaults(alice_api, project):
    preset = Preset.objects.get(slug="kebaya")
    body = generate(alice_api, project, presetId=str(preset.pk)).json()
    preview = body["preview"]
    assert (preview["prompt"], preview["gender"], preview["style"], preview["ethnicity"], preview["bodyType"]) == (
        preset.prompt,
        "female",
        "traditional",
        "Javanese",
        "full_body",
    )


def test_generate_preview_fields_given_override_the_preset(alice_api, project):
    preset = Preset.objects.get(slug="kebaya")
    body = generate(alice_api, project, presetId=str(preset.pk), prompt=PROMPT, bodyType="half_body",
                    ethnicity=None).json()  # fmt: skip
    preview = body["preview"]
    assert (preview["prompt"], preview["bodyType"], preview["ethnicity"], preview["gender"]) == (
        PROMPT,
        "half_body",
        None,
        "female",
    )


@pytest.mark.parametrize("preset_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_generate_preview_unknown_preset_is_a_validation_error(alice_api, project, preset_id):
    status, code, details = error_of(generate(alice_api, project, presetId=preset_id))
    assert (status, code, list(details)) == (400, "VALIDATION_ERROR", ["presetId"])
    assert Preview.objects.count() == 0


def test_generate_preview_without_prompt_or_starting_point_asks_for_the_prompt(alice_api, project):
    status, code, details = error_of(generate(alice_api, project, style="casual"))
    assert (status, code, details) == (400, "VALIDATION_ERROR", {"prompt": ["This field is required."]})


# More like this


def test_generate_preview_from_an_avatar_takes_its_prompt_and_fields(alice_api, project):
    avatar = make_avatar(project, gender="male", age_range="mature", style="formal", ethnicity="Batak",
                         body_type="full_body")  # fmt: skip
    preview = generate(alice_api, project, fromAvatarId=str(avatar.pk), ageRange="young").json()["preview"]
    assert (preview["prompt"], preview["gender"], preview["ageRange"], preview["ethnicity"], preview["bodyType"]) == (
        avatar.generation_prompt,
        "male",
        "young",
        "Batak",
        "full_body",
    )


def test_generate_preview_from_another_users_avatar_is_refused_like_an_unknown_one(bob_api, bob, project):
    avatar = make_avatar(project)
    status, code, details = error_of(generate(bob_api, make_project(bob), fromAvatarId=str(avatar.pk)))
    assert (status, code, details) == (400, "VALIDATION_ERROR", {"fromAvatarId": ["No avatar of yours with this id."]})
    assert Preview.objects.count() == 0


def test_generate_preview_from_an_uploaded_avatar_needs_a_prompt(alice_api, project):
    avatar = make_avatar(project, source_type="uploaded")
    Avatar.objects.filter(pk=avatar.pk).update(generation_prompt="")
    status, code, details = error_of(generate(alice_api, project, fromAvatarId=str(avatar.pk)))
    assert (status, code, details) == (400, "VALIDATION_ERROR", {"prompt": ["This field is required."]})


def test_generate_preview_from_an_avatar_with_a_long_description_asks_for_a_shorter_prompt(alice_api, project):
    """A legacy save keeps up to 2000 characters of description; a generation takes 500 at most (SPEC)."""
    avatar = make_avatar(project)
    Avatar.objects.filter(pk=avatar.pk).update(generation_prompt="a calm portrait " * 100)
    status, code, details = error_of(generate(alice_api, project, fromAvatarId=str(avatar.pk)))
    message = "The avatar's description is longer than 500 characters: send a shorter prompt."
    assert (status, code, details) == (400, "VALIDATION_ERROR", {"prompt": [message]})
    assert Preview.objects.count() == 0
    shorter = generate(alice_api, project, fromAvatarId=str(avatar.pk), prompt="A calm portrait of a teacher")
    assert shorter.json()["preview"]["prompt"] == "A calm portrait of a teacher"


def test_generate_preview_refuses_a_preset_and_an_avatar_together(alice_api, project):
    avatar = make_avatar(project)
    preset = Preset.objects.first()
    response = generate(alice_api, project, presetId=str(preset.pk), fromAvatarId=str(avatar.pk))
    assert error_of(response)[:2] == (400, "VALIDATION_ERROR")
    assert Preview.objects.count() == 0
