"""The token cache in front of knox's lookup (issue 13): a known token is served from the cache (Redis, as in
production), and every way of revoking a token, or of ending its user's access, takes effect on the next request."""

from datetime import timedelta

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone

from avatar_creator import services
from avatar_creator.models import ApiToken
from avatar_creator.services.accounts import TOKEN_REVOKED, token_cache_add, token_cached
from tests.services import redis_url, require_redis
from tests.test_tokens import bearer, me

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def redis_cache(settings):
    require_redis()
    settings.CACHES = {"default": {"BACKEND": "lumiku.cache.RedisCache", "LOCATION": redis_url()}}
    cache.clear()
    yield
    cache.clear()


def seconds_left(token: ApiToken) -> int:
    """How long the token's cache entry still lives, as Redis counts it."""
    return redis.Redis.from_url(redis_url()).ttl(cache.make_key(f"lumiku:token:{token.pk}"))


def cached_token_of(user) -> ApiToken:
    """The user's only token, after one request has put it in the cache."""
    assert me(user.token) == 200
    token = ApiToken.objects.get(user=user)
    assert isinstance(token_cached(digest=token.pk), ApiToken)
    return token


def test_token_cache_answers_a_known_token_without_the_token_table(alice, django_assert_num_queries):
    cached_token_of(alice)
    with django_assert_num_queries(2):  # the user's row and the credit balance of /me; no token query
        response = bearer(alice.token).get("/api/auth/me")
    assert response.json()["user"]["username"] == "alice"


def test_token_cache_logout_refuses_the_token_at_once(alice):
    cached_token_of(alice)
    assert bearer(alice.token).post("/api/auth/logout").status_code == 200
    assert me(alice.token) == 401


def test_token_cache_logout_all_refuses_every_token_at_once(anon, alice):
    credentials = {"username": "alice", "password": "correct-horse-battery-9"}
    other = anon.post("/api/auth/token", credentials, format="json").json()["token"]
    assert [me(alice.token), me(other)] == [200, 200]
    assert bearer(other).post("/api/auth/logout-all").status_code == 200
    assert [me(alice.token), me(other)] == [401, 401]


def test_token_cache_revoke_by_id_refuses_the_token_at_once(alice):
    token = cached_token_of(alice)
    assert services.token_revoke_for_user(user=alice, token_id=token.pk) is True
    assert me(alice.token) == 401


def test_token_cache_admin_delete_refuses_the_token_at_once(alice, admin_client):
    token = cached_token_of(alice)
    response = admin_client.post(f"/admin/avatar_creator/apitoken/{token.pk}/delete/", {"post": "yes"})
    assert (response.status_code, ApiToken.objects.filter(pk=token.pk).exists()) == (302, False)
    assert me(alice.token) == 401


def test_token_cache_password_change_refuses_the_token_at_once(alice):
    cached_token_of(alice)
    user = get_user_model().objects.get(pk=alice.pk)
    user.set_password("another-horse-battery-7")
    user.save()
    assert me(alice.token) == 401


def test_token_cache_deactivated_user_is_refused_at_once(alice):
    cached_token_of(alice)
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    assert me(alice.token) == 401


def test_token_cache_lookup_racing_a_revocation_cannot_bring_the_token_back(alice):
    token = cached_token_of(alice)
    stale = ApiToken.objects.get(pk=token.pk)  # read by a request just before the revocation
    services.token_revoke(token=token)
    token_cache_add(token=stale)
    assert token_cached(digest=stale.pk) == TOKEN_REVOKED
    assert me(alice.token) == 401


def test_token_cache_entry_ends_when_the_last_use_is_due(alice):
    token = cached_token_of(alice)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(seconds=61))
    cache.delete(f"lumiku:token:{token.pk}")
    assert me(alice.token) == 200
    assert timezone.now() - ApiToken.objects.get(pk=token.pk).last_used_at < timedelta(seconds=5)
    assert seconds_left(token) in range(58, 61)


def test_token_cache_entry_never_outlives_the_token(alice):
    token = cached_token_of(alice)
    cache.delete(f"lumiku:token:{token.pk}")
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() + timedelta(seconds=10))
    assert me(alice.token) == 200
    assert seconds_left(token) in range(1, 11)
