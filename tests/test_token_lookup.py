"""The token lookup (issue 13): a known token and its active user in one query, and every way of revoking a token, or
of ending its user's access, refused on the next request (nothing is cached)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token as LegacyToken
from rest_framework.test import APIClient

try:
    from psycopg.pq import Format
except ImportError:  # SQLite alone: the tests that need it skip
    Format = None

from avatar_creator import selectors, services
from avatar_creator.models import ApiToken, Preview, PreviewStatus
from avatar_creator.selectors import token_lookup
from tests.factories import make_preview, make_project
from tests.test_tokens import bearer, me

pytestmark = pytest.mark.django_db
TIMESTAMPTZ_OID = 1184


def used_token_of(user) -> ApiToken:
    """The user's only token, after one request (its first use writes `last_used_at`)."""
    assert me(user.token) == 200
    return ApiToken.objects.get(user=user)


def test_a_known_token_and_its_user_are_one_query(alice, django_assert_num_queries):
    used_token_of(alice)
    with django_assert_num_queries(2) as queries:  # the token with its user, and the credit balance of /me
        response = bearer(alice.token).get("/api/auth/me")
    assert response.json()["user"]["username"] == "alice"
    assert '"auth_user"' in queries.captured_queries[0]["sql"]
    assert "avatar_creator_apitoken" in queries.captured_queries[0]["sql"]


def test_the_lookup_gives_the_token_with_its_user(alice):
    token = used_token_of(alice)
    found = token_lookup(digest=token.pk)
    assert (found.pk, found.user_id, found.user.username, found.name) == (token.pk, alice.pk, "alice", token.name)
    assert (found.created, found.expiry, found.last_used_at) == (token.created, token.expiry, token.last_used_at)


def test_token_lookup_logout_refuses_the_token_at_once(alice):
    used_token_of(alice)
    assert bearer(alice.token).post("/api/auth/logout").status_code == 200
    assert me(alice.token) == 401


def test_token_lookup_logout_all_refuses_every_token_at_once(anon, alice):
    credentials = {"username": "alice", "password": "correct-horse-battery-9"}
    other = anon.post("/api/auth/token", credentials, format="json").json()["token"]
    assert [me(alice.token), me(other)] == [200, 200]
    assert bearer(other).post("/api/auth/logout-all").status_code == 200
    assert [me(alice.token), me(other)] == [401, 401]


def test_token_lookup_revoke_by_id_refuses_the_token_at_once(alice):
    token = used_token_of(alice)
    assert services.token_revoke_for_user(user=alice, token_id=token.pk) is True
    assert me(alice.token) == 401


def test_token_lookup_admin_delete_refuses_the_token_at_once(alice, admin_client):
    token = used_token_of(alice)
    response = admin_client.post(f"/admin/avatar_creator/apitoken/{token.pk}/delete/", {"post": "yes"})
    assert (response.status_code, ApiToken.objects.filter(pk=token.pk).exists()) == (302, False)
    assert me(alice.token) == 401


def test_token_lookup_password_change_refuses_the_token_at_once(alice):
    used_token_of(alice)
    user = get_user_model().objects.get(pk=alice.pk)
    user.set_password("another-horse-battery-7")
    user.save()
    assert me(alice.token) == 401


def test_token_lookup_deactivated_user_is_refused_at_once(alice):
    used_token_of(alice)
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    assert me(alice.token) == 401


def test_token_lookup_deleted_user_is_refused_at_once(alice):
    used_token_of(alice)
    get_user_model().objects.filter(pk=alice.pk).delete()
    assert me(alice.token) == 401


def test_token_lookup_expired_token_is_refused_and_deleted(alice):
    token = used_token_of(alice)
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    assert token_lookup(digest=token.pk) is None
    assert me(alice.token) == 401
    assert not ApiToken.objects.filter(pk=token.pk).exists()  # knox's own lookup deletes it


def test_token_lookup_writes_the_last_use_at_most_once_a_minute(alice, django_assert_num_queries):
    token = used_token_of(alice)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(seconds=61))
    with django_assert_num_queries(3):  # the lookup, the last use written, the balance
        assert me(alice.token) == 200
    with django_assert_num_queries(2):
        assert me(alice.token) == 200
    assert timezone.now() - ApiToken.objects.get(pk=token.pk).last_used_at < timedelta(seconds=5)


# The status poll authenticates and reads its preview in one query (api/authentication.py authenticate_with_preview);
# whatever that query does not answer goes the usual way, with the usual answers.


@pytest.fixture
def alices_preview(alice):
    return make_preview(alice, make_project(alice), status=PreviewStatus.SUCCEEDED, files=True)


def status_of(key: str, preview, **extra):
    return bearer(key).get(f"/api/avatar-creator/previews/{preview.pk}", **extra)


