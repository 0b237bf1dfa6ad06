"""API tokens (django-rest-knox): one per device, hashed, expiring, logout and logout-all, tokens of the first
version keep working until revoked, a password change revokes all, the admin never shows one, the UI's page."""

import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token as LegacyToken
from rest_framework.test import APIClient

from avatar_creator.models import ApiToken

pytestmark = pytest.mark.django_db
CREDENTIALS = {"username": "alice", "password": "correct-horse-battery-9"}


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def me(key: str) -> int:
    return bearer(key).get("/api/auth/me").status_code


def test_token_endpoint_issues_a_new_token_per_call(anon, alice):
    first = anon.post("/api/auth/token", CREDENTIALS, format="json").json()["token"]
    second = anon.post("/api/auth/token", CREDENTIALS, format="json").json()["token"]
    assert len({first, second, alice.token}) == 3
    assert [me(first), me(second), me(alice.token)] == [200, 200, 200]


def test_token_is_stored_only_as_a_hash(anon, alice):
    key = anon.post("/api/auth/token", {**CREDENTIALS, "name": "Laptop"}, format="json").json()["token"]
    token = ApiToken.objects.get(user=alice, name="Laptop")
    stored = [str(value) for value in ApiToken.objects.filter(pk=token.pk).values_list().get()]
    assert not any(key in value for value in stored)
    assert re.fullmatch(r"[0-9a-f]{40}", key)


def test_token_expires_after_the_ttl(anon, alice, settings):
    key = anon.post("/api/auth/token", {**CREDENTIALS, "name": "Phone"}, format="json").json()["token"]
    token = ApiToken.objects.get(name="Phone")
    assert abs((token.expiry - token.created) - timedelta(seconds=settings.AVATAR_TOKEN_TTL)) < timedelta(seconds=5)
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    assert me(key) == 401


def test_expired_tokens_are_purged_on_a_schedule_and_live_ones_kept(anon, alice, bob):
    """A token nobody presents again is not left behind once it expires (knox's own lookup deleted a user's expired
    tokens whenever another of theirs authenticated; the lookup that replaced it does not): Celery beat's task and
    `manage.py purge_expired_previews` delete every expired token, of every user, and nothing else."""
    from django.conf import settings as django_settings
    from django.core.management import call_command

    from avatar_creator import tasks

    keys = {name: anon.post("/api/auth/token", {**CREDENTIALS, "name": name}, format="json").json()["token"]
            for name in ("Old laptop", "Old phone", "Phone")}  # fmt: skip
    ApiToken.objects.filter(name__startswith="Old").update(expiry=timezone.now() - timedelta(seconds=1))
    ApiToken.objects.filter(user=bob).update(expiry=timezone.now() - timedelta(days=3))
    ApiToken.objects.create(user=alice, name="Script", expiry=None)  # a token that never expires
    assert me(keys["Phone"]) == 200  # authenticating with a live token leaves the expired ones

    assert tasks.purge_expired_tokens.apply().get() == 3
    assert sorted(ApiToken.objects.values_list("name", flat=True)) == ["Phone", "Script", "Sign-up"]
    assert [me(keys["Phone"]), me(alice.token), me(keys["Old phone"])] == [200, 200, 401]
    schedule = django_settings.CELERY_BEAT_SCHEDULE["purge-expired-tokens"]
    assert (schedule["task"], schedule["schedule"]) == (tasks.purge_expired_tokens.name, 3600)

    ApiToken.objects.filter(name="Phone").update(expiry=timezone.now() - timedelta(seconds=1))
    call_command("purge_expired_previews", stdout=io.StringIO())
    assert sorted(ApiToken.objects.values_list("name", flat=True)) == ["Script", "Sign-up"]


def test_token_records_its_last_use(alice):
    assert ApiToken.objects.get(user=alice).last_used_at is None
    assert me(alice.token) == 200
    assert ApiToken.objects.get(user=alice).last_used_at is not None


def test_logout_revokes_only_the_token_it_is_called_with(anon, alice):
    other = anon.post("/api/auth/token", CREDENTIALS, format="json").json()["token"]
    response = bearer(alice.token).post("/api/auth/logout")
    assert response.json() == {"success": True, "message": "Signed out: this token no longer works."}
    assert [me(alice.token), me(other)] == [401, 200]


