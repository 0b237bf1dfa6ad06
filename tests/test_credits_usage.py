"""The user's view of the money: GET /api/auth/me/credits and /api/auth/me/usage, and the Credits & usage page."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from avatar_creator import services
from avatar_creator.models import CreditLedgerEntry, LedgerReason, PreviewStatus
from tests.factories import make_avatar, make_preview, make_project

pytestmark = pytest.mark.django_db


def test_credits_lists_the_ledger_newest_first(alice_api, alice):
    account = services.credit_account_for_user(user=alice)
    services.credits_add(account=account, amount=-30, reason=LedgerReason.ADJUSTMENT, note="Refund of order 7")
    response = alice_api.get("/api/auth/me/credits")
    assert response.status_code == 200
    body = response.json()
    entries = list(CreditLedgerEntry.objects.filter(account=account).order_by("-created_at", "-id"))
    assert body == {
        "success": True,
        "balance": 70,
        "entries": [
            {
                "id": entry.pk,
                "delta": entry.delta,
                "balanceAfter": entry.balance_after,
                "reason": entry.reason,
                "note": entry.note,
                "avatarId": None,
                "createdAt": body["entries"][i]["createdAt"],
            }
            for i, entry in enumerate(entries)
        ],
        "next": None,
    }
    assert [(e["delta"], e["reason"], e["note"]) for e in body["entries"]] == [
        (-30, "adjustment", "Refund of order 7"),
        (100, "signup", "Welcome"),
    ]


def test_credits_names_the_avatar_a_charge_was_for(alice_api, alice):
    project = make_project(alice)
    preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    avatar, _ = services.preview_save(user=alice, project=project, preview_id=preview.pk, name="Ayu")
    entry = alice_api.get("/api/auth/me/credits").json()["entries"][0]
    assert (entry["delta"], entry["reason"], entry["avatarId"]) == (-10, "avatar_save", str(avatar.pk))


def test_credits_paginates_like_the_previews_list(alice_api, alice):
    account = services.credit_account_for_user(user=alice)
    for i in range(4):
        services.credits_add(account=account, amount=1, reason=LedgerReason.GRANT, note=f"grant {i}")
    first = alice_api.get("/api/auth/me/credits?limit=2").json()
    assert [e["note"] for e in first["entries"]] == ["grant 3", "grant 2"]
    assert first["next"] == "http://testserver/api/auth/me/credits?limit=2&offset=2"
    last = alice_api.get("/api/auth/me/credits?limit=2&offset=4").json()
    assert ([e["note"] for e in last["entries"]], last["next"]) == (["Welcome"], None)


@pytest.mark.parametrize("path", ["/api/auth/me/credits", "previews"])
def test_lists_refuse_an_offset_beyond_any_list(alice_api, alice, path):
    """Beyond the database's integers an OFFSET failed in the database (a 500); the largest offset still answers."""
    if path == "previews":
        path = f"/api/avatar-creator/projects/{make_project(alice).pk}/previews"
    response = alice_api.get(f"{path}?offset={2**63}")
    assert response.status_code == 400
    assert (response.json()["error"]["code"], list(response.json()["error"]["details"])) == (
        "VALIDATION_ERROR", ["offset"]
    )  # fmt: skip
    assert alice_api.get(f"{path}?offset={2**31 - 1}").status_code == 200


def test_credits_rejects_a_bad_limit(alice_api):
    response = alice_api.get("/api/auth/me/credits?limit=500")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_credits_shows_only_the_users_own_entries(alice_api, alice, bob):
    services.credits_add(account=services.credit_account_for_user(user=bob), amount=5, reason="grant", note="bob")
    notes = [e["note"] for e in alice_api.get("/api/auth/me/credits").json()["entries"]]
    assert notes == ["Welcome"]


def test_credits_requires_credentials(anon):
    response = anon.get("/api/auth/me/credits")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"


