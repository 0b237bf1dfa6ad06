"""Admission of previews: the rate and the in-flight limit hold under a burst of parallel requests on PostgreSQL,
and previews that failed through no fault of the user do not use up the rate."""

from datetime import timedelta

import pytest
from django.utils import timezone

from avatar_creator.models import Preview, PreviewStatus
from tests.factories import make_preview, make_project
from tests.fake_image_api import Reply
from tests.services import require_postgresql
from tests.test_trust_money import PROMPT, _post, at_once

ASYNC = {"Prefer": "respond-async"}


def generate(api, project):
    url = f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview"
    return api.post(url, {"prompt": PROMPT}, format="json", headers=ASYNC)


def user_with_previews(user, status: str, count: int):
    project = make_project(user)
    for _ in range(count):
        make_preview(user, project, status=status)
    return user, project


def burst(live_server, user, project, *, times: int) -> list:
    """`times` parallel generate-preview calls (respond-async) by `user`, all let go at once."""
    url = f"{live_server.url}/api/avatar-creator/projects/{project.pk}/avatars/generate-preview"
    return at_once([lambda: _post(url, user.token, {"prompt": PROMPT}, ASYNC) for _ in range(times)])


@pytest.mark.django_db(transaction=True)
def test_preview_rate_burst_never_admits_more_than_the_limit(live_server, make_user, settings):
    require_postgresql()
    settings.AVATAR_PREVIEW_RATE = "10/hour"
    settings.AVATAR_MAX_ACTIVE_PREVIEWS = 100
    user, project = user_with_previews(make_user("burst"), PreviewStatus.SUCCEEDED, 4)
    answers = burst(live_server, user, project, times=16)
    codes = sorted(code for code, _ in answers)
    assert codes == [202] * 6 + [429] * 10
    assert {body["error"]["code"] for code, body in answers if code == 429} == {"RATE_LIMIT_EXCEEDED"}
    assert Preview.objects.filter(owner=user).count() == 10


@pytest.mark.django_db(transaction=True)
def test_preview_in_flight_burst_never_admits_more_than_the_limit(live_server, make_user, settings, fake_image_api):
    require_postgresql()
    # The image API takes its time, so whatever is admitted stays in flight for the whole burst.
    settings.AVATAR_GENERATOR = "huggingface"
    settings.HUGGINGFACE_API_KEY = "hf_test_key_123"
    settings.HF_INFERENCE_URL = f"{fake_image_api.url}/models/flux"
    fake_image_api.script(*[Reply("ok", delay=1.5)] * 8)
    settings.AVATAR_MAX_ACTIVE_PREVIEWS = 3
    # Queued previews nobody runs: the only way past the limit would be a race in admission.
    user, project = user_with_previews(make_user("inflight"), PreviewStatus.QUEUED, 2)
    answers = burst(live_server, user, project, times=8)
    assert sorted(code for code, _ in answers) == [202] + [429] * 7
    assert {body["error"]["code"] for code, body in answers if code == 429} == {"TOO_MANY_ACTIVE_PREVIEWS"}
    assert Preview.objects.filter(owner=user).count() == 3


def test_preview_in_flight_limit_answers_its_own_code(alice_api, alice, settings):
    settings.AVATAR_MAX_ACTIVE_PREVIEWS = 2
    project = make_project(alice)
    make_preview(alice, project, status=PreviewStatus.QUEUED)
    make_preview(alice, project, status=PreviewStatus.RUNNING)
    response = generate(alice_api, project)
    assert response.status_code == 429
    assert response["Retry-After"] == "10"
    assert response.json() == {
        "success": False,
        "error": {
            "code": "TOO_MANY_ACTIVE_PREVIEWS",
            "message": "You can have 2 previews in progress at once and have 2. Wait for one to finish.",
            "details": {"retryAfter": 10, "limit": 2, "active": 2},
        },
    }
    assert Preview.objects.filter(owner=alice).count() == 2


