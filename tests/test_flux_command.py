import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.fake_image_api import Reply

LORA = "XLabs-AI/flux-RealismLora"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def flux(settings, fake_image_api):
    settings.HUGGINGFACE_API_KEY = "hf_operator_key"
    settings.HF_INFERENCE_URL = f"{fake_image_api.url}/models/{LORA}"
    settings.FLUX_TIMEOUT = 2.0
    return fake_image_api


def test_test_flux_avatar_succeeds_against_the_fake(flux, capsys, tmp_path):
    out = tmp_path / "avatar.jpg"
    call_command("test_flux_avatar", "--body-type", "full_body", "--output", str(out))
    printed = capsys.readouterr().out
    assert "API key:   present" in printed
    assert f"Endpoint:  {flux.url}/models/{LORA}" in printed
    assert f"Model:     {LORA} (base black-forest-labs/FLUX.1-dev)" in printed
    assert "LoRA:      on, scale 0.9" in printed
    assert "OK: image/jpeg 768x1344" in printed
    (sent,) = flux.requests
    assert sent.header("Authorization") == "Bearer hf_operator_key"
    assert (sent.json["parameters"]["width"], sent.json["parameters"]["height"]) == (768, 1344)
    assert out.read_bytes()[:2] == b"\xff\xd8"
    assert "hf_operator_key" not in printed


def test_test_flux_avatar_without_a_key_fails_clearly(settings):
    settings.HUGGINGFACE_API_KEY = ""
    with pytest.raises(CommandError, match="^HUGGINGFACE_API_KEY is not set"):
        call_command("test_flux_avatar")


def test_test_flux_avatar_with_a_wrong_key_fails_clearly(flux):
    flux.script("unauthorized")
    with pytest.raises(CommandError, match="^GENERATOR_AUTH_FAILED: .*API key"):
        call_command("test_flux_avatar")
    assert len(flux.requests) == 1


def test_test_flux_avatar_garbage_image_fails(flux):
    flux.script(Reply("garbage"))
    with pytest.raises(CommandError, match="GENERATION_FAILED"):
        call_command("test_flux_avatar")


def test_test_flux_avatar_exits_non_zero_with_one_line(fake_image_api):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "lumiku.settings.test", "LUMIKU_TEST_HF_KEY": ""}
    result = subprocess.run(
        [sys.executable, "manage.py", "test_flux_avatar"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: HUGGINGFACE_API_KEY is not set: there is no key to call FLUX with."
    ]


def _offline_run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "lumiku.settings.test", "LUMIKU_TEST_HF_KEY": ""}
    return subprocess.run(
        [sys.executable, "manage.py", "test_flux_avatar", "--offline", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_test_flux_avatar_offline_succeeds_without_a_key(tmp_path):
    out = tmp_path / "avatar.jpg"
    result = _offline_run("--body-type", "full_body", "--output", str(out))
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("Step ")] == [
        "Step 1/4: configuration",
        "Step 2/4: generation",
        "Step 3/4: file",
        "Step 4/4: duration and size",
    ]
    assert "Generator: offline (a labelled drawing; no API key, no network)" in lines
    assert "Image:     image/jpeg, decodes as 768x1344" in lines
    assert out.read_bytes()[:2] == b"\xff\xd8"


def test_test_flux_avatar_offline_ends_with_one_verdict_line():
    result = _offline_run()
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("OK: image/jpeg 1024x1024, ")
    assert lines[-1].endswith(", model offline")
    assert [line for line in lines if line.startswith(("OK:", "FAILED", "CommandError"))] == [lines[-1]]


def test_test_flux_avatar_offline_calls_no_image_api(settings, fake_image_api, capsys):
    settings.HUGGINGFACE_API_KEY = "hf_operator_key"
    settings.HF_INFERENCE_URL = f"{fake_image_api.url}/models/{LORA}"
    call_command("test_flux_avatar", "--offline")
    assert capsys.readouterr().out.splitlines()[-1].startswith("OK: image/jpeg 1024x1024")
    assert fake_image_api.all_requests == []


def test_test_flux_avatar_failure_prints_the_steps_then_one_reason(flux, capsys):
    flux.script("unauthorized")
    with pytest.raises(CommandError, match="^GENERATOR_AUTH_FAILED: "):
        call_command("test_flux_avatar")
    printed = capsys.readouterr().out.splitlines()
    assert [line for line in printed if line.startswith("Step ")] == ["Step 1/4: configuration", "Step 2/4: generation"]
    assert not any(line.startswith("OK:") for line in printed)
