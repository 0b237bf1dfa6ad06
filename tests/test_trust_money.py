"""Money under concurrency: the legacy one-call generate holds the credits for its whole count before anything is
generated, so two racing callers with credit for one get exactly one 201 and one 402, and the ledger agrees."""

import json
import urllib.error
import urllib.request

import pytest

from avatar_creator import services
from avatar_creator.errors import InsufficientCredits
from avatar_creator.models import Avatar, CreditAccount, CreditHold, CreditLedgerEntry, Preview
from tests.factories import make_project
from tests.services import require_postgresql
from tests.test_credits_concurrency import _at_once as at_once

pytestmark = pytest.mark.django_db(transaction=True)
PROMPT = "Professional Indonesian woman with modern hijab, smiling"


def _post(url: str, token: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def funded(make_user, settings):
    require_postgresql()
    settings.AVATAR_SAVE_COST = 10
    user = make_user("carol", credits=10)
    return user, make_project(user)


@pytest.mark.parametrize("round_", range(2))
def test_legacy_generate_race_charges_exactly_one_caller(live_server, funded, round_):
    user, project = funded
    url = f"{live_server.url}/api/avatar-creator/projects/{project.pk}/avatars/generate"
    answers = at_once([lambda: _post(url, user.token, {"prompt": PROMPT, "name": "Ayu"}) for _ in range(2)])
    assert sorted(code for code, _ in answers) == [201, 402]
    refused = next(body for code, body in answers if code == 402)
    assert refused["error"]["code"] == "INSUFFICIENT_CREDITS"
    assert refused["error"]["details"] == {"required": 10, "balance": 0}
    saved = next(body for code, body in answers if code == 201)
    assert [avatar["name"] for avatar in saved["avatars"]] == ["Ayu"]
    assert CreditAccount.objects.get(user=user).balance == 0
    assert list(Avatar.objects.filter(project=project).values_list("name", flat=True)) == ["Ayu"]
    assert Preview.objects.filter(owner=user).count() == 1
    assert [e.delta for e in CreditLedgerEntry.objects.filter(account__user=user).order_by("id")] == [100, -90, -10]
    assert CreditHold.objects.count() == 0


def test_legacy_generate_releases_what_it_did_not_spend(live_server, make_user, settings):
    require_postgresql()
    settings.AVATAR_SAVE_COST = 10
    user = make_user("dina", credits=30)
    project = make_project(user)
    url = f"{live_server.url}/api/avatar-creator/projects/{project.pk}/avatars/generate"
    code, body = _post(url, user.token, {"prompt": PROMPT, "name": "Ayu", "count": 2})
    assert code == 201
    assert [avatar["name"] for avatar in body["avatars"]] == ["Ayu - Variation 1", "Ayu - Variation 2"]
    assert CreditAccount.objects.get(user=user).balance == 10
    assert CreditHold.objects.count() == 0
    assert services.credits_available_for_user(user=user) == 10


def test_credit_hold_keeps_its_credits_from_other_charges(make_user, settings):
    require_postgresql()
    user = make_user("eko", credits=10)
    hold = services.credits_hold(user=user, amount=10, ttl=60)
    with pytest.raises(InsufficientCredits):
        services.credits_charge(user=user, amount=10)
    services.credits_release(hold=hold)
    assert services.credits_available_for_user(user=user) == 10


def test_legacy_generate_finishing_on_a_failed_read_lets_the_hold_go(make_user, settings, monkeypatch, held_queue):
    from django.db import DatabaseError

    from avatar_creator.prompts import Persona
    from avatar_creator.services import avatars as avatars_service

    settings.AVATAR_SAVE_COST = 10
    user = make_user("fajar", credits=30)
    generation = services.avatars_generate_begin(user=user, project=make_project(user), name="Ayu", count=2,
                                                 persona=Persona(prompt=PROMPT))  # fmt: skip
    assert services.credits_available_for_user(user=user) == 10

    def broken(previews):
        raise DatabaseError("connection lost")

    monkeypatch.setattr(avatars_service, "_refreshed", broken)
    with pytest.raises(DatabaseError):
        services.avatars_generate_finish(generation=generation)

    assert (CreditHold.objects.count(), services.credits_available_for_user(user=user)) == (0, 30)