def test_preview_in_flight_limit_counts_only_the_users_own(alice_api, alice, bob, settings):
    settings.AVATAR_MAX_ACTIVE_PREVIEWS = 1
    make_preview(bob, make_project(bob), status=PreviewStatus.QUEUED)
    response = generate(alice_api, make_project(alice))
    assert response.status_code == 202
    assert response.json()["preview"]["status"] in ("queued", "running", "succeeded")


@pytest.mark.parametrize("code", ["QUEUE_UNAVAILABLE", "GENERATION_FAILED", "GENERATOR_AUTH_FAILED", "MODEL_LOADING"])
def test_preview_rate_ignores_failures_that_are_not_the_users(alice_api, alice, settings, code):
    settings.AVATAR_PREVIEW_RATE = "3/hour"
    project = make_project(alice)
    for _ in range(3):
        make_preview(alice, project, status=PreviewStatus.FAILED, error_code=code)
    response = generate(alice_api, project)
    assert response.status_code == 202
    assert Preview.objects.filter(owner=alice).count() == 4


def test_preview_rate_counts_canceled_previews(alice_api, alice, settings):
    settings.AVATAR_PREVIEW_RATE = "2/hour"
    project = make_project(alice)
    for _ in range(2):
        make_preview(alice, project, status=PreviewStatus.CANCELED)
    response = generate(alice_api, project)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"


def test_preview_rate_retry_after_is_when_enough_room_frees_up(alice, settings):
    from avatar_creator.errors import RateLimitExceeded
    from avatar_creator.services.rates import preview_rate_check

    settings.AVATAR_PREVIEW_RATE = "3/hour"
    settings.AVATAR_MAX_ACTIVE_PREVIEWS = 10
    project = make_project(alice)
    now = timezone.now()
    for minutes_ago in (50, 40, 30):
        make_preview(alice, project, status=PreviewStatus.SUCCEEDED, created_at=now - timedelta(minutes=minutes_ago))
    with pytest.raises(RateLimitExceeded) as refused:
        preview_rate_check(user=alice, count=2)
    # Two slots free when the second oldest (40 min ago) leaves the hour: in about 20 minutes.
    assert 1190 <= refused.value.details["retryAfter"] <= 1201


def test_ui_preview_create_past_the_in_flight_limit_says_so(client, alice, settings):
    from tests.test_ui_views import HTMX, text

    settings.AVATAR_MAX_ACTIVE_PREVIEWS = 1
    client.force_login(alice)
    _, project = user_with_previews(alice, PreviewStatus.RUNNING, 1)
    response = client.post(f"/projects/{project.pk}/previews", {"prompt": PROMPT, "body_type": "half_body"}, **HTMX)
    assert response.status_code == 429
    assert (
        "Previews still in progress. You can have 1 previews in progress at once. Wait for one to finish, then try "
        "again. Nothing was charged." in text(response)
    )
    assert Preview.objects.filter(owner=alice).count() == 1


LEGACY = "/api/avatar-creator/projects/{}/avatars/generate"


def test_legacy_generate_admits_its_whole_count_or_nothing(alice_api, alice, settings, held_queue):
    """The legacy call's variations (count 1-5) are admitted together: five may start while nothing else is in flight
    even with the in-flight limit at 4 (a request is never refused for ever), and a batch that does not fit beside
    what is in flight is refused with nothing created."""
    settings.AVATAR_MAX_ACTIVE_PREVIEWS = 4
    project = make_project(alice)
    url = LEGACY.format(project.pk)
    response = alice_api.post(url, {"prompt": PROMPT, "name": "Ayu", "count": 5}, format="json", headers=ASYNC)
    assert response.status_code == 202, response.json()
    assert len(response.json()["previews"]) == 5
    assert Preview.objects.filter(owner=alice).values("batch_id").distinct().count() == 1

    response = alice_api.post(url, {"prompt": PROMPT, "name": "Ayu", "count": 2}, format="json", headers=ASYNC)
    assert (response.status_code, response.json()["error"]["code"]) == (429, "TOO_MANY_ACTIVE_PREVIEWS")
    assert Preview.objects.filter(owner=alice).count() == 5
