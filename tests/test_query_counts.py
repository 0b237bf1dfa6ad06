"""The regression guard of the hot routes (issue 13): how many SQL queries each one makes, pinned exactly.

A count that grows is a slower route at any load (bench/README.md, scenario 3); one that shrinks is a change to
record here. Each API call is authenticated the way API clients are, by a knox Bearer token; the UI's status poll
by the browser's session, the only way the UI is reached. Every test makes one call first, unmeasured: a token's
first use writes its `last_used_at` (then at most once a minute), which is not the steady state of a poller.
"""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import RequestFactory
from django.utils import timezone
from rest_framework import serializers

from avatar_creator import services
from avatar_creator.api.serializers import AvatarOutput, PreviewOutput
from avatar_creator.models import Avatar, Preview, PreviewStatus
from tests.factories import make_avatar, make_preview, make_project

API = "/api/avatar-creator"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def project(alice):
    return make_project(alice, name="Team portraits")


def _warm(client, url: str, **extra):
    response = client.get(url, **extra)
    assert response.status_code == 200
    return response


def test_preview_status_of_a_saved_preview_queries(alice_api, alice, project, django_assert_num_queries):
    preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    avatar, _ = services.preview_save(user=alice, project=project, preview_id=preview.pk, name="Ayu")
    _warm(alice_api, f"{API}/previews/{preview.pk}")
    with django_assert_num_queries(QUERIES["preview_saved"]):
        response = alice_api.get(f"{API}/previews/{preview.pk}")
    assert (response.json()["preview"]["status"], response.json()["preview"]["avatarId"]) == (
        "succeeded",
        str(avatar.pk),
    )


def test_preview_status_while_queued_queries(alice_api, alice, project, django_assert_num_queries):
    preview = make_preview(alice, project)
    _warm(alice_api, f"{API}/previews/{preview.pk}")
    with django_assert_num_queries(QUERIES["preview_queued"]):
        response = alice_api.get(f"{API}/previews/{preview.pk}")
    assert (response.json()["preview"]["status"], response.json()["preview"]["queuePosition"]) == ("queued", 1)


def test_preview_status_while_queued_with_an_estimate_queries(alice_api, alice, project, django_assert_num_queries):
    preview = make_preview(alice, project)
    cache.set(f"lumiku:eta:{preview.generator}", 12.0, 60)  # a generation time measured: etaSeconds is given
    _warm(alice_api, f"{API}/previews/{preview.pk}")
    with django_assert_num_queries(QUERIES["preview_queued"]):  # the queue is counted once for both figures
        response = alice_api.get(f"{API}/previews/{preview.pk}")
    assert (response.json()["preview"]["queuePosition"], response.json()["preview"]["etaSeconds"]) == (1, 12)


def test_generate_preview_accepted_queries(alice_api, project, django_assert_num_queries, held_queue):
    cache.set(f"lumiku:eta:{settings.AVATAR_GENERATOR}", 12.0, 60)
    url = f"{API}/projects/{project.pk}/avatars/generate-preview"
    body = {"prompt": "A friendly portrait of a person with a hat"}
    alice_api.post(url, body, format="json", HTTP_PREFER="respond-async")
    with django_assert_num_queries(QUERIES["generate_preview_accepted"]):
        response = alice_api.post(url, body, format="json", HTTP_PREFER="respond-async")
    assert response.status_code == 202
    assert response.json()["preview"] == response.json()["previews"][0]


def test_avatar_list_of_twenty_queries(alice_api, project, django_assert_num_queries):
    for i in range(20):
        make_avatar(project, name=f"Avatar {i}")
    _warm(alice_api, f"{API}/projects/{project.pk}/avatars")
    with django_assert_num_queries(QUERIES["avatar_list"]):
        response = alice_api.get(f"{API}/projects/{project.pk}/avatars")
    assert sorted(a["name"] for a in response.json()["avatars"]) == sorted(f"Avatar {i}" for i in range(20))


def test_avatar_list_built_again_after_a_change_queries(alice_api, project, django_assert_num_queries):
    for i in range(20):
        make_avatar(project, name=f"Avatar {i}")
    _warm(alice_api, f"{API}/projects/{project.pk}/avatars")
    services.avatar_rename(avatar=Avatar.objects.first(), name="Renamed")
    with django_assert_num_queries(QUERIES["avatar_list_built"]):
        response = alice_api.get(f"{API}/projects/{project.pk}/avatars")
    assert "Renamed" in [a["name"] for a in response.json()["avatars"]]


