import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, transaction

from avatar_creator.models import CreditAccount, CreditLedgerEntry, LedgerReason

pytestmark = pytest.mark.django_db


def test_register_returns_token_and_signup_credits(anon, settings):
    settings.AVATAR_SIGNUP_CREDITS = 100
    response = anon.post("/api/auth/register", {"username": "ayu", "password": "s3cure-enough-pass"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    assert body["user"] == {"username": "ayu", "email": "", "credits": 100}
    assert len(body["token"]) == 40
    entry = CreditLedgerEntry.objects.get(account__user__username="ayu")
    assert (entry.delta, entry.balance_after, entry.reason) == (100, 100, LedgerReason.SIGNUP)


def test_register_token_works_as_bearer(anon):
    token = anon.post("/api/auth/register", {"username": "ayu", "password": "s3cure-enough-pass"}, format="json")
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['token']}")
    me = anon.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json() == {"success": True, "user": {"username": "ayu", "email": "", "credits": 100}}


def test_register_rejects_weak_password_with_details(anon):
    response = anon.post("/api/auth/register", {"username": "ayu", "password": "123"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert list(error["details"]) == ["password"]


def test_register_rejects_taken_username_case_insensitively(anon, alice):
    response = anon.post("/api/auth/register", {"username": "ALICE", "password": "s3cure-enough-pass"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"username": ["This username is taken."]}


def test_register_rejects_bad_username_and_email(anon):
    response = anon.post(
        "/api/auth/register", {"username": "a b/../c", "password": "s3cure-enough-pass", "email": "x"}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"username", "email"}


def test_register_refuses_an_email_longer_than_its_column(anon):
    """254 characters at most (the column): a longer one failed in PostgreSQL (a 500) and was stored on SQLite."""
    body = {"username": "eve", "password": "s3cure-enough-pass", "email": "a" * 245 + "@x.example"}
    response = anon.post("/api/auth/register", body, format="json")
    assert (response.status_code, list(response.json()["error"]["details"])) == (400, ["email"])
    assert get_user_model().objects.filter(username="eve").count() == 0


def test_token_returns_a_new_token_for_the_user(anon, alice):
    # Version 2: a new token per call (one per device); the sign-up token stays valid beside it.
    response = anon.post("/api/auth/token", {"username": "alice", "password": "correct-horse-battery-9"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body == {"success": True, "token": body["token"]}
    assert len(body["token"]) == 40
    assert body["token"] != alice.token


@pytest.mark.parametrize("username", ["alice", "nobody"])
def test_token_bad_credentials_do_not_reveal_the_user(anon, alice, username):
    response = anon.post("/api/auth/token", {"username": username, "password": "wrong-password-1"}, format="json")
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "error": {"code": "INVALID_CREDENTIALS", "message": "The username or password is not correct."},
    }


def test_token_is_throttled_after_repeated_failures(anon, alice, settings):
    codes = [
        anon.post("/api/auth/token", {"username": "alice", "password": "nope-nope-1"}, format="json").status_code
        for _ in range(12)
    ]
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 429]
    last = anon.post("/api/auth/token", {"username": "alice", "password": "nope-nope-1"}, format="json")
    assert last.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert int(last["Retry-After"]) > 0


def test_me_requires_credentials(anon):
    response = anon.get("/api/auth/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"


def test_me_rejects_an_invalid_token(anon):
    anon.credentials(HTTP_AUTHORIZATION="Bearer " + "0" * 40)
    response = anon.get("/api/auth/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"


def test_grant_credits_adds_and_removes_never_below_zero(alice, capsys):
    call_command("grant_credits", "alice", "25")
    assert CreditAccount.objects.get(user=alice).balance == 125
    call_command("grant_credits", "alice", "-500")
    account = CreditAccount.objects.get(user=alice)
    assert account.balance == 0
    assert [e.delta for e in account.entries.order_by("id")] == [100, 25, -125]
    assert "balance now 0" in capsys.readouterr().out


def test_grant_credits_unknown_user_fails_clearly():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("grant_credits", "ghost", "5")


def test_balance_constraint_rejects_negative_balance(alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditAccount.objects.filter(user=alice).update(balance=-1)
