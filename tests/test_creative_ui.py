"""The creative loop in the browser UI through Django's test client: presets, variations and the pick grid, the
history, "More like this", own photos and project covers."""

import io
import uuid
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from avatar_creator.models import Avatar, CreditAccount, Preset, Preview, PreviewStatus
from tests.factories import PROMPT, load_presets, make_avatar, make_preview, make_project
from tests.test_ui_views import HTMX, text

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def presets(db):
    load_presets()


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def project(alice):
    return make_project(alice)


def balance(user) -> int:
    return CreditAccount.objects.get(user=user).balance


def batch(owner, project, size: int, **fields) -> list[Preview]:
    """`size` succeeded previews with their files, asked for together."""
    batch_id = uuid.uuid4()
    previews = [make_preview(owner, project, status=PreviewStatus.SUCCEEDED, files=True, seed=i, **fields)
                for i in range(size)]  # fmt: skip
    Preview.objects.filter(pk__in=[p.pk for p in previews]).update(batch_id=batch_id)
    for preview in previews:
        preview.batch_id = batch_id
    return previews


def preview_url(project, preview, action: str = "") -> str:
    return f"/projects/{project.pk}/previews/{preview.pk}" + (f"/{action}" if action else "")


# Presets and starting points


def test_avatar_form_opens_with_the_preset_gallery_by_category(alice_client, project):
    response = alice_client.get(f"/projects/{project.pk}/avatars/new", **HTMX)
    groups = response.context["preset_groups"]
    assert [label for label, _ in groups] == ["Professional", "Casual", "Traditional", "Sporty", "Creative"]
    assert sum(len(presets) for _, presets in groups) == Preset.objects.count() >= 20
    kebaya = Preset.objects.get(slug="kebaya")
    assert f'hx-get="/projects/{project.pk}/avatars/new?preset={kebaya.pk}"' in response.content.decode()
    assert "Start from a preset" in text(response)


def test_avatar_form_from_a_preset_is_filled_with_its_fields(alice_client, project):
    preset = Preset.objects.get(slug="batik-shirt")
    response = alice_client.get(f"/projects/{project.pk}/avatars/new?preset={preset.pk}", **HTMX)
    form = response.context["form"]
    assert (form["prompt"].value(), form["style"].value(), form["ethnicity"].value()) == (
        preset.prompt,
        "traditional",
        "Indonesian",
    )
    assert "Started from “Batik shirt”." in text(response)
    assert "preset_groups" not in response.context


def test_avatar_form_from_an_unknown_preset_is_not_found(alice_client, project):
    response = alice_client.get(f"/projects/{project.pk}/avatars/new?preset={uuid.uuid4()}", **HTMX)
    assert response.status_code == 404


def test_more_like_this_fills_the_form_from_the_avatar(alice_client, project):
    avatar = make_avatar(project, gender="male", style="sporty", body_type="full_body")
    lightbox = alice_client.get(f"/avatars/{avatar.pk}", **HTMX).content.decode()
    assert f'hx-get="/projects/{project.pk}/avatars/new?from={avatar.pk}"' in lightbox
    response = alice_client.get(f"/projects/{project.pk}/avatars/new?from={avatar.pk}", **HTMX)
    form = response.context["form"]
    assert (form["prompt"].value(), form["gender"].value(), form["body_type"].value()) == (
        avatar.generation_prompt,
        "male",
        "full_body",
    )


def test_more_like_this_of_another_users_avatar_is_not_found(client, bob, project):
    avatar = make_avatar(project)
    client.force_login(bob)
    bobs = make_project(bob)
    assert client.get(f"/projects/{bobs.pk}/avatars/new?from={avatar.pk}", **HTMX).status_code == 404


# Variations


def test_preview_create_with_variations_asks_for_a_batch(alice_client, project, held_queue):
    response = alice_client.post(
        f"/projects/{project.pk}/previews", {"prompt": PROMPT, "body_type": "half_body", "count": "4"}, **HTMX
    )
    rows = list(Preview.objects.order_by("seed"))
    assert len(rows) == 4 and len({r.batch_id for r in rows}) == 1
    assert [r.seed - rows[0].seed for r in rows] == [0, 1, 2, 3]
    assert response.context["preview"] in rows


def test_preview_create_refuses_an_unoffered_count(alice_client, project):
    response = alice_client.post(
        f"/projects/{project.pk}/previews", {"prompt": PROMPT, "body_type": "half_body", "count": "3"}, **HTMX
    )
    assert response.status_code == 422
    assert response.context["variations"].errors["count"]
    assert Preview.objects.count() == 0


def test_finished_batch_shows_the_pick_grid(alice_client, alice, project):
    previews = batch(alice, project, 2)
    response = alice_client.get(preview_url(project, previews[0], "status"), **HTMX)
    html = response.content.decode()
    assert "Pick your favourites" in text(response)
    assert [p.pk for p in response.context["batch"]] == [p.pk for p in previews]
    for preview in previews:
        assert f'name="pick" value="{preview.pk}"' in html