def test_the_status_poll_is_one_query_and_answers_as_the_owner(alice, alices_preview, django_assert_num_queries):
    used_token_of(alice)
    with django_assert_num_queries(1):
        response = status_of(alice.token, alices_preview)
    assert (response.status_code, response.json()["preview"]["id"]) == (200, str(alices_preview.pk))
    head = bearer(alice.token).head(f"/api/avatar-creator/previews/{alices_preview.pk}")
    assert head.status_code == 200


def _plan_nodes(node: dict) -> list[dict]:
    """A node of an EXPLAIN (FORMAT JSON) plan and every node under it."""
    return [node, *(found for child in node.get("Plans", []) for found in _plan_nodes(child))]


def test_the_status_poll_reads_one_token_row_however_many_tokens_its_owner_has(alice, alices_preview):
    """PostgreSQL finds the poll's token through its owner (the join's order): the index on (user, digest) makes that
    one row, where an index on the user alone read every token of the owner and dropped all but one."""
    if connection.vendor != "postgresql":
        pytest.skip("the query plan is PostgreSQL's")
    keys = [services.token_issue(user=alice, name=f"Device {number}").key for number in range(60)]
    # Other users' tokens make the table as large as a real one, so that PostgreSQL plans with its indexes.
    others = get_user_model().objects.bulk_create(get_user_model()(username=f"other{number}") for number in range(1000))
    ApiToken.objects.bulk_create(
        ApiToken(user=other, digest=f"{other.pk:0126x}{copy:02x}", token_key=f"{other.pk:08x}{copy}")
        for other in others
        for copy in range(3)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE auth_user, avatar_creator_apitoken, avatar_creator_preview")
    with CaptureQueriesContext(connection) as queries:
        assert status_of(keys[30], alices_preview).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + queries.captured_queries[0]["sql"])
        (plan,) = cursor.fetchone()[0]
    scans = [node for node in _plan_nodes(plan["Plan"]) if node.get("Relation Name") == "avatar_creator_apitoken"]
    assert [(node["Actual Rows"], node.get("Rows Removed by Filter", 0)) for node in scans] == [(1, 0)], scans


def _cursors_of(monkeypatch) -> list:
    """The psycopg cursors the default connection hands out from now on."""
    made, cursor = [], connection.cursor

    def recording():
        wrapper = cursor()
        made.append(wrapper.cursor)
        return wrapper

    monkeypatch.setattr(connection, "cursor", recording)
    return made


def _datetimes(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields
            if f.get_internal_type() == "DateTimeField"}  # fmt: skip


def test_the_status_polls_datetimes_are_the_orms_parsed_in_c(alice, monkeypatch):
    """The status poll's row (prepared.py) has its timestamps parsed by psycopg's C loader, not Django's Python one,
    and they are the very datetimes the ORM reads: values, microseconds, UTC and the edges of Python's range."""
    if connection.vendor != "postgresql":
        pytest.skip("Django's timestamptz loader is PostgreSQL's")
    edge = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    preview = make_preview(
        alice,
        make_project(alice),
        status=PreviewStatus.SUCCEEDED,
        expires_at=edge,
        started_at=datetime(1, 1, 1, tzinfo=UTC),
        created_at=datetime(2024, 2, 29, 23, 0, 0, 1, UTC),
    )
    digest = used_token_of(alice).digest
    cursors = _cursors_of(monkeypatch)
    read, token = selectors.preview_with_token(preview_id=preview.pk, digest=digest)
    (cursor,) = cursors
    assert cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).__module__.endswith("._psycopg")  # psycopg's C
    assert _datetimes(read) == _datetimes(Preview.objects.get(pk=preview.pk))
    assert (read.expires_at, read.started_at.year) == (edge, 1)
    assert {value.tzinfo for value in _datetimes(read).values() if value is not None} == {UTC}
    assert _datetimes(read.owner) == _datetimes(get_user_model().objects.get(pk=alice.pk))
    assert _datetimes(token) == _datetimes(ApiToken.objects.get(pk=token.pk))


def test_a_prepared_count_leaves_the_cursors_loaders_as_they_are(alice, monkeypatch):
    """A queued preview's position is a prepared COUNT(*): one integer, no timestamp to parse, so its cursor does not
    take the C loader (a copy of the cursor's adapters, for nothing)."""
    if connection.vendor != "postgresql":
        pytest.skip("Django's timestamptz loader is PostgreSQL's")
    preview = make_preview(alice, make_project(alice))
    cursors = _cursors_of(monkeypatch)
    assert selectors.preview_queue_position(preview=preview) == 1
    (cursor,) = cursors
    assert not cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).__module__.endswith("._psycopg")


