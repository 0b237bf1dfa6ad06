"""The image backends: the offline placeholder, and the Hugging Face client against a real local HTTP server."""

from io import BytesIO

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from huggingface_hub import constants as hf_constants
from huggingface_hub.inference._providers import PROVIDERS
from huggingface_hub.inference._providers import _common as hf_providers_common
from huggingface_hub.inference._providers import hf_inference as hf_inference_provider
from PIL import Image

from avatar_creator.errors import http_status_for
from avatar_creator.generators import (
    GENERATION_FAILED,
    GENERATION_TIMEOUT,
    GENERATOR_AUTH_FAILED,
    GENERATOR_NOT_CONFIGURED,
    MODEL_LOADING,
    RATE_LIMIT_EXCEEDED,
    GenerationError,
    GenerationRequest,
    Generator,
    HuggingFaceGenerator,
    OfflineGenerator,
    get_generator,
)
from avatar_creator.generators.offline import LABEL
from avatar_creator.prompts import build_negative_prompt, build_prompt, dimensions_for
from tests.fake_image_api import Reply, fake_image_api_fixture  # noqa: F401 (the fake_image_api fixture)

API_KEY = "hf_test_key_not_real"
LORA_MODEL = "XLabs-AI/flux-RealismLora"
BASE_MODEL = "black-forest-labs/FLUX.1-dev"


def make_request(*, body_type: str = "half_body", prompt: str = "a calm lighthouse keeper", seed: int = 1234):
    width, height = dimensions_for(body_type)
    return GenerationRequest(
        prompt=build_prompt(
            prompt=prompt, gender="male", age_range="mature", style="casual", ethnicity=None, body_type=body_type
        ),
        negative_prompt=build_negative_prompt(body_type=body_type),
        width=width,
        height=height,
        seed=seed,
        num_inference_steps=24,
        guidance_scale=3.0,
    )


