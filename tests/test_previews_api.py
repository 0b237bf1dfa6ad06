"""Phase 1 and Phase 2 of SPEC.md through the API, on the offline generator (in-process tasks)."""

import base64
import io
import uuid
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.urls import set_script_prefix
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from avatar_creator.models import Avatar, CreditAccount, CreditLedgerEntry, Preview, PreviewStatus
from tests.factories import jpeg_bytes, make_preview, make_project

# Tasks queue on commit, so these tests need real commits.
pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "Professional Indonesian woman with modern hijab, smiling"


@pytest.fixture
def project(alice):
    return make_project(alice)


def url(project, action):
    return f"/api/avatar-creator/projects/{project.pk}/avatars/{action}"


def balance(user) -> int:
    return CreditAccount.objects.get(user=user).balance


def generate(api, project, *, asynchronous=False, **fields):
    body = {"prompt": PROMPT, **fields}
    headers = {"HTTP_PREFER": "respond-async"} if asynchronous else {}
    return api.post(url(project, "generate-preview"), body, format="json", **headers)


def wait_finished(api, preview_id) -> dict:
    """The embedded default generates in the background: hold (Prefer: wait) until the preview is finished."""
    return api.get(f"/api/avatar-creator/previews/{preview_id}", HTTP_PREFER="wait=30").json()["preview"]


def test_preview_links_follow_the_script_prefix(alice_api, project):
    preview_id = generate(alice_api, project).json()["preview"]["id"]
    path = f"/api/avatar-creator/previews/{preview_id}"
    set_script_prefix("/avatars/")  # what the WSGI handler sets from SCRIPT_NAME (the test client does not)
    try:
        mounted = alice_api.get(path).json()["preview"]
    finally:
        set_script_prefix("/")
    plain = alice_api.get(path).json()["preview"]
    assert mounted["thumbnailUrl"] == f"http://testserver/avatars{path}/thumbnail"
    assert plain["thumbnailUrl"] == f"http://testserver{path}/thumbnail"


def test_generate_preview_waits_and_answers_the_image(alice_api, project):
    response = generate(alice_api, project, gender="female", ageRange="adult", style="professional",
                        ethnicity="Indonesian", bodyType="half_body", seed=1234)  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Preview generated successfully. Review and save if you like it."
    preview = body["preview"]
    assert (preview["status"], preview["seed"], preview["width"], preview["height"]) == ("succeeded", 1234, 1024, 1024)
    image = Image.open(io.BytesIO(base64.b64decode(preview["imageBase64"], validate=True)))
    thumb = Image.open(io.BytesIO(base64.b64decode(preview["thumbnailBase64"], validate=True)))
    assert (image.size, thumb.size) == ((1024, 1024), (300, 300))
    assert preview["enhancedPrompt"].startswith("professional head-and-shoulders portrait photo, " + PROMPT)
    assert preview["imageUrl"] == f"http://testserver/api/avatar-creator/previews/{preview['id']}/image"
    assert preview["expiresAt"]


def test_generate_preview_full_body_is_tall(alice_api, project):
    preview = generate(alice_api, project, bodyType="full_body").json()["preview"]
    assert (preview["width"], preview["height"]) == (768, 1344)
    image = Image.open(io.BytesIO(base64.b64decode(preview["imageBase64"])))
    assert image.size == (768, 1344)


def test_generate_preview_reports_a_random_seed_when_absent(alice_api, project):
    first = generate(alice_api, project).json()["preview"]["seed"]
    second = generate(alice_api, project).json()["preview"]["seed"]
    assert 0 <= first < 2**32
    assert first != second


def test_generate_preview_async_answers_202_with_location(alice_api, project):
    response = generate(alice_api, project, asynchronous=True)
    assert response.status_code == 202
    preview = response.json()["preview"]
    assert response["Location"] == f"/api/avatar-creator/previews/{preview['id']}"
    assert response["Preference-Applied"] == "respond-async"
    assert "imageBase64" not in preview
    assert preview["status"] in ("queued", "running")
    polled = alice_api.get(response["Location"], HTTP_PREFER="wait=30").json()["preview"]
    assert polled["status"] == "succeeded"
    assert polled["createdAt"] <= polled["startedAt"] <= polled["finishedAt"]
    assert "imageBase64" not in polled


