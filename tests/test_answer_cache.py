"""A project's avatar list kept whole between changes (avatar_creator/answers.py, issue 13): served from the cache
(Redis, as in production) while nothing changed, never stale after any change, only to the project's owner."""

import pytest
from django.core.cache import cache
from django.test import override_settings

from avatar_creator import answers, services
from avatar_creator.models import Avatar
from tests.factories import make_avatar, make_project
from tests.services import redis_url, require_redis

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def redis_cache(settings):
    require_redis()
    settings.CACHES = {"default": {"BACKEND": "lumiku.cache.RedisCache", "LOCATION": redis_url()}}
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def project(alice):
    project = make_project(alice)
    make_avatar(project, name="First")
    return project


def names(client, project_id) -> list[str]:
    response = client.get(f"/api/avatar-creator/projects/{project_id}/avatars")
    assert response.status_code == 200, response.content
    return [avatar["name"] for avatar in response.json()["avatars"]]


def test_a_kept_list_is_served_without_reading_the_project_or_its_avatars(alice_api, project,
                                                                          django_assert_num_queries):  # fmt: skip
    first = alice_api.get(f"/api/avatar-creator/projects/{project.pk}/avatars").json()
    with django_assert_num_queries(1):  # the token with its user
        again = alice_api.get(f"/api/avatar-creator/projects/{project.pk}/avatars").json()
    assert again == first


@pytest.mark.parametrize("change", ["add", "rename", "delete", "admin edit", "admin delete"])
def test_every_change_of_the_avatars_shows_on_the_next_read(alice_api, admin_client, project, change):
    assert names(alice_api, project.pk) == ["First"]
    avatar = Avatar.objects.get()
    if change == "add":
        make_avatar(project, name="Second")
        expected = ["Second", "First"]
    elif change == "rename":
        services.avatar_rename(avatar=avatar, name="Renamed")
        expected = ["Renamed"]
    elif change == "delete":
        services.avatar_delete(avatar=avatar)
        expected = []
    elif change == "admin edit":
        page = admin_client.get(f"/admin/avatar_creator/avatar/{avatar.pk}/change/")
        form = {key: value for key, value in page.context["adminform"].form.initial.items() if value is not None}
        form.update(name="Edited in the admin", project=project.pk, seed=form.get("seed") or "")
        response = admin_client.post(f"/admin/avatar_creator/avatar/{avatar.pk}/change/", form)
        assert response.status_code == 302, response.context["adminform"].form.errors
        expected = ["Edited in the admin"]
    else:
        response = admin_client.post(f"/admin/avatar_creator/avatar/{avatar.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302
        expected = []
    assert names(alice_api, project.pk) == expected


def test_a_deleted_project_is_not_found_even_with_its_list_kept(alice_api, project):
    names(alice_api, project.pk)
    services.project_delete(project=project)
    response = alice_api.get(f"/api/avatar-creator/projects/{project.pk}/avatars")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "NOT_FOUND")


def test_a_kept_list_is_only_for_its_owner(alice_api, client_for, make_user, project):
    names(alice_api, project.pk)
    bob = client_for(make_user("bob"))
    response = bob.get(f"/api/avatar-creator/projects/{project.pk}/avatars")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "NOT_FOUND")


def test_the_id_spelled_in_capitals_names_the_same_kept_list(alice_api, project):
    upper = str(project.pk).upper()
    assert names(alice_api, upper) == ["First"]
    services.avatar_rename(avatar=Avatar.objects.get(), name="Renamed")
    assert names(alice_api, upper) == ["Renamed"]


def test_an_answer_built_before_a_change_is_never_served_after_it(alice, project):
    """A reader reads the rows, a writer changes them and commits, then the reader keeps what it read: the next reader
    must not get it."""
    avatar = Avatar.objects.get()

    def stale_build():
        old = [{"name": avatar.name}]  # read before the change
        services.avatar_rename(avatar=Avatar.objects.get(pk=avatar.pk), name="Renamed")  # committed meanwhile
        return old

    kept = answers.avatar_list(project_id=project.pk, owner_id=alice.pk, origin="http://x/", build=stale_build)
    assert kept == [{"name": "First"}]
    fresh = answers.avatar_list(project_id=project.pk, owner_id=alice.pk, origin="http://x/",
                                build=lambda: [{"name": Avatar.objects.get().name}])  # fmt: skip
    assert fresh == [{"name": "Renamed"}]


def test_links_are_kept_per_origin(alice, client_for, project):
    api = client_for(alice)
    here = api.get(f"/api/avatar-creator/projects/{project.pk}/avatars").json()["avatars"][0]["imageUrl"]
    there = api.get(f"/api/avatar-creator/projects/{project.pk}/avatars", HTTP_HOST="localhost:8443", secure=True)
    assert here.startswith("http://testserver/")
    assert there.json()["avatars"][0]["imageUrl"].startswith("https://localhost:8443/")


def test_the_list_is_answered_with_the_cache_unreachable(alice_api, project):
    unreachable = {"default": {"BACKEND": "lumiku.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
    with override_settings(CACHES=unreachable):
        assert names(alice_api, project.pk) == ["First"]
        make_avatar(project, name="Second")
        assert names(alice_api, project.pk) == ["Second", "First"]


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
def test_a_kept_list_is_written_as_drfs_renderer_writes_it(alice_api, project, accept):
    """The kept list's JSON is written into the envelope as it is; the bytes are those DRF's renderer writes for the
    same answer (asked with `?format=json`, which goes DRF's way)."""
    make_avatar(project, name="Zoë \u2028 <b>")  # non-ASCII, a line separator DRF escapes, markup
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    path = f"/api/avatar-creator/projects/{project.pk}/avatars"
    alice_api.get(path)  # built and kept
    kept = alice_api.get(path, **headers)
    rendered = alice_api.get(f"{path}?format=json")
    assert kept.status_code == rendered.status_code == 200
    assert kept.content == rendered.content
    assert kept["Content-Type"] == rendered["Content-Type"] == "application/json"
    assert kept["Vary"] == rendered["Vary"] and kept["Allow"] == rendered["Allow"]
    assert [avatar["name"] for avatar in kept.json()["avatars"]] == ["Zoë \u2028 <b>", "First"]


def test_a_kept_list_is_shown_in_the_browsable_api(alice, client, project):
    client.force_login(alice)
    path = f"/api/avatar-creator/projects/{project.pk}/avatars"
    client.get(path, HTTP_ACCEPT="application/json")  # built and kept
    page = client.get(path, HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert "First" in page.content.decode()