def test_pick_grid_saves_the_picked_previews_each_charged(alice_client, alice, project, settings):
    settings.AVATAR_SAVE_COST = 10
    previews = batch(alice, project, 4)
    picked = [previews[0], previews[2]]
    body = {"grid": "1", "name": "Ayu", "pick": [str(p.pk) for p in picked]}
    response = alice_client.post(preview_url(project, previews[0], "save"), body, **HTMX)
    assert response.status_code == 200
    avatars = Avatar.objects.order_by("name")
    assert [(a.preview_id, a.name) for a in avatars] == [(picked[0].pk, "Ayu - Variation 1"),
                                                         (picked[1].pk, "Ayu - Variation 2")]  # fmt: skip
    assert balance(alice) == 80
    assert "Saved 2 avatars." in text(response)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # No name: the description's first words stand for it, and the picks still tell themselves apart.
        ("", [f"Professional Indonesian woman with modern hijab - Variation {n}" for n in (1, 2)]),
        # The longest name: cut to leave room for the number, never the number cut off.
        ("N" * 100, [f"{'N' * 86} - Variation {n}" for n in (1, 2)]),
    ],
    ids=["blank", "longest"],
)
def test_pick_grid_names_each_saved_avatar_apart(alice_client, alice, project, name, expected):
    previews = batch(alice, project, 2)
    body = {"grid": "1", "name": name, "pick": [str(p.pk) for p in previews]}
    assert alice_client.post(preview_url(project, previews[0], "save"), body, **HTMX).status_code == 200
    names = sorted(Avatar.objects.values_list("name", flat=True))
    assert names == expected and all(len(n) <= 100 for n in names)


def test_pick_grid_with_nothing_picked_saves_nothing(alice_client, alice, project):
    previews = batch(alice, project, 2)
    response = alice_client.post(preview_url(project, previews[0], "save"), {"grid": "1"}, **HTMX)
    assert response.status_code == 422
    assert "Nothing picked" in text(response)
    assert (Avatar.objects.count(), balance(alice)) == (0, 100)


def test_pick_grid_ignores_previews_of_another_batch(alice_client, alice, project):
    previews, other = batch(alice, project, 2), batch(alice, project, 1)
    body = {"grid": "1", "pick": [str(other[0].pk)]}
    response = alice_client.post(preview_url(project, previews[0], "save"), body, **HTMX)
    assert response.status_code == 422
    assert Avatar.objects.count() == 0


def test_regenerate_all_replaces_the_batch_with_as_many_new_previews(alice_client, alice, project, held_queue):
    old = batch(alice, project, 2)
    alice_client.post(preview_url(project, old[0], "regenerate"), {"grid": "1"}, **HTMX)
    new = Preview.objects.exclude(pk__in=[p.pk for p in old])
    assert new.count() == 2 and len({p.batch_id for p in new}) == 1
    assert set(Preview.objects.filter(pk__in=[p.pk for p in old]).values_list("status", flat=True)) == {"expired"}


def test_regenerate_refused_keeps_the_preview_on_screen_and_savable(alice_client, alice, project, settings):
    settings.AVATAR_PREVIEW_RATE = "1/hour"
    preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    response = alice_client.post(preview_url(project, preview, "regenerate"), **HTMX)
    preview.refresh_from_db()
    assert response.status_code == 429
    assert (preview.status, bool(preview.image)) == (PreviewStatus.SUCCEEDED, True)
    assert response.context["preview"] == preview
    assert "Too many previews right now" in text(response)
    assert Preview.objects.count() == 1


# History


def test_change_the_description_keeps_the_preview(alice_client, alice, project):
    preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True, style="sporty")
    response = alice_client.get(preview_url(project, preview, "edit"), **HTMX)
    preview.refresh_from_db()
    assert preview.status == PreviewStatus.SUCCEEDED
    assert (response.context["form"]["prompt"].value(), response.context["form"]["style"].value()) == (
        PROMPT,
        "sporty",
    )
    assert [p.pk for p in response.context["history"]] == [preview.pk]


def test_history_reopens_a_preview_to_save_it(alice_client, alice, project):
    preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    response = alice_client.get(preview_url(project, preview), **HTMX)
    assert response.context["preview"] == preview
    assert "Your preview" in text(response)
    alice_client.post(preview_url(project, preview, "save"), {"name": "Again"}, **HTMX)
    assert Avatar.objects.get().preview_id == preview.pk


def test_history_reopen_of_an_expired_preview_offers_its_description(alice_client, alice, project):
    preview = make_preview(alice, project, status=PreviewStatus.EXPIRED)
    response = alice_client.get(preview_url(project, preview), **HTMX)
    assert response.context["form"]["prompt"].value() == PROMPT
    assert "That preview has expired." in text(response)


def test_history_reopen_of_another_users_preview_is_not_found(client, bob, alice, project):
    preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    client.force_login(bob)
    assert client.get(preview_url(project, preview), **HTMX).status_code == 404


