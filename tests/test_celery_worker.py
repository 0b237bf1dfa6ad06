"""The whole flow through a real Celery worker process, Redis as broker, PostgreSQL as the database."""

import time

from avatar_creator.models import CreditAccount, Preview
from tests.factories import make_project
from tests.fake_image_api import Reply

PROMPT = "Professional Indonesian woman with modern hijab, smiling"


def poll(api, preview_id, *, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        preview = api.get(f"/api/avatar-creator/previews/{preview_id}").json()["preview"]
        if preview["status"] not in ("queued", "running"):
            return preview
        time.sleep(0.1)
    raise AssertionError(f"preview {preview_id} did not finish: {preview}")


def test_worker_runs_the_waiting_flow_and_save(celery_worker, fake_image_api, alice_api, alice):
    fake_image_api.script(Reply("ok", delay=0.3))
    project = make_project(alice)
    body = {"prompt": PROMPT, "bodyType": "full_body", "seed": 4321}
    response = alice_api.post(
        f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview", body, format="json"
    )
    assert response.status_code == 200, celery_worker.log()
    preview = response.json()["preview"]
    assert (preview["status"], preview["width"], preview["height"], preview["seed"]) == ("succeeded", 768, 1344, 4321)
    (sent,) = fake_image_api.requests
    assert sent.header("Authorization") == "Bearer hf_worker_key"
    assert (sent.json["parameters"]["width"], sent.json["parameters"]["height"]) == (768, 1344)
    assert "succeeded" in celery_worker.log()

    saved = alice_api.post(
        f"/api/avatar-creator/projects/{project.pk}/avatars/save-preview",
        {"previewId": preview["id"], "name": "Worker made"},
        format="json",
    )
    assert saved.status_code == 201
    assert CreditAccount.objects.get(user=alice).balance == 90


def test_worker_runs_the_async_flow_with_retries(celery_worker, fake_image_api, alice_api, alice):
    fake_image_api.script(Reply("loading", estimated_time=0.1), Reply("server_error"), Reply("ok", delay=0.2))
    project = make_project(alice)
    response = alice_api.post(
        f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview",
        {"prompt": PROMPT},
        format="json",
        HTTP_PREFER="respond-async",
    )
    assert response.status_code == 202
    assert response.json()["preview"]["status"] == "queued"
    finished = poll(alice_api, response.json()["preview"]["id"])
    assert finished["status"] == "succeeded", celery_worker.log()
    assert finished["attempts"] == 3
    assert [r.reply for r in fake_image_api.requests] == ["loading", "server_error", "ok"]


def test_worker_cancel_while_running_discards_the_result(celery_worker, fake_image_api, alice_api, alice):
    fake_image_api.script(Reply("ok", delay=1.5))
    project = make_project(alice)
    response = alice_api.post(
        f"/api/avatar-creator/projects/{project.pk}/avatars/generate-preview",
        {"prompt": PROMPT},
        format="json",
        HTTP_PREFER="respond-async",
    )
    preview_id = response.json()["preview"]["id"]
    deadline = time.monotonic() + 10
    while Preview.objects.get(pk=preview_id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    canceled = alice_api.post(f"/api/avatar-creator/previews/{preview_id}/cancel").json()["preview"]
    assert canceled["status"] == "canceled"
    time.sleep(2)
    preview = Preview.objects.get(pk=preview_id)
    assert (preview.status, preview.image.name) == ("canceled", "")
    assert len(fake_image_api.requests) == 1
