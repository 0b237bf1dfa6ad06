"""FLUX_LORA_SCALE reaches the model on every route that takes one, asserted on what the fake provider received.

The fake image API stands in for the Hub (the provider mapping), the Inference Providers router (Replicate and
fal-ai answer JSON with an image URL, as they do) and a custom endpoint.
"""

import pytest
from huggingface_hub import constants as hf_constants
from huggingface_hub.inference._providers import _common as hf_providers_common
from huggingface_hub.inference._providers import hf_inference as hf_inference_provider

from avatar_creator.generators import get_generator
from avatar_creator.prompts import dimensions_for
from tests.test_generators import LORA_MODEL, hf_settings, make_request  # noqa: F401 (the hf_settings fixture)

SCALE = 0.7
LORA_WEIGHTS = f"https://huggingface.co/{LORA_MODEL}/resolve/main/lora.safetensors"


@pytest.fixture
def lora_settings(request):
    """test_generators' Hugging Face settings with the LoRA on, routed by provider (no custom endpoint)."""
    settings = request.getfixturevalue("hf_settings")
    settings.FLUX_LORA_SCALE = SCALE
    settings.HF_INFERENCE_URL = ""
    return settings


@pytest.fixture
def router_on_fake(lora_settings, fake_image_api, monkeypatch):
    """The Hub and the Inference Providers router are both the fake (an hf_ key goes through the router)."""
    monkeypatch.setattr(hf_constants, "ENDPOINT", fake_image_api.url)
    monkeypatch.setattr(hf_constants, "INFERENCE_PROXY_TEMPLATE", fake_image_api.url + "/{provider}")
    hf_providers_common._fetch_inference_provider_mapping.cache_clear()
    hf_inference_provider._check_supported_task.cache_clear()
    yield fake_image_api
    hf_providers_common._fetch_inference_provider_mapping.cache_clear()
    hf_inference_provider._check_supported_task.cache_clear()


def test_lora_scale_reaches_replicate_as_input_lora_scale(router_on_fake, lora_settings):
    lora_settings.HF_PROVIDER = "replicate"

    result = get_generator().generate(make_request())

    (sent,) = router_on_fake.requests
    assert sent.path == "/replicate/v1/models/black-forest-labs/flux-dev-lora/predictions"
    assert sent.json["input"]["lora_scale"] == SCALE
    assert sent.json["input"]["lora_weights"] == f"https://huggingface.co/{LORA_MODEL}"
    assert (result.width, result.height) == dimensions_for("half_body")


def test_lora_scale_reaches_fal_flux_lora_as_loras_scale(router_on_fake, lora_settings):
    lora_settings.HF_PROVIDER = "fal-ai"

    result = get_generator().generate(make_request(body_type="full_body"))

    (sent,) = router_on_fake.requests
    assert sent.path == "/fal-ai/fal-ai/flux-lora"
    assert sent.json["loras"] == [{"path": LORA_WEIGHTS, "scale": SCALE}]
    assert "lora_scale" not in sent.json
    assert sent.json["image_size"] == {"width": 768, "height": 1344}
    assert (result.width, result.height) == (768, 1344)


def test_lora_scale_reaches_a_custom_endpoint_in_parameters(lora_settings, fake_image_api):
    lora_settings.HF_INFERENCE_URL = f"{fake_image_api.url}/models/{LORA_MODEL}"
    lora_settings.HF_PROVIDER = "fal-ai"  # ignored: a custom endpoint is called verbatim

    get_generator().generate(make_request())

    (sent,) = fake_image_api.requests
    assert sent.path == f"/models/{LORA_MODEL}"
    assert sent.json["parameters"]["lora_scale"] == SCALE


def test_lora_scale_is_not_sent_to_serverless_hf_inference(router_on_fake, lora_settings, monkeypatch):
    """Its text-to-image spec has no such parameter (README: not honoured there)."""
    from huggingface_hub.inference._providers import PROVIDERS

    lora_settings.HF_PROVIDER = "hf-inference"
    monkeypatch.setattr(PROVIDERS["hf-inference"]["text-to-image"], "base_url", f"{router_on_fake.url}/hf-inference")

    get_generator().generate(make_request())

    (sent,) = router_on_fake.requests
    assert "lora_scale" not in sent.json["parameters"]


def test_lora_scale_is_not_sent_when_the_lora_is_off(router_on_fake, lora_settings):
    lora_settings.FLUX_USE_LORA = False
    lora_settings.HF_PROVIDER = "replicate"

    get_generator().generate(make_request())

    (sent,) = router_on_fake.requests
    assert "lora_scale" not in sent.json["input"]