def test_logout_all_revokes_every_token(anon, alice):
    other = anon.post("/api/auth/token", CREDENTIALS, format="json").json()["token"]
    legacy = LegacyToken.objects.create(user=alice)
    response = bearer(other).post("/api/auth/logout-all")
    assert response.json() == {"success": True, "message": "Signed out everywhere: 3 token(s) revoked."}
    assert [me(alice.token), me(other), me(legacy.key)] == [401, 401, 401]


def test_legacy_token_keeps_working_until_revoked(alice):
    legacy = LegacyToken.objects.create(user=alice)
    assert me(legacy.key) == 200
    assert bearer(legacy.key).post("/api/auth/logout").status_code == 200
    assert me(legacy.key) == 401
    assert not LegacyToken.objects.filter(user=alice).exists()


def test_password_change_revokes_every_token(alice):
    legacy = LegacyToken.objects.create(user=alice)
    user = get_user_model().objects.get(pk=alice.pk)
    user.set_password("another-good-pass-7")
    user.save()
    assert [me(alice.token), me(legacy.key)] == [401, 401]


def test_malformed_bearer_tokens_are_refused_without_a_500(anon):
    for key in ["x" * 200, "abc\x00def", "ééé"]:
        response = bearer(key).get("/api/auth/me")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"


def test_admin_token_pages_never_show_a_token(admin_client, alice):
    legacy = LegacyToken.objects.create(user=alice)
    token = ApiToken.objects.get(user=alice)
    listing = admin_client.get("/admin/avatar_creator/apitoken/").content.decode()
    assert "alice" in listing
    index = admin_client.get("/admin/").content.decode()
    pages = listing + index
    assert alice.token not in pages
    assert token.token_key not in pages
    assert legacy.key not in pages
    assert admin_client.get("/admin/authtoken/tokenproxy/").status_code == 404
    assert admin_client.get("/admin/knox/authtoken/").status_code == 404


@pytest.fixture
def alice_browser(client, alice):
    client.force_login(get_user_model().objects.get(pk=alice.pk))
    return client


def test_ui_tokens_page_shows_a_new_token_once(alice_browser, alice):
    response = alice_browser.post("/account/tokens", {"name": "Build server"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    key = re.search(r'id="issued-token"[^>]*value="([0-9a-f]{40})"', html).group(1)
    assert 'data-copy-target="issued-token"' in html
    assert me(key) == 200
    again = alice_browser.get("/account/tokens").content.decode()
    assert "Build server" in again
    assert key not in again


def test_ui_tokens_page_lists_tokens_by_name_and_last_use(alice_browser, alice):
    me(alice.token)
    html = alice_browser.get("/account/tokens").content.decode()
    assert "Sign-up" in html
    assert "ago" in html


def test_ui_token_revoke_stops_the_token(alice_browser, alice):
    token = ApiToken.objects.get(user=alice)
    response = alice_browser.post(f"/account/tokens/{token.pk}/revoke")
    assert response.status_code == 302
    assert me(alice.token) == 401


def test_ui_token_revoke_of_another_users_token_is_404(alice_browser, bob):
    token = ApiToken.objects.get(user=bob)
    response = alice_browser.post(f"/account/tokens/{token.pk}/revoke")
    assert response.status_code == 404
    assert me(bob.token) == 200


def test_ui_token_revoke_of_the_legacy_token(alice_browser, alice):
    legacy = LegacyToken.objects.create(user=alice)
    assert "Token from the first version" in alice_browser.get("/account/tokens").content.decode()
    alice_browser.post("/account/tokens/legacy/revoke")
    assert me(legacy.key) == 401


def test_ui_tokens_revoke_all_stops_every_token(alice_browser, alice):
    legacy = LegacyToken.objects.create(user=alice)
    response = alice_browser.post("/account/tokens/revoke-all")
    assert response.status_code == 302
    assert [me(alice.token), me(legacy.key)] == [401, 401]
    assert alice_browser.get("/account/tokens").status_code == 200


def test_ui_signup_makes_no_api_token(client):
    form = {"username": "joko", "email": "", "password": "s3cure-enough-pass", "password_confirm": "s3cure-enough-pass"}
    assert client.post("/signup", form).status_code == 302
    assert not ApiToken.objects.filter(user__username="joko").exists()
