"""Throttles keyed on the address trusted proxies vouch for, whitespace passwords, Redis down, the admin's credit
adjustment bounds."""

import pytest
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from avatar_creator.models import CreditAccount
from avatar_creator.throttling import AuthThrottle, client_address

pytestmark = pytest.mark.django_db
WRONG = {"username": "alice", "password": "wrong-password-1"}


@pytest.fixture(autouse=True)
def small_budget(monkeypatch):
    monkeypatch.setattr(AuthThrottle, "THROTTLE_RATES", {"auth": "3/min"})


def exhaust(anon):
    return [anon.post("/api/auth/token", WRONG, format="json").status_code for _ in range(3)]


def test_throttle_ignores_a_forged_forwarded_for(anon, alice, settings):
    # What production set before: one proxy assumed, so the last X-Forwarded-For entry was believed.
    assert exhaust(anon) == [401, 401, 401]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    forged = [
        anon.post("/api/auth/token", WRONG, format="json", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
        for i in range(3)
    ]
    assert forged == [429, 429, 429]


@pytest.mark.parametrize("login", ["/login", "/api-auth/login/"])
def test_throttle_ignores_a_forged_forwarded_for_on_the_ui_and_browsable_api_login(client, alice, settings, login):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    form = {"username": "alice", "password": "wrong-password-1"}
    codes = [client.post(login, form, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code for i in range(5)]
    assert codes[3:] == [429, 429]


def test_throttle_ignores_a_forged_forwarded_for_on_the_admin_login(client, alice, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    form = {"username": "alice", "password": "wrong-password-1"}
    pages = [client.post("/admin/login/", form, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}") for i in range(5)]
    throttled = ["Too many sign-in attempts" in page.content.decode() for page in pages]
    assert throttled == [False, False, False, True, True]


@pytest.mark.parametrize(
    ("remote", "forwarded", "client"),
    [
        ("203.0.113.7", "1.2.3.4", "203.0.113.7"),  # not a trusted proxy: its header is the client's own words
        ("10.0.0.5", "1.2.3.4", "1.2.3.4"),  # the proxy vouches for the address it appended
        ("10.0.0.5", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # whatever the client wrote before that is not believed
        ("10.0.0.5", "1.2.3.4, 10.0.0.9", "1.2.3.4"),  # two trusted proxies in a row
        ("10.0.0.5", "", "10.0.0.5"),
        ("10.0.0.5", "not-an-address, 10.0.0.2", "not-an-address"),
    ],
)
def test_client_address_believes_only_trusted_proxies(settings, remote, forwarded, client):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == client


def test_client_address_ignores_a_trusted_proxy_entry_that_is_not_an_address(settings):
    settings.TRUSTED_PROXIES = ["proxy.internal", "10.0.0.5"]
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert client_address(request) == "1.2.3.4"


def test_client_address_without_trusted_proxies_is_the_peer(settings):
    settings.TRUSTED_PROXIES = []
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert client_address(request) == "10.0.0.5"


def test_throttle_behind_a_trusted_proxy_counts_each_client(anon, alice, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]

    def attempt(client_ip):
        return anon.post(
            "/api/auth/token", WRONG, format="json", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=client_ip
        ).status_code

    assert [attempt("1.1.1.1") for _ in range(4)] == [401, 401, 401, 429]
    assert attempt("2.2.2.2") == 401


@pytest.mark.parametrize("password", [" " * 8, "\u3000" * 8, " \t \n \u00a0\u2003  "])
def test_register_refuses_a_whitespace_password(anon, password):
    response = anon.post("/api/auth/register", {"username": "ayu", "password": password}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert "The password cannot be only spaces." in body["error"]["details"]["password"]
    assert not get_user_model().objects.filter(username="ayu").exists()


def test_ui_signup_refuses_a_whitespace_password(client):
    form = {"username": "ayu", "email": "", "password": "\u3000" * 10, "password_confirm": "\u3000" * 10}
    response = client.post("/signup", form)
    assert response.status_code == 422
    assert not get_user_model().objects.filter(username="ayu").exists()


@pytest.fixture
def redis_down(settings):
    # A port nothing listens on: every cache call fails at once with a connection error.
    settings.CACHES = {"default": {"BACKEND": "lumiku.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
    AuthThrottle.cache.local.clear()
    yield
    AuthThrottle.cache.local.clear()


def test_register_with_redis_down_still_works(anon, redis_down):
    response = anon.post("/api/auth/register", {"username": "ayu", "password": "s3cure-enough-pass"}, format="json")
    assert response.status_code == 201
    assert response.json()["user"]["username"] == "ayu"


def test_login_with_redis_down_is_throttled_in_this_process(anon, alice, redis_down, settings):
    codes = [anon.post("/api/auth/token", WRONG, format="json").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]


def test_ui_login_with_redis_down_does_not_fail(client, alice, redis_down):
    response = client.post("/login", {"username": "alice", "password": "correct-horse-battery-9"})
    assert response.status_code == 302


def _adjust(admin_client, account, amount: str):
    form = {
        "adjustment": amount,
        "adjustment_note": "Support",
        "entries-TOTAL_FORMS": "0",
        "entries-INITIAL_FORMS": "0",
        "entries-MIN_NUM_FORMS": "0",
        "entries-MAX_NUM_FORMS": "1000",
    }
    return admin_client.post(f"/admin/avatar_creator/creditaccount/{account.pk}/change/", form)


@pytest.mark.parametrize("amount", [str(10**12), str(-(10**12)), str(2**31)])
def test_admin_credit_adjustment_out_of_range_is_a_form_error(admin_client, alice, amount):
    account = CreditAccount.objects.get(user=alice)
    response = _adjust(admin_client, account, amount)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["adjustment"]
    account.refresh_from_db()
    assert account.balance == 100
    assert account.entries.count() == 1


def test_admin_credit_adjustment_cannot_overflow_the_balance(admin_client, alice):
    account = CreditAccount.objects.get(user=alice)
    response = _adjust(admin_client, account, str(2**31 - 1))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["adjustment"] == [
        "The balance cannot go above 2147483647 credits: add at most 2147483547."
    ]
    account.refresh_from_db()
    assert account.balance == 100
