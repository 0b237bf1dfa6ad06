import pytest

from avatar_creator.models import CreditAccount, LedgerReason
from tests.factories import make_avatar, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def avatar(alice):
    return make_avatar(make_project(alice, "Launch"), name="Ayu", style="traditional", body_type="full_body")


def test_admin_project_page_shows_avatars_inline(admin_client, avatar):
    response = admin_client.get(f"/admin/avatar_creator/project/{avatar.project_id}/change/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Ayu" in content
    assert avatar.thumbnail.url in content


def test_admin_project_list_counts_avatars(admin_client, avatar):
    response = admin_client.get("/admin/avatar_creator/project/")
    assert response.status_code == 200
    assert response.context["cl"].result_list[0]._avatar_count == 1


def test_admin_avatar_list_has_thumbnails_filters_and_search(admin_client, avatar, alice):
    other = make_avatar(make_project(alice, "Other"), name="Budi", style="casual")
    response = admin_client.get("/admin/avatar_creator/avatar/", {"style__exact": "traditional"})
    assert response.status_code == 200
    assert [a.pk for a in response.context["cl"].result_list] == [avatar.pk]
    assert f'<img src="{avatar.thumbnail.url}"' in response.content.decode()
    filters = [spec.title for spec in response.context["cl"].filter_specs]
    assert filters == ["style", "body type", "gender", "age range", "source type", "created at"]
    found = admin_client.get("/admin/avatar_creator/avatar/", {"q": "alice"}).context["cl"].result_list
    assert {a.pk for a in found} == {avatar.pk, other.pk}
    found = admin_client.get("/admin/avatar_creator/avatar/", {"q": "Budi"}).context["cl"].result_list
    assert [a.pk for a in found] == [other.pk]


def test_admin_avatar_change_page_opens(admin_client, avatar):
    response = admin_client.get(f"/admin/avatar_creator/avatar/{avatar.pk}/change/")
    assert response.status_code == 200


def test_admin_credit_adjustment_adds_a_ledger_entry(admin_client, alice):
    account = CreditAccount.objects.get(user=alice)
    url = f"/admin/avatar_creator/creditaccount/{account.pk}/change/"
    assert admin_client.get(url).status_code == 200
    form = {
        "adjustment": "40",
        "adjustment_note": "Support ticket 12",
        "entries-TOTAL_FORMS": "0",
        "entries-INITIAL_FORMS": "0",
        "entries-MIN_NUM_FORMS": "0",
        "entries-MAX_NUM_FORMS": "1000",
        "balance": "999999",
    }
    response = admin_client.post(url, form)
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.balance == 140
    entry = account.entries.first()
    assert (entry.delta, entry.balance_after, entry.reason, entry.note) == (
        40,
        140,
        LedgerReason.GRANT,
        "Support ticket 12",
    )
    assert entry.created_by.username == "operator"


def test_admin_balance_is_read_only(admin_client, alice):
    account = CreditAccount.objects.get(user=alice)
    response = admin_client.get(f"/admin/avatar_creator/creditaccount/{account.pk}/change/")
    assert 'name="balance"' not in response.content.decode()


def test_admin_ledger_and_preview_lists_open(admin_client, alice):
    assert admin_client.get("/admin/avatar_creator/creditledgerentry/").status_code == 200
    assert admin_client.get("/admin/avatar_creator/preview/").status_code == 200
    assert admin_client.get("/admin/avatar_creator/creditaccount/").status_code == 200
