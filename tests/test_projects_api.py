import uuid

import pytest

from avatar_creator.models import Avatar, Project
from tests.factories import make_avatar, make_project

pytestmark = pytest.mark.django_db
BASE = "/api/avatar-creator/projects"


def test_project_create_trims_and_answers_the_project(alice_api):
    response = alice_api.post(BASE, {"name": "  Team  ", "description": "Our staff"}, format="json")
    assert response.status_code == 201
    body = response.json()
    project = body["project"]
    assert body["success"] is True
    assert set(project) == {"id", "name", "description", "avatarCount", "createdAt", "updatedAt"}
    assert (project["name"], project["description"], project["avatarCount"]) == ("Team", "Our staff", 0)
    assert Project.objects.get(pk=project["id"]).name == "Team"


def test_project_create_accepts_trailing_slash(alice_api):
    response = alice_api.post(BASE + "/", {"name": "Team"}, format="json")
    assert response.status_code == 201


def test_project_list_is_newest_first_and_counts_avatars(alice, bob, alice_api):
    older = make_project(alice, "Older")
    newer = make_project(alice, "Newer")
    make_project(bob, "Bob's")
    make_avatar(older)
    make_avatar(older, name="Second")
    response = alice_api.get(BASE)
    assert response.status_code == 200
    projects = response.json()["projects"]
    assert [(p["id"], p["avatarCount"]) for p in projects] == [(str(newer.pk), 0), (str(older.pk), 2)]


def test_project_retrieve_includes_avatars(alice, alice_api):
    project = make_project(alice)
    avatar = make_avatar(project, gender="female", style="professional")
    response = alice_api.get(f"{BASE}/{project.pk}")
    assert response.status_code == 200
    data = response.json()["project"]
    assert data["avatarCount"] == 1
    assert [a["id"] for a in data["avatars"]] == [str(avatar.pk)]
    assert data["avatars"][0]["style"] == "professional"


def test_project_patch_is_partial(alice, alice_api):
    project = make_project(alice, "Old", "Keep me")
    response = alice_api.patch(f"{BASE}/{project.pk}", {"name": "New"}, format="json")
    assert response.status_code == 200
    assert (response.json()["project"]["name"], response.json()["project"]["description"]) == ("New", "Keep me")
    project.refresh_from_db()
    assert (project.name, project.description) == ("New", "Keep me")


def test_project_delete_removes_avatars_and_files(alice, alice_api, django_capture_on_commit_callbacks):
    from django.core.files.storage import default_storage

    project = make_project(alice)
    avatar = make_avatar(project)
    files = [avatar.image.name, avatar.thumbnail.name]
    assert all(default_storage.exists(name) for name in files)
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.delete(f"{BASE}/{project.pk}")
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Project deleted with 1 avatar(s)."}
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Avatar.objects.filter(pk=avatar.pk).exists()
    assert [default_storage.exists(name) for name in files] == [False, False]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 42}, "name"),
        ({"name": ["a"]}, "name"),
        ({}, "name"),
        ({"name": "Ok", "description": "d" * 501}, "description"),
        ({"name": "Ok", "description": {"a": 1}}, "description"),
    ],
)
def test_project_create_rejects_bad_fields(alice_api, payload, field):
    response = alice_api.post(BASE, payload, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert list(error["details"]) == [field]
    assert Project.objects.count() == 0


def test_project_create_rejects_malformed_json(alice_api):
    response = alice_api.generic("POST", BASE, '{"name": "x"', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MALFORMED_REQUEST"


def test_project_create_rejects_deeply_nested_json(alice_api):
    body = "[" * 100_000 + "]" * 100_000
    response = alice_api.generic("POST", BASE, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MALFORMED_REQUEST"


def test_project_create_rejects_a_non_object_body(alice_api):
    response = alice_api.generic("POST", BASE, '["name"]', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_project_create_rejects_unsupported_media_type(alice_api):
    response = alice_api.generic("POST", BASE, "name=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_project_put_is_not_allowed(alice, alice_api):
    project = make_project(alice)
    response = alice_api.put(f"{BASE}/{project.pk}", {"name": "x"}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("suffix", ["/not-a-uuid", "/12345", f"/{uuid.uuid4()}", "/../admin"])
def test_project_unknown_or_malformed_id_is_not_found(alice_api, suffix):
    response = alice_api.get(BASE + suffix)
    assert response.status_code == 404
    assert response.json()["success"] is False
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_unknown_api_path_answers_the_envelope(alice_api):
    response = alice_api.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": {"code": "NOT_FOUND", "message": "Not found."}}


@pytest.mark.parametrize(
    ("method", "suffix", "payload"),
    [
        ("get", "", None),
        ("patch", "", {"name": "Stolen"}),
        ("delete", "", None),
        ("get", "/avatars", None),
    ],
)
def test_project_of_another_user_is_not_found(alice, bob_api, method, suffix, payload):
    project = make_project(alice)
    response = getattr(bob_api, method)(f"{BASE}/{project.pk}{suffix}", payload, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    project.refresh_from_db()
    assert project.name == "Team portraits"


@pytest.mark.parametrize(
    ("method", "suffix"), [("get", ""), ("post", ""), ("get", "/{id}"), ("patch", "/{id}"), ("delete", "/{id}"),
                           ("get", "/{id}/avatars")]
)  # fmt: skip
def test_project_endpoints_require_authentication(alice, anon, method, suffix):
    project = make_project(alice)
    response = getattr(anon, method)(BASE + suffix.format(id=project.pk), {"name": "x"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert Project.objects.count() == 1


def test_project_avatars_list_is_newest_first(alice, alice_api):
    project = make_project(alice)
    first = make_avatar(project, name="First")
    second = make_avatar(project, name="Second")
    response = alice_api.get(f"{BASE}/{project.pk}/avatars")
    assert response.status_code == 200
    avatars = response.json()["avatars"]
    assert [a["id"] for a in avatars] == [str(second.pk), str(first.pk)]
    assert set(avatars[0]) == {
        "id", "projectId", "name", "imageUrl", "thumbnailUrl", "sourceType", "generationPrompt", "enhancedPrompt",
        "gender", "ageRange", "style", "ethnicity", "bodyType", "seed", "width", "height", "createdAt",
    }  # fmt: skip
    assert avatars[0]["imageUrl"].startswith("http://testserver/media/avatars/")
    assert avatars[0]["enhancedPrompt"] is None


def test_browsable_api_works_with_a_session(client, alice):
    client.force_login(alice)
    response = client.get(BASE, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"Project" in response.content


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/avatar-creator/projects" in paths
    assert "bearerAuth" in schema.json()["components"]["securitySchemes"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


@pytest.mark.parametrize("path", ["/api/auth/me", BASE, "/api/avatar-creator/presets"])
def test_options_answers_in_the_success_envelope(alice_api, path):
    """SPEC: success bodies carry success: true; OPTIONS (DRF's description of the route) is one of them."""
    response = alice_api.options(path)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["name"] and "application/json" in body["renders"]
    assert "GET" in response["Allow"]


def test_options_without_credentials_is_the_error_envelope(client):
    response = client.options(BASE)
    assert response.status_code == 401
    assert response.json()["success"] is False
