import itertools
import shutil

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.backends.base.creation import TEST_DATABASE_PREFIX
from rest_framework.test import APIClient

from avatar_creator import queue, services
from avatar_creator.services import previews
from tests.fake_image_api import fake_image_api_fixture  # noqa: F401 - fixtures shared by every test module
from tests.worker import celery_worker_fixture, worker_env_fixture  # noqa: F401

_counter = itertools.count(1)


@pytest.fixture(autouse=True, scope="session")
def _test_media_root():
    yield
    shutil.rmtree(settings.TEST_MEDIA_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def django_db_setup(_test_media_root, django_db_setup):
    """pytest-django's, after the test media folder is made and so undone before it is removed: on SQLite the test
    database is a file in that folder (lumiku/settings/test.py)."""
    yield


@pytest.fixture(autouse=True, scope="session")
def _test_database_left_alone(django_db_setup, django_db_blocker):
    """Before the test database is dropped (this fixture is set up after it, so torn down before it): the embedded
    default's background pool and its sweep stop (avatar_creator/queue.py), and the sessions other threads still hold
    end. lumiku.asgi's thread pools (a2wsgi) keep their threads, and each thread its persistent connection, as in
    production; PostgreSQL refuses to drop a database with sessions on it."""
    yield
    queue.stop()
    # A run of tests that need no database made none (pytest-django sets up only the databases the tests ask for).
    if connection.vendor == "postgresql" and connection.settings_dict["NAME"].startswith(TEST_DATABASE_PREFIX):
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(autouse=True)
def _clean_state():
    """Each test starts with an empty cache (throttles) and leaves no media behind."""
    cache.clear()
    yield
    previews.heartbeats_stop()  # its database connection must not outlive the test database
    for root in (settings.MEDIA_ROOT, settings.PRIVATE_MEDIA_ROOT):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def flux(settings, fake_image_api):
    """Generation through the FLUX client against the fake image API (which a test can make slow or loading)."""
    settings.AVATAR_GENERATOR = "huggingface"
    settings.HUGGINGFACE_API_KEY = "hf_test_key_123"
    settings.HF_INFERENCE_URL = f"{fake_image_api.url}/models/XLabs-AI/flux-RealismLora"
    settings.FLUX_TIMEOUT = 8.0
    return fake_image_api


@pytest.fixture
def held_queue(monkeypatch):
    """Previews stay queued, as with a busy worker (the queue takes them, nobody runs them); a test that needs one
    finished runs it with services.preview_attempt."""
    monkeypatch.setattr("avatar_creator.services.previews._preview_enqueue", lambda *, preview_id: True)


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


@pytest.fixture
def admin_client(client, make_user):
    """A browser client signed in as a superuser (the admin's pages)."""
    operator = make_user("operator")
    get_user_model().objects.filter(pk=operator.pk).update(is_staff=True, is_superuser=True)
    client.force_login(get_user_model().objects.get(pk=operator.pk))
    return client
