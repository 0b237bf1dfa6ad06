"""SPEC.md's flows against a fake image API (a real HTTP server on 127.0.0.1), tasks in-process."""

import pytest

from avatar_creator.models import Avatar, CreditAccount, Preview
from tests.factories import make_project
from tests.fake_image_api import Reply

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "Professional Indonesian woman with modern hijab, smiling"
LORA = "XLabs-AI/flux-RealismLora"


@pytest.fixture
def flux(flux, settings):
    settings.FLUX_TIMEOUT = 1.0
    settings.AVATAR_MAX_ATTEMPTS = 5
    return flux


@pytest.fixture
def project(alice):
    return make_project(alice)


def generate(api, project, **fields):
    body = {"prompt": PROMPT, "seed": 99, **fields}
    return api.post(f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview", body, format="json")


def save(api, project, preview_id, name="Ayu"):
    body = {"previewId": preview_id, "name": name}
    return api.post(f"/api/avatar-creator/projects/{project.pk}/avatars/save-preview", body, format="json")


def balance(user) -> int:
    return CreditAccount.objects.get(user=user).balance


@pytest.mark.parametrize(("body_type", "size"), [("half_body", (1024, 1024)), ("full_body", (768, 1344))])
def test_flow_generate_then_save_sends_the_contract(alice_api, alice, project, flux, body_type, size):
    response = generate(alice_api, project, bodyType=body_type, gender="female", style="professional")
    assert response.status_code == 200
    preview = response.json()["preview"]
    (sent,) = flux.requests
    assert sent.path == f"/models/{LORA}"
    assert sent.header("Authorization") == "Bearer hf_test_key_123"
    parameters = sent.json["parameters"]
    assert (parameters["width"], parameters["height"]) == size
    assert (parameters["seed"], parameters["num_inference_steps"], parameters["guidance_scale"]) == (99, 28, 3.5)
    assert parameters["negative_prompt"].startswith("blurry")
    assert sent.json["inputs"] == preview["enhancedPrompt"]
    assert (preview["width"], preview["height"]) == size
    stored = Preview.objects.get(pk=preview["id"])
    assert (stored.model_used, stored.attempts, stored.generator) == (LORA, 1, "huggingface")

    saved = save(alice_api, project, preview["id"])
    assert saved.status_code == 201
    assert saved.json()["avatar"]["seed"] == 99
    assert balance(alice) == 90


@pytest.mark.parametrize(
    "script",
    [
        ["loading", "loading", "ok"],
        [Reply("rate_limit", retry_after="1"), "ok"],
        ["server_error", "ok"],
        ["timeout", "ok"],
        ["garbage", "ok"],
    ],
    ids=["loading-loading-ok", "429-ok", "500-ok", "timeout-ok", "garbage-ok"],
)
def test_flow_transient_failures_are_retried_to_success(alice_api, project, flux, script):
    flux.script(*script)
    response = generate(alice_api, project)
    assert response.status_code == 200
    assert response.json()["preview"]["status"] == "succeeded"
    assert len(flux.requests) == len(script)
    assert Preview.objects.get().attempts == len(script)


def test_flow_rate_limit_waits_retry_after(alice_api, project, flux, settings):
    import time

    settings.AVATAR_RETRY_MAX_WAIT = 5
    flux.script(Reply("rate_limit", retry_after="1"), "ok")
    started = time.monotonic()
    assert generate(alice_api, project).status_code == 200
    assert time.monotonic() - started >= 1.0


def test_flow_unauthorized_fails_after_one_call_and_charges_nothing(alice_api, alice, project, flux):
    flux.script("unauthorized")
    response = generate(alice_api, project)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "GENERATOR_AUTH_FAILED"
    assert "API key" in error["message"]
    assert len(flux.requests) == 1
    preview = Preview.objects.get()
    assert (preview.status, preview.error_code, preview.attempts) == ("failed", "GENERATOR_AUTH_FAILED", 1)
    assert save(alice_api, project, str(preview.pk)).status_code == 409
    assert (balance(alice), Avatar.objects.count()) == (100, 0)


def test_flow_bad_request_is_not_retried(alice_api, project, flux):
    flux.script("bad_request")
    response = generate(alice_api, project)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "GENERATION_FAILED"
    assert len(flux.requests) == 1


def test_flow_model_loading_past_the_attempts_answers_503_with_retry_after(alice_api, alice, project, flux, settings):
    settings.AVATAR_MAX_ATTEMPTS = 2
    flux.script(Reply("loading", estimated_time=0.1), Reply("loading", estimated_time=37))
    response = generate(alice_api, project)
    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["code"], error["details"]["retryAfter"]) == ("MODEL_LOADING", 37)
    assert len(flux.requests) == 2
    assert balance(alice) == 100


def test_flow_rate_limit_exhausted_answers_429_with_header(alice_api, project, flux, settings):
    settings.AVATAR_MAX_ATTEMPTS = 1
    flux.script(Reply("rate_limit", retry_after="12"))
    response = generate(alice_api, project)
    assert response.status_code == 429
    assert response["Retry-After"] == "12"
    assert response.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"


def test_flow_timeouts_until_the_attempts_run_out_answer_504(alice_api, project, flux, settings):
    settings.AVATAR_MAX_ATTEMPTS = 2
    settings.FLUX_TIMEOUT = 0.3
    flux.script(Reply("timeout", delay=1), Reply("timeout", delay=1))
    response = generate(alice_api, project)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "GENERATION_TIMEOUT"


def test_flow_no_api_key_is_not_configured(alice_api, project, flux, settings):
    settings.HUGGINGFACE_API_KEY = ""
    response = generate(alice_api, project)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "GENERATOR_NOT_CONFIGURED"
    assert flux.requests == []


def test_flow_legacy_generate_through_the_fake(alice_api, alice, project, flux):
    body = {"prompt": PROMPT, "name": "Team", "count": 2, "seed": 5, "bodyType": "full_body"}
    response = alice_api.post(f"/api/avatar-creator/projects/{project.pk}/avatars/generate", body, format="json")
    assert response.status_code == 201
    assert sorted(r.json["parameters"]["seed"] for r in flux.requests) == [5, 6]
    assert {(r.json["parameters"]["width"], r.json["parameters"]["height"]) for r in flux.requests} == {(768, 1344)}
    assert [a["name"] for a in response.json()["avatars"]] == ["Team - Variation 1", "Team - Variation 2"]
    assert balance(alice) == 80


def test_flow_legacy_generate_partial_failure_saves_and_charges_only_successes(alice_api, alice, project, flux):
    flux.script("ok", "unauthorized")
    body = {"prompt": PROMPT, "name": "Team", "count": 2}
    response = alice_api.post(f"/api/avatar-creator/projects/{project.pk}/avatars/generate", body, format="json")
    assert response.status_code == 201
    assert len(response.json()["avatars"]) == 1
    assert response.json()["message"] == "1 of 2 avatar(s) generated and saved."
    assert balance(alice) == 90


def test_flow_legacy_generate_all_failing_answers_the_error(alice_api, alice, project, flux):
    flux.script("unauthorized", "unauthorized")
    body = {"prompt": PROMPT, "name": "Team", "count": 2}
    response = alice_api.post(f"/api/avatar-creator/projects/{project.pk}/avatars/generate", body, format="json")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "GENERATOR_AUTH_FAILED"
    assert (balance(alice), Avatar.objects.count()) == (100, 0)