def test_project_list_queries(alice_api, alice, project, django_assert_num_queries):
    make_project(alice, name="Second")
    make_avatar(project)
    _warm(alice_api, f"{API}/projects")
    with django_assert_num_queries(QUERIES["project_list"]):
        response = alice_api.get(f"{API}/projects")
    projects = {p["name"]: p["avatarCount"] for p in response.json()["projects"]}
    assert projects == {"Team portraits": 1, "Second": 0}


def test_ui_preview_status_poll_queries(client, alice, project, django_assert_num_queries):
    client.force_login(alice)
    preview = make_preview(alice, project)
    url = f"/projects/{project.pk}/previews/{preview.pk}/status"
    _warm(client, url, **HTMX)
    with django_assert_num_queries(QUERIES["ui_status_poll"]):
        response = client.get(url, **HTMX)
    assert response.content.decode().startswith('<div id="preview-progress"')


def test_preview_attempt_queries(alice, project, settings, django_assert_num_queries):
    """The worker's own path (bench scenario 1): take the queued preview (one UPDATE that returns it), mark it
    succeeded (one UPDATE at the version the start left). No lock, no transaction of its own."""
    settings.AVATAR_GENERATOR = "offline"
    preview = make_preview(alice, project)
    with django_assert_num_queries(QUERIES["preview_attempt"]):
        outcome = services.preview_attempt(preview_id=preview.pk)
    preview.refresh_from_db()
    assert (outcome.status, preview.status, preview.attempts, preview.version) == ("succeeded", "succeeded", 1, 2)
    assert preview.image.name and preview.thumbnail.name


def test_preview_output_written_out_equals_the_field_walk_in_every_state(alice, project, settings):
    """PreviewOutput answers by hand (the status poll's cost); DRF's walk over its declared fields is the reference."""
    settings.AVATAR_GENERATOR = "offline"
    saved = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True, ethnicity="Javanese")
    services.preview_save(user=alice, project=project, preview_id=saved.pk, name="Ayu")
    make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True, gender="female", style="casual")
    make_preview(alice, project, status=PreviewStatus.QUEUED, error_code="MODEL_LOADING", attempts=1)
    make_preview(alice, project, status=PreviewStatus.RUNNING, started_at=timezone.now())
    make_preview(alice, project, status=PreviewStatus.FAILED, error_code="GENERATION_FAILED", error_message="No.")
    make_preview(alice, project, status=PreviewStatus.CANCELED)
    make_preview(alice, project, status=PreviewStatus.EXPIRED)
    past = timezone.now() - timedelta(seconds=1)  # expired, not yet purged: `expired`, no links
    make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True, expires_at=past)
    Preview.objects.filter(status=PreviewStatus.QUEUED).update(
        batch_id=uuid.uuid4(), next_attempt_at=timezone.now() + timedelta(seconds=30)
    )
    Preview.objects.filter(status=PreviewStatus.SUCCEEDED).update(finished_at=timezone.now(), duration_ms=2100)
    request = RequestFactory().get("/")
    previews = list(Preview.objects.select_related("avatar").order_by("created_at"))
    assert len({p.status for p in previews}) == 6
    for preview in previews:
        output = PreviewOutput(preview, context={"request": request})
        assert output.data == serializers.Serializer.to_representation(output, preview), preview.status
        assert list(output.data) == list(PreviewOutput.Meta.fields)
    # Datetimes in the current time zone, as DRF writes them (UTC with a Z; another zone with its offset).
    with timezone.override("Asia/Jakarta"):
        output = PreviewOutput(previews[0], context={"request": request})
        assert output.data == serializers.Serializer.to_representation(output, previews[0])
        assert output.data["createdAt"].endswith("+07:00")
    assert PreviewOutput(previews[0], context={"request": request}).data["createdAt"].endswith("Z")


