"""Property-based tests of the whole API against its own OpenAPI schema (Schemathesis, in-process WSGI).

Every operation of /api/schema/ is called with generated valid and invalid input and a valid Bearer token.
The answer must never be a 5xx, must use a documented status and content type, and its body must match the schema.
Half of the generated resource ids are swapped for ids of real rows, so the success paths are exercised too.
Phases: the deterministic coverage cases (boundaries, missing fields, unexpected methods) plus 25 fuzzed cases per
operation; derandomized, so every run sends the same requests. The offline generator keeps generation fast.
"""

import itertools
import re
import tempfile
import uuid
from pathlib import Path

import pytest
import schemathesis
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from avatar_creator import services
from avatar_creator.models import Avatar, Preview, Project
from tests.factories import wait_finished

# Hypothesis keeps caches in ./.hypothesis by default; keep the checkout clean.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "lumiku-hypothesis")
# Deterministic: a fixed seed and derandomized Hypothesis, so CI runs the same cases every time.
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20240601,
        "generation": {"mode": "all", "deterministic": True, "database": "none"},
        "phases": {"coverage": {"enabled": True}, "stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler(), config=CONFIG)

# No 5xx, nothing undocumented, invalid input refused. Not `positive_data_acceptance`: valid input can still be
# refused for reasons a schema cannot express (an unknown id, a taken username, not enough credits).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
PROMPT = "Professional Indonesian woman with modern hijab, smiling"
_calls = itertools.count()
_async_calls = itertools.count()
ID_PATTERN = re.compile(r"[0-9a-fA-F-]{36}")


@pytest.fixture
def owner(make_user, settings):
    # Generated cases call the generators many times: lift the per-user limits the product puts on people.
    settings.AVATAR_PREVIEW_RATE = "100000/hour"
    settings.AVATAR_SYNC_WAIT = 30
    return make_user("schemathesis", credits=1_000_000)


_rows: dict[str, str] = {}


def _ensure_rows(owner) -> dict[str, str]:
    """A project, a succeeded preview and a saved avatar for cases to target; made again when a case deleted them."""
    project = Project.objects.filter(pk=_rows.get("projects"), owner=owner).first()
    if project is None:
        project = services.project_create(owner=owner, name="Schemathesis")
        _rows.clear()
        _rows["projects"] = str(project.pk)
    if not Preview.objects.filter(pk=_rows.get("previews"), project=project).exists():
        preview = wait_finished(services.preview_request(user=owner, project=project, prompt=PROMPT, seed=1))
        _rows["previews"] = str(preview.pk)
    if not Avatar.objects.filter(pk=_rows.get("avatars"), project=project).exists():
        preview = wait_finished(services.preview_request(user=owner, project=project, prompt=PROMPT, seed=2))
        avatar, _ = services.preview_save(user=owner, project=project, preview_id=preview.pk, name="Saved")
        _rows["avatars"] = str(avatar.pk)
    return _rows


def _point_at_real_rows(case, rows: dict[str, str]) -> None:
    """Every other case targets real rows; only valid ids are swapped, an invalid one (a negative case) stays."""
    if next(_calls) % 2:
        return
    generated = (case.path_parameters or {}).get("id")
    if isinstance(generated, str) and ID_PATTERN.fullmatch(generated):
        resource = case.path.split("/")[3]  # /api/avatar-creator/<resource>/{id}...
        case.path_parameters["id"] = rows[resource]
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("previewId"), str) and _is_uuid(body["previewId"]):
        body["previewId"] = rows["previews"]
    # Any string is a valid Prefer header, so random ones almost never ask for the asynchronous answer: do it here.
    if "Prefer" in (case.headers or {}) and next(_async_calls) % 2:
        case.headers["Prefer"] = "respond-async"


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@hypothesis_settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_api_conforms_to_its_schema(case, owner):
    cache.clear()  # the login throttle would answer most auth cases 429 and hide what they test
    rows = _ensure_rows(owner)
    _point_at_real_rows(case, rows)
    case.call_and_validate(headers={"Authorization": f"Bearer {owner.token}"}, checks=CHECKS)