def test_project_page_lists_recent_previews_with_their_expiry(alice_client, alice, project):
    now = timezone.now()
    kept = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True,
                        expires_at=now + timedelta(hours=5, minutes=1))  # fmt: skip
    make_preview(alice, project, status=PreviewStatus.FAILED)
    make_preview(alice, project, status=PreviewStatus.EXPIRED)
    response = alice_client.get(f"/projects/{project.pk}")
    assert [p.pk for p in response.context["recent_previews"]] == [kept.pk]
    page = text(response)
    assert "Recent previews" in page
    assert "Expires in 5 hours" in page
    assert f'hx-get="/projects/{project.pk}/previews/{kept.pk}"' in response.content.decode()


# Own photos and covers


def jpeg(width=120, height=80) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_upload_page_offers_the_photo_field_and_persona_fields(alice_client, project):
    response = alice_client.get(f"/projects/{project.pk}/avatars/upload", **HTMX)
    html = response.content.decode()
    assert 'accept="image/jpeg,image/png,image/webp"' in html
    assert 'hx-encoding="multipart/form-data"' in html
    assert list(response.context["form"].fields) == ["image", "name", "gender", "age_range", "style", "ethnicity",
                                                     "body_type"]  # fmt: skip


def test_upload_without_a_photo_says_so_at_the_photo_field(alice_client, project):
    """The photo field is laid out by hand (its label above the drop zone): its label, help text and error stay tied to
    the input as Django ties them for every other field."""
    response = alice_client.post(f"/projects/{project.pk}/avatars/upload", {"name": "Me", "body_type": "half_body"},
                                 **HTMX)  # fmt: skip
    html = response.content.decode()
    assert response.status_code == 422
    assert '<label for="id_image">Photo</label>' in html
    assert 'aria-describedby="id_image_helptext id_image_error"' in html
    assert 'id="id_image_helptext"' in html and '<ul class="errorlist" id="id_image_error">' in html
    assert Avatar.objects.count() == 0


def test_upload_adds_the_photo_as_an_uploaded_avatar(alice_client, alice, project):
    photo = SimpleUploadedFile("me.jpg", jpeg(), content_type="image/jpeg")
    response = alice_client.post(f"/projects/{project.pk}/avatars/upload",
                                 {"image": photo, "name": "Me", "body_type": "half_body"}, **HTMX)  # fmt: skip
    avatar = Avatar.objects.get()
    assert (avatar.source_type, avatar.name, avatar.width, avatar.height) == ("uploaded", "Me", 120, 80)
    assert f'id="avatar-{avatar.pk}"' in response.content.decode()
    assert balance(alice) == 100


def test_upload_of_a_file_that_is_not_a_photo_shows_the_error(alice_client, project):
    svg = SimpleUploadedFile("me.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", content_type="image/svg+xml")
    response = alice_client.post(
        f"/projects/{project.pk}/avatars/upload", {"image": svg, "name": "Me", "body_type": "half_body"}, **HTMX
    )
    assert response.status_code == 422
    assert response.context["error"]["code"] == "INVALID_IMAGE"
    assert Avatar.objects.count() == 0


def test_upload_into_another_users_project_is_not_found(client, bob, project):
    client.force_login(bob)
    photo = SimpleUploadedFile("me.jpg", jpeg(), content_type="image/jpeg")
    response = client.post(
        f"/projects/{project.pk}/avatars/upload", {"image": photo, "name": "Me", "body_type": "half_body"}, **HTMX
    )
    assert response.status_code == 404
    assert Avatar.objects.count() == 0


def test_project_cards_show_the_latest_three_thumbnails(alice_client, alice, project):
    avatars = [make_avatar(project, name=f"A{i}") for i in range(4)]
    empty = make_project(alice, name="Empty")
    response = alice_client.get("/")
    cards = {p.pk: p.covers for p in response.context["projects"]}
    assert [a.pk for a in cards[project.pk]] == [a.pk for a in reversed(avatars[1:])]
    assert cards[empty.pk] == []
    assert response.content.decode().count('class="project-covers"') == 1


def test_admin_lists_the_presets_with_their_thumbnails(admin_client):
    response = admin_client.get("/admin/avatar_creator/preset/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<img src="/static/img/presets/kebaya.webp"' in html
    assert "Baju bodo" in html


def test_admin_edits_a_preset(admin_client):
    preset = Preset.objects.get(slug="ulos")
    page = admin_client.get(f"/admin/avatar_creator/preset/{preset.pk}/change/")
    data = {**page.context["adminform"].form.initial, "name": "Ulos Batak", "description": "Woven cloth"}
    data = {key: ("" if value is None else value) for key, value in data.items() if key != "thumbnail"}
    response = admin_client.post(f"/admin/avatar_creator/preset/{preset.pk}/change/", data)
    preset.refresh_from_db()
    assert (response.status_code, preset.name, preset.description) == (302, "Ulos Batak", "Woven cloth")
