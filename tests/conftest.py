import itertools
import shutil

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from avatar_creator import services
from tests.fake_image_api import fake_image_api_fixture  # noqa: F401 - fixtures shared by every test module
from tests.worker import celery_worker_fixture, worker_env_fixture  # noqa: F401

_counter = itertools.count(1)


@pytest.fixture(autouse=True, scope="session")
def _test_media_root():
    yield
    shutil.rmtree(settings.TEST_MEDIA_ROOT, ignore_errors=True)


@pytest.fixture(autouse=True)
def _clean_state():
    """Each test starts with an empty cache (throttles) and leaves no media behind."""
    cache.clear()
    yield
    for root in (settings.MEDIA_ROOT, settings.PRIVATE_MEDIA_ROOT):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_user(db):
    def make(username: str | None = None, *, password: str = "correct-horse-battery-9", credits: int | None = None):
        username = username or f"user{next(_counter)}"
        user, token = services.user_register(username=username, password=password, email=f"{username}@example.com")
        if credits is not None:
            account = services.credit_account_for_user(user=user)
            services.credits_add(account=account, amount=credits - account.balance, reason="adjustment")
        user.token = token.key
        return user

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def client_for():
    def make(user) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {user.token}")
        return client

    return make


@pytest.fixture
def alice_api(client_for, alice):
    return client_for(alice)


@pytest.fixture
def bob_api(client_for, bob):
    return client_for(bob)