def decode(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


@pytest.fixture
def hf_settings(settings, fake_image_api):
    """The Hugging Face generator pointed at the fake as a custom endpoint."""
    settings.AVATAR_GENERATOR = "huggingface"
    settings.HUGGINGFACE_API_KEY = API_KEY
    settings.FLUX_MODEL = BASE_MODEL
    settings.FLUX_LORA_MODEL = LORA_MODEL
    settings.FLUX_USE_LORA = True
    settings.FLUX_LORA_SCALE = 0.9
    settings.FLUX_TIMEOUT = 5.0
    settings.HF_PROVIDER = "auto"
    settings.HF_INFERENCE_URL = f"{fake_image_api.url}/models/{LORA_MODEL}"
    return settings


@pytest.fixture
def hub_on_fake(hf_settings, fake_image_api, monkeypatch):
    """No custom endpoint: the library routes the model id itself, with the Hub and the router both on the fake.

    huggingface_hub reads the Hub address from constants.ENDPOINT at call time, but the hf-inference helper
    captured the router address when the library was imported, so that instance attribute is patched too.
    """
    hf_settings.HF_INFERENCE_URL = ""
    monkeypatch.setattr(hf_constants, "ENDPOINT", fake_image_api.url)
    monkeypatch.setattr(PROVIDERS["hf-inference"]["text-to-image"], "base_url", f"{fake_image_api.url}/hf-inference")
    # The library caches Hub answers per model id for the process; keep the fake's answers out of other tests.
    hf_providers_common._fetch_inference_provider_mapping.cache_clear()
    hf_inference_provider._check_supported_task.cache_clear()
    yield fake_image_api
    hf_providers_common._fetch_inference_provider_mapping.cache_clear()
    hf_inference_provider._check_supported_task.cache_clear()


def generate_error(request: GenerationRequest | None = None) -> GenerationError:
    with pytest.raises(GenerationError) as caught:
        get_generator().generate(request or make_request())
    return caught.value


# Offline generator


def test_offline_generator_is_deterministic():
    request = make_request()

    first = OfflineGenerator().generate(request)
    second = OfflineGenerator().generate(request)

    assert first.image_bytes == second.image_bytes


@pytest.mark.parametrize("body_type", ["half_body", "full_body"])
def test_offline_generator_sizes_the_jpeg_as_requested(body_type):
    request = make_request(body_type=body_type)

    result = OfflineGenerator().generate(request)

    image = decode(result.image_bytes)
    assert (image.format, image.size) == ("JPEG", dimensions_for(body_type))
    assert (result.content_type, result.width, result.height) == ("image/jpeg", *dimensions_for(body_type))
    assert (result.seed, result.model) == (1234, "offline")


def test_offline_generator_differs_by_prompt():
    first = OfflineGenerator().generate(make_request(prompt="a calm lighthouse keeper"))
    second = OfflineGenerator().generate(make_request(prompt="a cheerful baker at dawn"))

    assert first.image_bytes != second.image_bytes


def test_offline_generator_differs_by_seed():
    first = OfflineGenerator().generate(make_request(seed=1))
    second = OfflineGenerator().generate(make_request(seed=2))

    assert first.image_bytes != second.image_bytes


def test_offline_generator_draws_the_visible_label():
    request = make_request()

    image = decode(OfflineGenerator().generate(request).image_bytes).convert("RGB")

    # The label text is drawn in amber on a dark band across the bottom; count its pixels there.
    band = image.crop((0, int(request.height * 0.9), request.width, request.height))
    amber = sum(1 for red, green, blue in band.get_flattened_data() if red > 200 and 150 < green < 240 and blue < 90)
    assert amber > 500
    assert LABEL == "OFFLINE PREVIEW - not generated by FLUX"


def test_offline_generator_is_fast():
    result = OfflineGenerator().generate(make_request())

    assert result.duration_s < 0.5


# Choosing a generator


def test_get_generator_offline(settings):
    settings.AVATAR_GENERATOR = "offline"

    generator = get_generator()

    assert isinstance(generator, OfflineGenerator)
    assert isinstance(generator, Generator)
    assert (generator.name, generator.model) == ("offline", "offline")


def test_get_generator_huggingface_uses_the_lora_model(hf_settings):
    generator = get_generator()

    assert isinstance(generator, HuggingFaceGenerator)
    assert (generator.name, generator.model, generator.lora_scale) == ("huggingface", LORA_MODEL, 0.9)


def test_get_generator_huggingface_without_lora_uses_the_base_model(hf_settings):
    hf_settings.FLUX_USE_LORA = False

    generator = get_generator()

    assert (generator.model, generator.lora_scale) == (BASE_MODEL, None)


def test_get_generator_without_api_key_is_not_configured(hf_settings):
    hf_settings.HUGGINGFACE_API_KEY = ""

    with pytest.raises(GenerationError) as caught:
        get_generator()

    assert (caught.value.code, caught.value.retryable, caught.value.http_status) == (
        GENERATOR_NOT_CONFIGURED,
        False,
        503,
    )


def test_get_generator_unknown_name_is_not_configured(settings):
    settings.AVATAR_GENERATOR = "stable-diffusion"

    with pytest.raises(GenerationError) as caught:
        get_generator()

    assert (caught.value.code, caught.value.retryable) == (GENERATOR_NOT_CONFIGURED, False)


def test_http_status_for_each_code():
    codes = [
        MODEL_LOADING,
        RATE_LIMIT_EXCEEDED,
        GENERATION_TIMEOUT,
        GENERATION_FAILED,
        GENERATOR_NOT_CONFIGURED,
        GENERATOR_AUTH_FAILED,
    ]

    assert {code: http_status_for(code) for code in codes} == {
        "MODEL_LOADING": 503,
        "RATE_LIMIT_EXCEEDED": 429,
        "GENERATION_TIMEOUT": 504,
        "GENERATION_FAILED": 502,
        "GENERATOR_NOT_CONFIGURED": 503,
        "GENERATOR_AUTH_FAILED": 502,
    }


# Hugging Face generator: what it sends


@pytest.mark.parametrize("body_type", ["half_body", "full_body"])
def test_huggingface_sends_the_hf_inference_contract(hf_settings, fake_image_api, body_type):
    request = make_request(body_type=body_type, seed=987654321)

    result = get_generator().generate(request)

    (sent,) = fake_image_api.requests
    width, height = dimensions_for(body_type)
    assert sent.path == f"/models/{LORA_MODEL}"
    assert sent.header("Authorization") == f"Bearer {API_KEY}"
    assert sent.json == {
        "inputs": request.prompt,
        "parameters": {
            "negative_prompt": build_negative_prompt(body_type=body_type),
            "width": width,
            "height": height,
            "num_inference_steps": 24,
            "guidance_scale": 3.0,
            "seed": 987654321,
            "lora_scale": 0.9,
        },
    }
    assert (result.content_type, result.width, result.height) == ("image/jpeg", width, height)
    assert (result.seed, result.model) == (987654321, LORA_MODEL)
    assert decode(result.image_bytes).size == (width, height)


def test_huggingface_custom_endpoint_is_used_verbatim_whatever_the_provider(hf_settings, fake_image_api):
    hf_settings.HF_PROVIDER = "fal-ai"
    hf_settings.HF_INFERENCE_URL = f"{fake_image_api.url}/endpoints/avatar?revision=7"

    get_generator().generate(make_request())

    assert [request.path for request in fake_image_api.all_requests] == ["/endpoints/avatar?revision=7"]


def test_huggingface_without_lora_sends_no_lora_scale(hf_settings, fake_image_api):
    hf_settings.FLUX_USE_LORA = False

    result = get_generator().generate(make_request())

    assert "lora_scale" not in fake_image_api.requests[0].json["parameters"]
    assert result.model == BASE_MODEL


def test_huggingface_reports_the_real_image_format(hf_settings, fake_image_api):
    fake_image_api.script(Reply("ok", image_format="PNG"), Reply("ok", image_format="WEBP"))

    png = get_generator().generate(make_request())
    webp = get_generator().generate(make_request())

    assert (png.content_type, decode(png.image_bytes).format) == ("image/png", "PNG")
    assert (webp.content_type, decode(webp.image_bytes).format) == ("image/webp", "WEBP")


@pytest.mark.parametrize("provider", ["hf-inference", "auto"])
def test_huggingface_default_routing_posts_to_the_model_path(hf_settings, hub_on_fake, provider):
    hf_settings.HF_PROVIDER = provider

    result = get_generator().generate(make_request())

    (sent,) = hub_on_fake.requests
    assert sent.path == f"/hf-inference/models/{LORA_MODEL}"
    assert sent.header("Authorization") == f"Bearer {API_KEY}"
    # The serverless hf-inference API has no lora_scale parameter, so none is sent there.
    assert "lora_scale" not in sent.json["parameters"]
    assert result.content_type == "image/jpeg"
    hub_paths = [request.path.split("?")[0] for request in hub_on_fake.all_requests if request.method == "GET"]
    assert set(hub_paths) == {f"/api/models/{LORA_MODEL}"}


# Hugging Face generator: how failures map


def test_huggingface_model_loading_is_retryable_after_estimated_time(hf_settings, fake_image_api):
    fake_image_api.script(Reply("loading", estimated_time=42.5))

    error = generate_error()

    assert (error.code, error.retryable, error.retry_after, error.status) == (MODEL_LOADING, True, 42.5, 503)
    assert error.http_status == 503
    assert error.message == "The image model is loading on the server. Try again in about 42 seconds."


def test_huggingface_loading_then_ok_succeeds_on_the_next_call(hf_settings, fake_image_api):
    fake_image_api.script("loading", "ok")

    assert generate_error().code == MODEL_LOADING
    result = get_generator().generate(make_request())

    assert result.content_type == "image/jpeg"
    assert [request.reply for request in fake_image_api.requests] == ["loading", "ok"]


def test_huggingface_rate_limit_uses_retry_after_header(hf_settings, fake_image_api):
    fake_image_api.script(Reply("rate_limit", retry_after="17"))

    error = generate_error()

    assert (error.code, error.retryable, error.retry_after, error.status) == (RATE_LIMIT_EXCEEDED, True, 17.0, 429)
    assert error.http_status == 429


def test_huggingface_rate_limit_accepts_an_http_date(hf_settings, fake_image_api):
    fake_image_api.script(Reply("rate_limit", retry_after="Wed, 21 Oct 2015 07:28:00 GMT"))

    error = generate_error()

    # A date in the past means "now".
    assert (error.code, error.retry_after) == (RATE_LIMIT_EXCEEDED, 0.0)


def test_huggingface_unauthorized_is_auth_failed_and_final(hf_settings, fake_image_api):
    fake_image_api.script("unauthorized")

    error = generate_error()

    assert (error.code, error.retryable, error.status, error.http_status) == (GENERATOR_AUTH_FAILED, False, 401, 502)
    assert error.message == "The image API rejected the API key (HTTP 401): check HUGGINGFACE_API_KEY."
    assert API_KEY not in error.message


def test_huggingface_bad_request_is_final(hf_settings, fake_image_api):
    fake_image_api.script("bad_request")

    error = generate_error()

    assert (error.code, error.retryable, error.status) == (GENERATION_FAILED, False, 400)
    assert error.message == (
        "The image API refused the request (HTTP 400): Input validation error: `width` must be a multiple of 8"
    )


def test_huggingface_server_error_is_retryable(hf_settings, fake_image_api):
    fake_image_api.script("server_error")

    error = generate_error()

    assert (error.code, error.retryable, error.status, error.http_status) == (GENERATION_FAILED, True, 500, 502)


def test_huggingface_timeout_is_generation_timeout(hf_settings, fake_image_api):
    hf_settings.FLUX_TIMEOUT = 0.3
    fake_image_api.script(Reply("timeout", delay=2.0))

    error = generate_error()

    assert (error.code, error.retryable, error.http_status) == (GENERATION_TIMEOUT, True, 504)
    assert error.message == "The image API did not answer within 0.3 seconds."


def test_huggingface_slow_answer_within_timeout_succeeds(hf_settings, fake_image_api):
    hf_settings.FLUX_TIMEOUT = 3.0
    fake_image_api.script(Reply("ok", delay=0.3))

    result = get_generator().generate(make_request())

    assert result.content_type == "image/jpeg"
    assert result.duration_s >= 0.3


def test_huggingface_garbage_bytes_are_generation_failed(hf_settings, fake_image_api):
    fake_image_api.script("garbage")

    error = generate_error()

    assert (error.code, error.retryable, error.status) == (GENERATION_FAILED, True, None)
    assert error.message == "The image API returned data that is not a valid image."


def test_huggingface_unreachable_endpoint_is_retryable(hf_settings, fake_image_api):
    url = f"{fake_image_api.url}/models/{LORA_MODEL}"
    fake_image_api.stop()
    hf_settings.HF_INFERENCE_URL = url

    error = generate_error()

    assert (error.code, error.retryable, error.message) == (
        GENERATION_FAILED,
        True,
        "The image API could not be reached.",
    )


def test_huggingface_unknown_provider_is_not_configured(hf_settings):
    hf_settings.HF_INFERENCE_URL = ""
    hf_settings.HF_PROVIDER = "no-such-provider"

    error = generate_error()

    assert (error.code, error.retryable) == (GENERATOR_NOT_CONFIGURED, False)
    assert error.message == (
        f"The model '{LORA_MODEL}' is not available for text-to-image from provider 'no-such-provider'."
    )


def test_huggingface_lets_the_workers_time_limit_through(hf_settings, fake_image_api, monkeypatch):
    """Celery's soft time limit, raised inside the call, is the attempt's to settle (GENERATION_TIMEOUT), not an
    unexpected error of the image API."""
    from huggingface_hub import InferenceClient

    def out_of_time(self, request_parameters):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(InferenceClient, "_inner_post", out_of_time)

    with pytest.raises(SoftTimeLimitExceeded):
        get_generator().generate(make_request())
