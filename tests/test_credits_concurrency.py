"""Concurrent saves can never overdraw: two real requests at once against PostgreSQL."""

import json
import threading
import urllib.error
import urllib.request

import pytest

from avatar_creator import services
from avatar_creator.models import Avatar, CreditAccount, CreditLedgerEntry
from tests.factories import make_project, wait_finished
from tests.services import require_postgresql

pytestmark = pytest.mark.django_db(transaction=True)
PROMPT = "Professional Indonesian woman with modern hijab, smiling"


def _post(url: str, token: str, body: dict) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _at_once(calls) -> list[int]:
    barrier = threading.Barrier(len(calls))
    results: list[int | None] = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.fixture
def funded(make_user, settings):
    require_postgresql()
    settings.AVATAR_SAVE_COST = 10
    user = make_user("carol", credits=10)
    project = make_project(user)
    return user, project


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_saves_of_two_previews_never_overdraw(live_server, funded, round_):
    user, project = funded
    previews = [wait_finished(services.preview_request(user=user, project=project, prompt=PROMPT)) for _ in range(2)]
    url = f"{live_server.url}/api/avatar-creator/projects/{project.pk}/avatars/save-preview"
    codes = _at_once([lambda p=p: _post(url, user.token, {"previewId": str(p.pk)}) for p in previews])
    assert sorted(codes) == [201, 402]
    assert CreditAccount.objects.get(user=user).balance == 0
    assert Avatar.objects.filter(project=project).count() == 1
    assert [e.delta for e in CreditLedgerEntry.objects.filter(account__user=user).order_by("id")] == [100, -90, -10]


def test_concurrent_saves_of_one_preview_charge_once(live_server, funded):
    user, project = funded
    services.credits_add(account=services.credit_account_for_user(user=user), amount=90, reason="grant")
    preview = wait_finished(services.preview_request(user=user, project=project, prompt=PROMPT))
    url = f"{live_server.url}/api/avatar-creator/projects/{project.pk}/avatars/save-preview"
    codes = _at_once([lambda: _post(url, user.token, {"previewId": str(preview.pk)}) for _ in range(4)])
    assert sorted(codes) == [200, 200, 200, 201]
    assert Avatar.objects.filter(preview=preview).count() == 1
    assert CreditAccount.objects.get(user=user).balance == 90