def test_usage_counts_the_last_30_days(alice_api, alice, bob):
    project = make_project(alice)
    now = timezone.now()
    make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    make_preview(alice, project, status=PreviewStatus.FAILED, error_code="GENERATION_FAILED")
    make_preview(alice, project, status=PreviewStatus.QUEUED, created_at=now - timedelta(days=2))
    make_preview(alice, project, status=PreviewStatus.SUCCEEDED, created_at=now - timedelta(days=31))
    make_preview(bob, make_project(bob), status=PreviewStatus.SUCCEEDED)
    saved = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    services.preview_save(user=alice, project=project, preview_id=saved.pk, name="Ayu")
    make_avatar(project, name="Uploaded")  # not a saved preview
    usage = alice_api.get("/api/auth/me/usage").json()["usage"]
    assert usage["previews"] == {"total": 4, "succeeded": 2, "failed": 1}
    assert (usage["avatarsSaved"], usage["creditsSpent"]) == (1, 10)
    days = usage["days"]
    assert len(days) == 30
    assert days[-1] == {"date": now.date().isoformat(), "previews": 3, "saved": 1, "creditsSpent": 10}
    assert days[-3] == {"date": (now - timedelta(days=2)).date().isoformat(), "previews": 1, "saved": 0,
                        "creditsSpent": 0}  # fmt: skip
    assert days[0]["date"] == (now - timedelta(days=29)).date().isoformat()


def test_usage_of_a_new_account_is_all_zero(alice_api):
    usage = alice_api.get("/api/auth/me/usage").json()["usage"]
    assert usage["previews"] == {"total": 0, "succeeded": 0, "failed": 0}
    assert (usage["avatarsSaved"], usage["creditsSpent"]) == (0, 0)
    assert {(d["previews"], d["saved"], d["creditsSpent"]) for d in usage["days"]} == {(0, 0, 0)}


@pytest.fixture
def alice_browser(client, alice):
    client.force_login(get_user_model().objects.get(pk=alice.pk))
    return client


def test_ui_credits_page_shows_balance_ledger_and_chart(alice_browser, alice):
    project = make_project(alice)
    saved = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    services.preview_save(user=alice, project=project, preview_id=saved.pk, name="Ayu at work")
    html = alice_browser.get("/account/credits").content.decode()
    assert "<strong>90</strong> credits" in html
    assert "Avatar saved: <a href=" in html and "Ayu at work</a>" in html
    assert "Signup bonus" in html and "Welcome" in html
    assert html.count('<svg viewBox="0 0 300 80"') == 3
    # Today is the last of 30 bars, as tall as the chart allows, in each of the three charts.
    today = timezone.now().strftime("%d %b")
    bars = [f'<rect x="291.0" y="8.0" width="8.0" height="72.0" class="chart-bar"><title>{today}: {n}</title></rect>'
            for n in (1, 1, 10)]  # fmt: skip
    assert [html.count(bar) for bar in bars] == [2, 2, 1]


def test_ui_credits_page_has_an_empty_state(alice_browser):
    html = alice_browser.get("/account/credits").content.decode()
    assert "You have not made any previews in the last 30 days." in html
    assert "<svg" not in html


def test_ui_credits_page_says_how_to_get_credits_when_low(alice_browser, alice, settings):
    services.credits_add(account=services.credit_account_for_user(user=alice), amount=-95, reason="adjustment")
    html = alice_browser.get("/account/credits").content.decode()
    assert "You need more credits to save an avatar" in html
    assert "python manage.py grant_credits alice 100" in html
    settings.AVATAR_GET_CREDITS_URL = "https://shop.example.com/credits"
    html = alice_browser.get("/account/credits").content.decode()
    assert 'href="https://shop.example.com/credits"' in html


def test_ui_header_badge_links_to_the_credits_page(alice_browser):
    html = alice_browser.get("/").content.decode()
    assert '<a id="credit-badge" class="credit-badge" href="/account/credits"' in html


def test_ui_header_badge_warns_when_saving_is_unaffordable(alice_browser, alice):
    services.credits_add(account=services.credit_account_for_user(user=alice), amount=-95, reason="adjustment")
    html = alice_browser.get("/").content.decode()
    assert 'class="credit-badge credit-badge-low"' in html


def test_ui_credits_page_requires_sign_in(client):
    response = client.get("/account/credits")
    assert response.status_code == 302
    assert response["Location"].startswith("/login")