def test_avatar_output_written_out_equals_the_field_walk(alice, project):
    saved = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True, gender="male")
    services.preview_save(user=alice, project=project, preview_id=saved.pk, name="From a preview")
    make_avatar(project, name="Bare", enhanced_prompt=None, seed=None, width=None, height=None)
    make_avatar(
        project, name="Full", enhanced_prompt="enhanced", seed=9, width=1024, height=1024, ethnicity="Sundanese"
    )
    request = RequestFactory().get("/")
    avatars = list(Avatar.objects.order_by("created_at"))
    assert len(avatars) == 3
    for avatar in avatars:
        output = AvatarOutput(avatar, context={"request": request})
        assert output.data == serializers.Serializer.to_representation(output, avatar), avatar.name
        assert list(output.data) == list(AvatarOutput.Meta.fields)


@pytest.mark.parametrize(
    "extra", [{"QUERY_STRING": "include=base64"}, {"HTTP_PREFER": "wait=5"}], ids=["base64", "wait"]
)
def test_preview_status_asking_for_more_queries(alice_api, alice, project, extra, django_assert_num_queries):
    """`include=base64` and `Prefer: wait` (on a finished preview: nothing to wait for) read nothing more."""
    preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    _warm(alice_api, f"{API}/previews/{preview.pk}")
    with django_assert_num_queries(QUERIES["preview_saved"]) as queries:
        response = alice_api.get(f"{API}/previews/{preview.pk}", **extra)
    assert response.status_code == 200
    assert ("imageBase64" in response.json()["preview"]) == ("QUERY_STRING" in extra)
    # The poll reads what it uses (selectors._PREVIEW_WITH_TOKEN): not the owner's password hash, not the webhook.
    sql = queries.captured_queries[0]["sql"]
    assert '"password"' not in sql and '"webhook_url"' not in sql and '"thumbnail"' in sql


@pytest.mark.parametrize(
    "state",
    [
        {"status": PreviewStatus.SUCCEEDED, "files": True},
        {"status": PreviewStatus.RUNNING, "started_at": timezone.now(), "attempts": 1},
        {"status": PreviewStatus.QUEUED, "error_code": "MODEL_LOADING", "attempts": 1, "retry_after": 20.0},
        {"status": PreviewStatus.FAILED, "error_code": "GENERATION_FAILED", "error_message": "No."},
        {"status": PreviewStatus.CANCELED},
        {"status": PreviewStatus.EXPIRED},
    ],
    ids=lambda state: state["status"] + ("_retrying" if state.get("error_code") == "MODEL_LOADING" else ""),
)
def test_preview_status_in_every_state_queries(alice_api, alice, project, state, django_assert_num_queries):
    """The poll reads the preview, its owner and the token in one query whatever the state (a count while queued);
    nothing in any state's answer reads more."""
    preview = make_preview(alice, project, **state)
    cache.set(f"lumiku:eta:{preview.generator}", 12.0, 60)  # an estimate for the running and queued ones
    expected = _warm(alice_api, f"{API}/previews/{preview.pk}").json()
    queued = state["status"] == PreviewStatus.QUEUED
    with django_assert_num_queries(QUERIES["preview_queued" if queued else "preview_saved"]):
        response = alice_api.get(f"{API}/previews/{preview.pk}")
    assert response.json() == expected
    assert response.json()["preview"]["status"] == state["status"]


# Pinned: change a number only together with the change that moves it, and say so in bench/README.md.
# The token lookup (issue 13): knox's two queries and the user's row became one query (the token with its user).
QUERIES = {
    # The status poll with a Bearer token: the preview, its owner and the token in one query (2 before); while queued,
    # + its queue position (a count).
    "preview_saved": 1,
    "preview_queued": 2,
    # The 202 of generate-preview: the token with its user, the project; in one transaction (a savepoint here, inside
    # the test's) the user's row locked, both admission counts in one query, the row; its commit; the queue position.
    # 13 before: the two counts apart, in a savepoint of their own (and its release), the row read back after it was
    # queued, and its avatar looked up (a queued preview has none).
    "generate_preview_accepted": 8,
    # The answer kept whole between changes (answers.py): the token with its user only; built again: + project, avatars.
    "avatar_list": 1,
    "avatar_list_built": 3,
    "project_list": 2,
    "ui_status_poll": 5,
    # Worker: 8 before (two locked changes, each BEGIN, SELECT ... FOR UPDATE, UPDATE, COMMIT); then 3 (a read, an
    # UPDATE at its version, the success's UPDATE); now the read and the first UPDATE are one statement.
    "preview_attempt": 2,
}
