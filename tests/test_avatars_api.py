import uuid

import pytest
from django.core.files.storage import default_storage

from avatar_creator.models import Avatar
from tests.factories import make_avatar, make_project

pytestmark = pytest.mark.django_db
BASE = "/api/avatar-creator/avatars"


@pytest.fixture
def avatar(alice):
    return make_avatar(make_project(alice), name="Ayu", gender="female", age_range="adult", body_type="full_body")


def test_avatar_retrieve_answers_every_field(alice_api, avatar):
    response = alice_api.get(f"{BASE}/{avatar.pk}")
    assert response.status_code == 200
    data = response.json()["avatar"]
    assert data["id"] == str(avatar.pk)
    assert data["projectId"] == str(avatar.project_id)
    assert (data["name"], data["gender"], data["ageRange"], data["bodyType"]) == ("Ayu", "female", "adult", "full_body")
    assert (data["style"], data["ethnicity"], data["seed"], data["sourceType"]) == (None, None, None, "ai_generated")
    assert data["thumbnailUrl"] == f"http://testserver/media/{avatar.thumbnail.name}"


def test_avatar_image_url_serves_the_file(client, alice_api, avatar):
    url = alice_api.get(f"{BASE}/{avatar.pk}").json()["avatar"]["imageUrl"]
    response = client.get(url.removeprefix("http://testserver"))
    assert response.status_code == 200
    assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"


def test_avatar_rename(alice_api, avatar):
    response = alice_api.patch(f"{BASE}/{avatar.pk}/", {"name": " Ayu at work "}, format="json")
    assert response.status_code == 200
    assert response.json()["avatar"]["name"] == "Ayu at work"
    avatar.refresh_from_db()
    assert avatar.name == "Ayu at work"


@pytest.mark.parametrize("payload", [{"name": ""}, {"name": "x" * 101}, {"name": None}, {"name": 7}, {}])
def test_avatar_rename_rejects_bad_names(alice_api, avatar, payload):
    response = alice_api.patch(f"{BASE}/{avatar.pk}", payload, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["name"]
    avatar.refresh_from_db()
    assert avatar.name == "Ayu"


def test_avatar_delete_removes_row_and_files(alice_api, avatar, django_capture_on_commit_callbacks):
    files = [avatar.image.name, avatar.thumbnail.name]
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.delete(f"{BASE}/{avatar.pk}")
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Avatar deleted."}
    assert not Avatar.objects.filter(pk=avatar.pk).exists()
    assert [default_storage.exists(name) for name in files] == [False, False]


@pytest.mark.parametrize(("method", "payload"), [("get", None), ("patch", {"name": "Mine now"}), ("delete", None)])
def test_avatar_of_another_user_is_not_found(bob_api, avatar, method, payload):
    response = getattr(bob_api, method)(f"{BASE}/{avatar.pk}", payload, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    avatar.refresh_from_db()
    assert avatar.name == "Ayu"


@pytest.mark.parametrize(("method", "payload"), [("get", None), ("patch", {"name": "x"}), ("delete", None)])
def test_avatar_endpoints_require_authentication(anon, avatar, method, payload):
    response = getattr(anon, method)(f"{BASE}/{avatar.pk}", payload, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert Avatar.objects.filter(pk=avatar.pk, name="Ayu").exists()


@pytest.mark.parametrize("avatar_id", [str(uuid.uuid4()), "zzzz", "0" * 36])
def test_avatar_unknown_id_is_not_found(alice_api, avatar_id):
    response = alice_api.get(f"{BASE}/{avatar_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_avatar_list_is_not_exposed_without_a_project(alice_api, avatar):
    response = alice_api.get(BASE)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
