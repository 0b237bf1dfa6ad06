"""What the image API sends is never published as it came: it is decoded and re-encoded by images.py."""

import base64
import io

import pytest
from PIL import Image

from avatar_creator import files
from avatar_creator.models import Avatar, Preview
from tests.factories import make_project
from tests.fake_image_api import Reply

pytestmark = pytest.mark.django_db(transaction=True)
PROMPT = "Professional Indonesian woman with modern hijab, smiling"
TRAILER = b"<html><script>alert(document.cookie)</script></html>"


def test_generated_image_with_appended_html_is_stored_reencoded(alice_api, alice, settings, fake_image_api):
    settings.AVATAR_GENERATOR, settings.HUGGINGFACE_API_KEY = "huggingface", "hf_test_key_123"
    settings.HF_INFERENCE_URL = f"{fake_image_api.url}/models/XLabs-AI/flux-RealismLora"
    fake_image_api.script(Reply("ok", trailer=TRAILER))
    project = make_project(alice)
    url = f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview"
    response = alice_api.post(url, {"prompt": PROMPT, "seed": 5}, format="json")
    assert response.status_code == 200
    image = base64.b64decode(response.json()["preview"]["imageBase64"])
    assert TRAILER not in image
    assert Image.open(io.BytesIO(image)).size == (1024, 1024)
    preview = Preview.objects.get(owner=alice)
    (stored,) = files.read_bytes(files.preview_storage(), preview.image.name)
    assert stored == image
    assert b"<script" not in stored

    saved = alice_api.post(
        f"/api/avatar-creator/projects/{project.pk}/avatars/save-preview", {"previewId": str(preview.pk)}, format="json"
    )
    assert saved.status_code == 201
    avatar = Avatar.objects.get(pk=saved.json()["avatar"]["id"])
    (public,) = files.read_bytes(files.avatar_storage(), avatar.image.name)
    assert b"<script" not in public