def test_preview_get_includes_base64_only_when_asked(alice_api, project):
    preview_id = generate(alice_api, project, asynchronous=True).json()["preview"]["id"]
    wait_finished(alice_api, preview_id)
    with_b64 = alice_api.get(f"/api/avatar-creator/previews/{preview_id}?include=base64").json()["preview"]
    image = Image.open(io.BytesIO(base64.b64decode(with_b64["imageBase64"])))
    assert image.size == (1024, 1024)


def test_preview_image_is_served_only_to_its_owner(alice_api, bob_api, anon, project):
    preview_id = generate(alice_api, project, asynchronous=True).json()["preview"]["id"]
    wait_finished(alice_api, preview_id)
    image_url = f"/api/avatar-creator/previews/{preview_id}/image"
    mine = alice_api.get(image_url)
    assert mine.status_code == 200
    assert mine["Content-Type"] == "image/jpeg"
    assert mine["Cache-Control"] == "private, max-age=3600"
    assert Image.open(io.BytesIO(b"".join(mine.streaming_content))).size == (1024, 1024)
    assert bob_api.get(image_url).status_code == 404
    assert anon.get(image_url).status_code == 401
    preview = Preview.objects.get(pk=preview_id)
    assert not default_storage.exists(preview.image.name)  # not under the public media root


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"prompt": "too short"}, "prompt"),
        ({"prompt": "x" * 501}, "prompt"),
        ({"prompt": 1234567890123}, "prompt"),
        ({"gender": "robot"}, "gender"),
        ({"ageRange": "ancient"}, "ageRange"),
        ({"style": "goth"}, "style"),
        ({"bodyType": "torso"}, "bodyType"),
        ({"ethnicity": "e" * 51}, "ethnicity"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"seed": "12"}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_generate_preview_rejects_bad_fields(alice_api, project, fields, bad):
    response = alice_api.post(url(project, "generate-preview"), {"prompt": PROMPT, **fields}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert list(response.json()["error"]["details"]) == [bad]
    assert Preview.objects.count() == 0


def test_generate_preview_is_rate_limited_per_user(alice_api, bob_api, project, bob, settings):
    settings.AVATAR_PREVIEW_RATE = "2/hour"
    assert [generate(alice_api, project, asynchronous=True).status_code for _ in range(2)] == [202, 202]
    limited = generate(alice_api, project, asynchronous=True)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert 3590 <= int(limited["Retry-After"]) <= 3600
    assert Preview.objects.count() == 2
    assert generate(bob_api, make_project(bob), asynchronous=True).status_code == 202


def test_cancel_a_finished_preview_leaves_it_unchanged(alice_api, project):
    preview_id = generate(alice_api, project, asynchronous=True).json()["preview"]["id"]
    wait_finished(alice_api, preview_id)
    response = alice_api.post(f"/api/avatar-creator/previews/{preview_id}/cancel")
    assert response.status_code == 200
    assert response.json()["preview"]["status"] == "succeeded"


def test_cancel_a_queued_preview(alice_api, project, alice):
    from avatar_creator import services

    preview = make_preview(alice, project)
    response = alice_api.post(f"/api/avatar-creator/previews/{preview.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["preview"]["status"] == "canceled"
    services.preview_attempt(preview_id=preview.pk)  # a late worker does nothing to it
    preview.refresh_from_db()
    assert (preview.status, preview.attempts, preview.image.name) == ("canceled", 0, "")


def test_save_preview_creates_the_avatar_and_charges(alice_api, alice, project, settings):
    settings.AVATAR_SAVE_COST = 10
    preview = generate(alice_api, project, style="traditional", bodyType="full_body", seed=7).json()["preview"]
    response = alice_api.post(url(project, "save-preview"), {"previewId": preview["id"], "name": "Ayu"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Avatar saved successfully"
    avatar = body["avatar"]
    assert (avatar["name"], avatar["style"], avatar["bodyType"], avatar["seed"]) == (
        "Ayu",
        "traditional",
        "full_body",
        7,
    )
    assert (avatar["width"], avatar["height"], avatar["sourceType"]) == (768, 1344, "ai_generated")
    assert avatar["generationPrompt"] == PROMPT
    assert avatar["enhancedPrompt"] == preview["enhancedPrompt"]
    assert avatar["imageUrl"].startswith("http://testserver/media/avatars/")
    assert balance(alice) == 90
    entry = CreditLedgerEntry.objects.filter(account__user=alice).first()
    assert (entry.delta, entry.balance_after, str(entry.avatar_id)) == (-10, 90, avatar["id"])
    saved = Avatar.objects.get(pk=avatar["id"])
    assert Image.open(saved.thumbnail.path).size == (300, 300)
    assert Image.open(saved.image.path).size == (768, 1344)
    listed = alice_api.get(f"/api/avatar-creator/projects/{project.pk}/avatars").json()["avatars"]
    assert [a["id"] for a in listed] == [avatar["id"]]


def test_save_preview_twice_returns_the_same_avatar_and_charges_once(alice_api, alice, project):
    preview_id = generate(alice_api, project).json()["preview"]["id"]
    first = alice_api.post(url(project, "save-preview"), {"previewId": preview_id, "name": "A"}, format="json")
    again = alice_api.post(url(project, "save-preview"), {"previewId": preview_id, "name": "B"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["avatar"]["id"] == first.json()["avatar"]["id"]
    assert again.json()["avatar"]["name"] == "A"
    assert balance(alice) == 90
    assert Avatar.objects.count() == 1


def test_save_preview_without_enough_credits_writes_nothing(alice_api, alice, project, settings):
    settings.AVATAR_SAVE_COST = 150
    preview_id = generate(alice_api, project).json()["preview"]["id"]
    response = alice_api.post(url(project, "save-preview"), {"previewId": preview_id}, format="json")
    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["code"], error["details"]) == ("INSUFFICIENT_CREDITS", {"required": 150, "balance": 100})
    assert (Avatar.objects.count(), balance(alice)) == (0, 100)
    assert stored_avatar_files() == []


def stored_avatar_files() -> list[str]:
    from django.conf import settings

    root = settings.MEDIA_ROOT / "avatars"
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_save_preview_expired_is_not_available(alice_api, alice, project):
    preview_id = generate(alice_api, project).json()["preview"]["id"]
    Preview.objects.filter(pk=preview_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = alice_api.post(url(project, "save-preview"), {"previewId": preview_id}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "PREVIEW_NOT_AVAILABLE"
    assert (Avatar.objects.count(), balance(alice)) == (0, 100)


def test_a_preview_past_its_expiry_is_expired_before_the_purge_marks_it(alice_api, alice, project):
    """From expiresAt on, a preview reads `expired` everywhere, without links or images, though the purge (every 5
    minutes) has not yet marked its row or removed its files; saving it says so too."""
    from avatar_creator.models import preview_storage

    preview_id = generate(alice_api, project).json()["preview"]["id"]
    Preview.objects.filter(pk=preview_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    session = APIClient()
    session.force_authenticate(alice)  # the usual way, beside the Bearer poll's one query (alice_api)
    for client in (alice_api, session):
        got = client.get(f"/api/avatar-creator/previews/{preview_id}?include=base64").json()["preview"]
        assert (got["status"], got["imageUrl"], got["thumbnailUrl"]) == ("expired", None, None)
        assert "imageBase64" not in got
        for kind in ("image", "thumbnail"):
            response = client.get(f"/api/avatar-creator/previews/{preview_id}/{kind}")
            assert (response.status_code, response.json()["error"]["code"]) == (404, "NOT_FOUND")
    events = alice_api.get(f"/api/avatar-creator/previews/{preview_id}/events")
    assert '"status":"expired"' in b"".join(events.streaming_content).decode()
    response = alice_api.post(url(project, "save-preview"), {"previewId": preview_id}, format="json")
    assert (response.status_code, response.json()["error"]["details"]) == (409, {"status": "expired"})
    preview = Preview.objects.get(pk=preview_id)
    assert preview.status == PreviewStatus.SUCCEEDED and preview_storage().exists(preview.image.name)


@pytest.mark.parametrize("status", ["failed", "canceled", "queued", "running", "expired"])
def test_save_preview_not_succeeded_is_not_available(alice_api, alice, project, status):
    preview = make_preview(alice, project, status=status)
    response = alice_api.post(url(project, "save-preview"), {"previewId": str(preview.pk)}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"status": status}
    assert balance(alice) == 100


def test_save_preview_of_another_user_or_project_is_not_found(alice_api, bob_api, bob, alice, project):
    preview_id = generate(alice_api, project).json()["preview"]["id"]
    bob_project = make_project(bob)
    stolen = bob_api.post(url(bob_project, "save-preview"), {"previewId": preview_id}, format="json")
    assert stolen.status_code == 404
    other_project = make_project(alice, "Other")
    wrong = alice_api.post(url(other_project, "save-preview"), {"previewId": preview_id}, format="json")
    assert wrong.status_code == 404
    unknown = alice_api.post(url(project, "save-preview"), {"previewId": str(uuid.uuid4())}, format="json")
    assert unknown.status_code == 404
    assert (Avatar.objects.count(), balance(alice), balance(bob)) == (0, 100, 100)


def test_save_preview_rejects_a_malformed_preview_id(alice_api, project):
    response = alice_api.post(url(project, "save-preview"), {"previewId": "../../etc/passwd"}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["previewId"]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_legacy_save_reencodes_and_makes_its_own_thumbnail(alice_api, alice, project):
    body = {"name": "Uploaded", "imageBase64": _b64(jpeg_bytes(800, 1200)), "thumbnailBase64": _b64(b"ignored"),
            "generationPrompt": PROMPT, "gender": "male", "bodyType": "full_body"}  # fmt: skip
    response = alice_api.post(url(project, "save-preview"), body, format="json")
    assert response.status_code == 201
    avatar = Avatar.objects.get(pk=response.json()["avatar"]["id"])
    assert (avatar.width, avatar.height, avatar.gender, avatar.source_type) == (800, 1200, "male", "ai_generated")
    assert Image.open(avatar.thumbnail.path).size == (300, 300)
    assert avatar.image.name.startswith("avatars/") and "Uploaded" not in avatar.image.name
    assert balance(alice) == 90


@pytest.mark.parametrize(
    ("image", "status", "code"),
    [
        ("bm90IGFuIGltYWdl", 400, "INVALID_IMAGE"),
        ("%%%not base64%%%", 400, "INVALID_IMAGE"),
        (_b64(b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"), 400, "INVALID_IMAGE"),
        (_b64(b"<html><body>hi</body></html>"), 400, "INVALID_IMAGE"),
        (_b64(jpeg_bytes(400, 400)[:300]), 400, "INVALID_IMAGE"),
        (_b64(jpeg_bytes(2049, 16)), 413, "PAYLOAD_TOO_LARGE"),
        ("A" * (15 * 1024 * 1024), 413, "PAYLOAD_TOO_LARGE"),
    ],
    ids=["text", "not-base64", "svg", "html", "truncated", "too-wide", "too-many-bytes"],
)
def test_legacy_save_rejects_bad_images_and_writes_nothing(alice_api, alice, project, image, status, code):
    response = alice_api.post(url(project, "save-preview"), {"name": "Bad", "imageBase64": image}, format="json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert (Avatar.objects.count(), balance(alice)) == (0, 100)
    assert stored_avatar_files() == []


def test_legacy_save_rejects_a_decompression_bomb(alice_api, alice, project):
    buffer = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buffer, "PNG")
    response = alice_api.post(
        url(project, "save-preview"), {"name": "Bomb", "imageBase64": _b64(buffer.getvalue())}, format="json"
    )
    assert response.status_code == 413
    assert (Avatar.objects.count(), balance(alice)) == (0, 100)


def test_legacy_save_requires_name_and_image(alice_api, project):
    response = alice_api.post(url(project, "save-preview"), {"generationPrompt": "x"}, format="json")
    assert response.status_code == 400
    assert sorted(response.json()["error"]["details"]) == ["imageBase64", "name"]


def test_legacy_generate_saves_count_variations(alice_api, alice, project):
    body = {"prompt": PROMPT, "name": "Team", "count": 3, "seed": 10}
    response = alice_api.post(url(project, "generate"), body, format="json")
    assert response.status_code == 201
    avatars = response.json()["avatars"]
    assert sorted(a["name"] for a in avatars) == ["Team - Variation 1", "Team - Variation 2", "Team - Variation 3"]
    assert sorted(a["seed"] for a in avatars) == [10, 11, 12]
    assert balance(alice) == 70


def test_legacy_generate_single_keeps_the_name(alice_api, project):
    response = alice_api.post(url(project, "generate"), {"prompt": PROMPT, "name": "Solo"}, format="json")
    assert [a["name"] for a in response.json()["avatars"]] == ["Solo"]


def test_legacy_generate_checks_credits_for_the_whole_count_first(alice_api, alice, project, settings):
    settings.AVATAR_SAVE_COST = 40
    response = alice_api.post(url(project, "generate"), {"prompt": PROMPT, "name": "T", "count": 3}, format="json")
    assert response.status_code == 402
    assert response.json()["error"]["details"] == {"required": 120, "balance": 100}
    assert (Preview.objects.count(), Avatar.objects.count(), balance(alice)) == (0, 0, 100)


@pytest.mark.parametrize("count", [0, 6, "2"])
def test_legacy_generate_rejects_bad_count(alice_api, project, count):
    response = alice_api.post(url(project, "generate"), {"prompt": PROMPT, "name": "T", "count": count}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["count"]


def test_legacy_generate_async_returns_previews(alice_api, alice, project):
    response = alice_api.post(
        url(project, "generate"),
        {"prompt": PROMPT, "name": "T", "count": 2},
        format="json",
        HTTP_PREFER="respond-async",
    )
    assert response.status_code == 202
    assert len(response.json()["previews"]) == 2
    assert (Avatar.objects.count(), balance(alice)) == (0, 100)


@pytest.mark.parametrize("action", ["generate-preview", "save-preview", "generate"])
def test_generation_endpoints_hide_other_users_projects(bob_api, project, action):
    response = bob_api.post(url(project, action), {"prompt": PROMPT, "name": "x"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert Preview.objects.count() == 0


@pytest.mark.parametrize("action", ["generate-preview", "save-preview", "generate"])
def test_generation_endpoints_require_authentication(anon, project, action):
    response = anon.post(url(project, action), {"prompt": PROMPT, "name": "x"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("suffix", ["", "/cancel", "/image", "/thumbnail"])
def test_preview_endpoints_hide_other_users_previews(alice_api, bob_api, anon, project, suffix):
    preview_id = generate(alice_api, project, asynchronous=True).json()["preview"]["id"]
    method = "post" if suffix == "/cancel" else "get"
    path = f"/api/avatar-creator/previews/{preview_id}{suffix}"
    assert getattr(bob_api, method)(path).status_code == 404
    assert getattr(anon, method)(path).status_code == 401


def test_purge_expires_previews_and_deletes_their_files(alice_api, alice, project):
    from django.core.management import call_command

    from avatar_creator.models import preview_storage

    preview_id = generate(alice_api, project).json()["preview"]["id"]
    preview = Preview.objects.get(pk=preview_id)
    files = [preview.image.name, preview.thumbnail.name]
    assert all(preview_storage().exists(name) for name in files)
    call_command("purge_expired_previews")
    assert Preview.objects.get(pk=preview_id).status == PreviewStatus.SUCCEEDED
    Preview.objects.filter(pk=preview_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    call_command("purge_expired_previews")
    preview.refresh_from_db()
    assert (preview.status, preview.image.name) == ("expired", "")
    assert [preview_storage().exists(name) for name in files] == [False, False]
    got = alice_api.get(f"/api/avatar-creator/previews/{preview_id}").json()["preview"]
    assert (got["status"], got["imageUrl"]) == ("expired", None)


def test_reaper_fails_previews_stuck_past_their_deadline(alice, project, settings):
    from avatar_creator import services

    settings.FLUX_TIMEOUT = 1
    old = timezone.now() - timedelta(minutes=5)
    stuck = make_preview(alice, project, status="running", deadline_at=old)
    fresh = make_preview(alice, project, status="queued")
    assert services.previews_reap_stuck() == 1
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert (stuck.status, stuck.error_code) == ("failed", "GENERATION_TIMEOUT")
    assert fresh.status == "queued"


def test_project_delete_removes_preview_files_too(alice_api, project):
    from avatar_creator.models import preview_storage

    preview_id = generate(alice_api, project).json()["preview"]["id"]
    preview = Preview.objects.get(pk=preview_id)
    files = [preview.image.name, preview.thumbnail.name]
    assert alice_api.delete(f"/api/avatar-creator/projects/{project.pk}").status_code == 200
    assert not Preview.objects.filter(pk=preview_id).exists()
    assert [preview_storage().exists(name) for name in files] == [False, False]
