"""Own photos (SPEC.md, "Own photos"): POST /projects/:id/avatars/upload, through images.py only."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from avatar_creator import images
from avatar_creator.models import Avatar, CreditAccount, CreditLedgerEntry
from tests.factories import make_project

pytestmark = pytest.mark.django_db

BLUE, RED = (0, 0, 255), (255, 0, 0)
ORIENTATION, DESCRIPTION, GPS_IFD = 0x0112, 0x010E, 0x8825


@pytest.fixture
def project(alice):
    return make_project(alice)


def upload_url(project) -> str:
    return f"/api/avatar-creator/projects/{project.pk}/avatars/upload"


def photo(width=200, height=100, *, fmt="JPEG", orientation=None, gps=False) -> bytes:
    """A photo whose left half is blue and right half red, with EXIF orientation, a description and GPS."""
    img = Image.new("RGB", (width, height), RED)
    img.paste(BLUE, (0, 0, width // 2, height))
    exif = Image.Exif()
    exif[DESCRIPTION] = "secret description"
    if orientation:
        exif[ORIENTATION] = orientation
    if gps:
        exif.get_ifd(GPS_IFD).update({1: "S", 2: (6.0, 12.0, 30.0), 3: "E", 4: (106.0, 49.0, 0.0)})
    buffer = io.BytesIO()
    img.save(buffer, fmt, exif=exif.tobytes())
    return buffer.getvalue()


def post(api, project, raw: bytes | None, *, filename="me.jpg", content_type="image/jpeg", **fields):
    data = {"name": "Me", **fields}
    if raw is not None:
        data["image"] = SimpleUploadedFile(filename, raw, content_type=content_type)
    return api.post(upload_url(project), data, format="multipart")


def stored(avatar: Avatar) -> Image.Image:
    with avatar.image.open("rb") as handle:
        return Image.open(io.BytesIO(handle.read()))


def error_of(response) -> tuple[int, str]:
    body = response.json()
    assert body["success"] is False
    return response.status_code, body["error"]["code"]


def test_upload_creates_an_uploaded_avatar(alice_api, project):
    response = post(alice_api, project, photo(), gender="female", style="casual", bodyType="half_body")
    assert response.status_code == 201
    body = response.json()
    avatar = Avatar.objects.get()
    assert body["avatar"]["id"] == str(avatar.pk)
    assert (body["avatar"]["sourceType"], body["avatar"]["name"], body["avatar"]["gender"]) == (
        "uploaded",
        "Me",
        "female",
    )
    assert (avatar.width, avatar.height, avatar.project_id) == (200, 100, project.pk)
    with avatar.thumbnail.open("rb") as handle:
        assert Image.open(io.BytesIO(handle.read())).size == (300, 300)


def test_upload_applies_the_orientation_and_removes_the_metadata(alice_api, project):
    raw = photo(orientation=6, gps=True)
    assert Image.open(io.BytesIO(raw)).getexif().get_ifd(GPS_IFD)
    assert post(alice_api, project, raw).status_code == 201
    image = stored(Avatar.objects.get())
    # Orientation 6 turns the picture a quarter clockwise: the blue left half is now on top.
    assert image.size == (100, 200)
    top, bottom = image.convert("RGB").getpixel((50, 20)), image.convert("RGB").getpixel((50, 180))
    assert (top[2] > 200, bottom[0] > 200) == (True, True)
    exif = image.getexif()
    assert (dict(exif), exif.get_ifd(GPS_IFD)) == ({}, {})
    with Avatar.objects.get().image.open("rb") as handle:
        assert b"secret description" not in handle.read()


def test_upload_downscales_a_large_photo_to_2048(alice_api, project):
    assert post(alice_api, project, photo(3000, 1500)).status_code == 201
    avatar = Avatar.objects.get()
    assert (avatar.width, avatar.height) == (2048, 1024)
    assert stored(avatar).size == (2048, 1024)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_upload_accepts_png_and_webp(alice_api, project, fmt):
    assert post(alice_api, project, photo(fmt=fmt), filename=f"me.{fmt.lower()}").status_code == 201
    assert Avatar.objects.get().source_type == "uploaded"


def test_upload_over_4096_px_is_refused(alice_api, project):
    assert error_of(post(alice_api, project, photo(4097, 10))) == (413, "PAYLOAD_TOO_LARGE")
    assert Avatar.objects.count() == 0


def test_upload_over_10_mb_is_refused_before_decoding(alice_api, project, monkeypatch):
    decoded = []
    monkeypatch.setattr(images, "load_image", lambda *a, **k: decoded.append(1))
    raw = photo() + b"\0" * (images.MAX_IMAGE_BYTES + 1)
    assert error_of(post(alice_api, project, raw)) == (413, "PAYLOAD_TOO_LARGE")
    assert (decoded, Avatar.objects.count()) == ([], 0)


@pytest.mark.parametrize(
    ("raw", "filename", "content_type"),
    [
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "me.svg", "image/svg+xml"),
        (b"<html><body><script>alert(1)</script></body></html>", "me.jpg", "image/jpeg"),
        (b"GIF89a" + b"\0" * 64, "me.gif", "image/gif"),
        (b"", "me.jpg", "image/jpeg"),
    ],
    ids=["svg", "html-named-jpg", "gif", "empty"],
)
def test_upload_of_something_that_is_not_a_photo_is_invalid(alice_api, project, raw, filename, content_type):
    assert error_of(post(alice_api, project, raw, filename=filename, content_type=content_type)) == (
        400,
        "INVALID_IMAGE",
    )
    assert Avatar.objects.count() == 0


def test_upload_of_a_truncated_photo_is_invalid(alice_api, project):
    raw = photo(400, 400)
    assert error_of(post(alice_api, project, raw[: len(raw) // 2])) == (400, "INVALID_IMAGE")
    assert Avatar.objects.count() == 0


def test_upload_of_a_jpeg_html_polyglot_stores_only_the_reencoded_pixels(alice_api, project):
    raw = photo() + b"<html><script>alert(1)</script></html>"
    assert post(alice_api, project, raw).status_code == 201
    with Avatar.objects.get().image.open("rb") as handle:
        assert b"<script>" not in handle.read()


def test_upload_of_a_multipart_body_without_its_boundary_says_so(alice_api, project):
    response = alice_api.post(upload_url(project), b"--not-it\r\nrubbish", content_type="multipart/form-data")
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (400, "MALFORMED_REQUEST")
    assert error["message"] == "The request body is not valid multipart/form-data."
    assert Avatar.objects.count() == 0


def test_upload_without_an_image_is_a_validation_error(alice_api, project):
    response = post(alice_api, project, None)
    assert error_of(response) == (400, "VALIDATION_ERROR")
    assert list(response.json()["error"]["details"]) == ["image"]


def test_upload_without_a_name_is_a_validation_error(alice_api, project):
    response = post(alice_api, project, photo(), name="")
    assert error_of(response) == (400, "VALIDATION_ERROR")
    assert list(response.json()["error"]["details"]) == ["name"]


def test_upload_as_json_is_an_unsupported_media_type(alice_api, project):
    response = alice_api.post(upload_url(project), {"name": "Me", "image": "abc"}, format="json")
    assert error_of(response) == (415, "UNSUPPORTED_MEDIA_TYPE")


def test_upload_into_another_users_project_is_not_found(bob_api, project):
    assert error_of(post(bob_api, project, photo())) == (404, "NOT_FOUND")
    assert Avatar.objects.count() == 0


def test_upload_is_free_by_default(alice_api, alice, project):
    before = CreditAccount.objects.get(user=alice).balance
    assert post(alice_api, project, photo()).status_code == 201
    assert CreditAccount.objects.get(user=alice).balance == before


def test_upload_charges_the_upload_cost(alice_api, alice, project, settings):
    settings.AVATAR_UPLOAD_COST = 3
    before = CreditAccount.objects.get(user=alice).balance
    assert post(alice_api, project, photo()).status_code == 201
    avatar = Avatar.objects.get()
    assert CreditAccount.objects.get(user=alice).balance == before - 3
    assert CreditLedgerEntry.objects.filter(avatar=avatar).values_list("delta", flat=True).get() == -3


def test_upload_without_enough_credits_writes_nothing(alice_api, alice, project, settings):
    settings.AVATAR_UPLOAD_COST = 10_000
    assert error_of(post(alice_api, project, photo())) == (402, "INSUFFICIENT_CREDITS")
    assert Avatar.objects.count() == 0


def test_upload_full_body_thumbnail_keeps_the_top_of_the_photo(alice_api, project):
    img = Image.new("RGB", (300, 900), BLUE)
    img.paste(RED, (0, 0, 300, 120))  # the head: only in the top eighth of a tall photo
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    response = post(alice_api, project, buffer.getvalue(), filename="me.png", content_type="image/png",
                    bodyType="full_body")  # fmt: skip
    assert response.status_code == 201
    with Avatar.objects.get().thumbnail.open("rb") as handle:
        thumbnail = Image.open(io.BytesIO(handle.read())).convert("RGB")
    assert thumbnail.size == (300, 300)
    red, green, blue = thumbnail.getpixel((150, 10))
    assert red > 200 and blue < 60


def test_refuse_oversized_checks_the_size_alone():
    images.refuse_oversized(images.MAX_IMAGE_BYTES)
    with pytest.raises(images.ImageRejected) as refused:
        images.refuse_oversized(images.MAX_IMAGE_BYTES + 1)
    assert (refused.value.code, refused.value.status) == ("PAYLOAD_TOO_LARGE", 413)