def test_the_status_poll_keeps_djangos_loader_where_the_connection_is_not_in_utc(alice, alices_preview, monkeypatch):
    """Django sets the tzinfo of what it reads to the connection's time zone; psycopg's loader would not: off UTC the
    status poll's cursor keeps Django's."""
    if connection.vendor != "postgresql":
        pytest.skip("Django's timestamptz loader is PostgreSQL's")
    digest = used_token_of(alice).digest
    monkeypatch.setattr(connection, "timezone", ZoneInfo("Asia/Jakarta"))
    cursors = _cursors_of(monkeypatch)
    selectors.preview_with_token(preview_id=alices_preview.pk, digest=digest)
    (cursor,) = cursors
    assert cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).timezone == ZoneInfo("Asia/Jakarta")


def test_the_status_poll_of_another_users_preview_is_not_found(alices_preview, make_user):
    bob = make_user("bob")
    response = status_of(bob.token, alices_preview)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "NOT_FOUND")


@pytest.mark.parametrize("header", ["Bearer 0123456789abcdef", "Bearer", "Bearer a b", "Bearer bad\\x00key"])
def test_the_status_poll_with_a_bad_token_is_refused(alice, alices_preview, header):
    response = APIClient().get(f"/api/avatar-creator/previews/{alices_preview.pk}", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401


def test_the_status_poll_with_an_expired_token_is_refused(alice, alices_preview):
    token = used_token_of(alice)
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    assert status_of(alice.token, alices_preview).status_code == 401
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_the_status_poll_of_a_deactivated_user_is_refused(alice, alices_preview):
    used_token_of(alice)
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    assert status_of(alice.token, alices_preview).status_code == 401


def test_the_status_poll_writes_the_last_use_at_most_once_a_minute(alice, alices_preview):
    token = used_token_of(alice)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(seconds=61))
    assert status_of(alice.token, alices_preview).status_code == 200
    assert timezone.now() - ApiToken.objects.get(pk=token.pk).last_used_at < timedelta(seconds=5)


def test_the_status_poll_with_a_first_version_token_or_a_session_still_answers(alice, alices_preview, client):
    legacy = LegacyToken.objects.create(user=alice)
    assert status_of(legacy.key, alices_preview).status_code == 200
    client.force_login(alice)
    assert client.get(f"/api/avatar-creator/previews/{alices_preview.pk}").status_code == 200


# The plain status poll (GET, Bearer, JSON) is answered by the viewset's dispatch without DRF's request, negotiation and
# response (api/views.py PreviewViewSet.dispatch); every other request goes through DRF. Both answer alike.

_ALIKE_HEADERS = ("Content-Type", "Vary", "Allow", "Preference-Applied", "Cache-Control", "X-Content-Type-Options")


def _answer(response) -> tuple:
    return response.status_code, response.content, {name: response.get(name) for name in _ALIKE_HEADERS}


@pytest.mark.parametrize(
    ("status", "query", "headers"),
    [
        (PreviewStatus.SUCCEEDED, "", {}),
        (PreviewStatus.SUCCEEDED, "?include=base64", {}),
        (PreviewStatus.FAILED, "", {"HTTP_PREFER": "wait=5"}),
        (PreviewStatus.QUEUED, "?include=thumbnail,base64", {}),
    ],
)
def test_the_plain_status_poll_answers_as_drf_does(alice, status, query, headers):
    preview = make_preview(alice, make_project(alice), status=status, files=status == PreviewStatus.SUCCEEDED)
    path = f"/api/avatar-creator/previews/{preview.pk}{query}"
    plain = bearer(alice.token).get(path, **headers)
    # Asked with a quality on JSON, DRF negotiates the same renderer: the same answer through DRF's whole dispatch.
    through_drf = bearer(alice.token).get(path, HTTP_ACCEPT="application/json; q=1", **headers)
    assert plain.status_code == 200
    assert _answer(plain) == _answer(through_drf)
    if "HTTP_PREFER" in headers:
        assert plain["Preference-Applied"] == "wait=5"


def test_the_plain_status_poll_skips_drf_and_everything_else_does_not(alice, alices_preview, monkeypatch):
    from avatar_creator.api.views import PreviewViewSet

    def refuse(*args, **kwargs):
        raise AssertionError("DRF's dispatch ran")

    monkeypatch.setattr(PreviewViewSet, "initial", refuse)
    for accept in (None, "*/*", "application/json"):
        extra = {} if accept is None else {"HTTP_ACCEPT": accept}
        assert status_of(alice.token, alices_preview, **extra).status_code == 200
    for extra in ({"HTTP_ACCEPT": "text/html"}, {"HTTP_ACCEPT": "application/json; indent=2"}):
        with pytest.raises(AssertionError, match="DRF's dispatch ran"):
            status_of(alice.token, alices_preview, **extra)
    with pytest.raises(AssertionError, match="DRF's dispatch ran"):
        bearer(alice.token).get(f"/api/avatar-creator/previews/{alices_preview.pk}?format=json")
    with pytest.raises(AssertionError, match="DRF's dispatch ran"):
        bearer(alice.token).head(f"/api/avatar-creator/previews/{alices_preview.pk}")
