"""prepared.model_instance: the instance `from_db` builds, without `Model.__init__` where nothing can tell."""

import pytest
from django.contrib.auth import get_user_model
from django.db.models.signals import post_init, pre_init

from avatar_creator.models import ApiToken, Avatar, Preview, PreviewStatus
from avatar_creator.prepared import model_instance
from tests.factories import make_avatar, make_preview, make_project

pytestmark = pytest.mark.django_db


def row_of(instance) -> tuple[list[str], list]:
    """The instance's columns as the database hands them back (what from_db is given)."""
    model = type(instance)
    names = [field.attname for field in model._meta.concrete_fields]
    values = list(model._default_manager.filter(pk=instance.pk).values_list(*names).get())
    return names, values


def state_of(instance) -> dict:
    """Everything an instance holds: its attributes, and where it came from."""
    attributes = {name: value for name, value in vars(instance).items() if name != "_state"}
    return {**attributes, "_state": (instance._state.adding, instance._state.db, instance._state.fields_cache)}


@pytest.fixture
def rows(alice):
    project = make_project(alice)
    preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    return [preview, alice, ApiToken.objects.get(user=alice), project]


def test_an_instance_is_what_from_db_builds(rows):
    for instance in rows:
        model = type(instance)
        names, values = row_of(instance)
        built = model_instance(model, "default", names, values)
        assert type(built) is model
        assert state_of(built) == state_of(model.from_db("default", names, values))
        assert built._state.adding is False and built.get_deferred_fields() == set()


def test_an_instance_of_some_columns_has_the_others_deferred(rows):
    preview = rows[0]
    built = model_instance(Preview, "default", ["id", "owner_id", "status"], [preview.pk, preview.owner_id, "queued"])
    assert state_of(built) == state_of(Preview.from_db("default", ["id", "owner_id", "status"],
                                                      [preview.pk, preview.owner_id, "queued"]))  # fmt: skip
    assert "prompt" in built.get_deferred_fields()
    assert built.prompt == preview.prompt  # read from the database, as a deferred field is
    assert (built.image.name, built.owner.username) == (preview.image.name, "alice")


def test_a_model_someone_listens_for_is_built_by_from_db(rows):
    preview = rows[0]
    names, values = row_of(preview)
    heard = []

    def listener(sender, **kwargs):
        heard.append(sender)

    for signal in (pre_init, post_init):
        signal.connect(listener, sender=Preview)
        try:
            built = model_instance(Preview, "default", names, values)
        finally:
            signal.disconnect(listener, sender=Preview)
        assert heard.pop() is Preview
        assert state_of(built) == state_of(Preview.from_db("default", names, values))
    model_instance(get_user_model(), "default", *row_of(rows[1]))  # nobody listens for users
    assert heard == []


def test_a_model_whose_fields_do_more_than_store_is_built_by_from_db(rows, monkeypatch):
    """An ImageField's descriptor updates the image's dimensions when it is set: Avatar goes through from_db."""
    avatar = make_avatar(rows[3])
    names, values = row_of(avatar)
    calls = []
    real = Avatar.from_db.__func__
    monkeypatch.setattr(Avatar, "from_db", classmethod(lambda cls, *args: calls.append(args) or real(cls, *args)))
    built = model_instance(Avatar, "default", names, values)
    assert calls == [("default", names, values)]
    assert built.image.name == avatar.image.name
