"""FLUX.1-dev (optionally with the XLabs Realism LoRA) through huggingface_hub's InferenceClient.

Routing (huggingface_hub 2.4.0, read from its source):

- HF_INFERENCE_URL set: the URL is the model. The library then always uses its "hf-inference" helper whatever
  HF_PROVIDER says, POSTs ``{"inputs": prompt, "parameters": {...}}`` to exactly that URL (no suffix, query kept)
  with ``Authorization: Bearer <HUGGINGFACE_API_KEY>``, and makes no call to the Hub.
- Otherwise the model id (FLUX_LORA_MODEL when FLUX_USE_LORA, else FLUX_MODEL) goes to HF_PROVIDER. "auto" asks the
  Hub which providers serve the model and takes the first; "hf-inference" checks the model's pipeline tag on the
  Hub, then POSTs to ``https://router.huggingface.co/hf-inference/models/<model id>``. Those Hub look-ups run
  without a timeout of their own (the library's shared HTTP client has none) and are cached per process.

FLUX_LORA_SCALE reaches the model on every route that can carry it: ``parameters.lora_scale`` for a custom
endpoint (its handler is ours to write; the field is part of that contract), ``input.lora_scale`` on Replicate,
and on fal-ai the scale of each entry of ``loras: [{path, scale}]``: the Hub maps the LoRA repo to fal's
``fal-ai/flux-lora`` and the library writes that list with a fixed scale of 1, which ``_prepare`` replaces with
ours. The serverless hf-inference API has no such parameter in its text-to-image spec, so it is not sent there;
other providers apply no LoRA through this client at all. avatar_creator/checks.py refuses a scale outside 0-2.

text_to_image() would hand back a decoded PIL image and drop the upstream bytes, so generate() runs the same
three steps it does (provider helper -> request, POST, provider response) to keep the exact bytes and the real
format. Those steps are private to huggingface_hub; the version is pinned and the tests drive this path
against a real local HTTP server, so an upgrade that changes them fails loudly.
"""

import email.utils
import logging
import re
import time
from datetime import UTC, datetime

import httpx2
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError
from huggingface_hub.inference._common import RequestParameters
from huggingface_hub.inference._providers import get_provider_helper
from huggingface_hub.inference._providers._common import TaskProviderHelper
from huggingface_hub.utils import parse_ratelimit_headers

from avatar_creator import images
from avatar_creator.errors import (
    GENERATION_FAILED,
    GENERATION_TIMEOUT,
    GENERATOR_AUTH_FAILED,
    GENERATOR_NOT_CONFIGURED,
    MODEL_LOADING,
    RATE_LIMIT_EXCEEDED,
)
from avatar_creator.generators.base import (
    GenerationError,
    GenerationRequest,
    GenerationResult,
)

logger = logging.getLogger(__name__)

TASK = "text-to-image"
# The largest side an upstream image may have (FLUX answers 1024 or 1344).
UPSTREAM_MAX_SIDE = 4096
# Providers whose text-to-image payload passes our extra parameters through to the model (see the docstring).
LORA_SCALE_PROVIDERS = frozenset({"replicate"})
# The provider whose payload lists the LoRA weights with their scale (fal-ai/flux-lora).
LORA_LIST_PROVIDER = "fal-ai"
_SERVER_MESSAGE_CHARS = 200


class HuggingFaceGenerator:
    name = "huggingface"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        provider: str = "auto",
        timeout: float = 120.0,
        inference_url: str = "",
        lora_scale: float | None = None,
    ) -> None:
        if not api_key:
            raise GenerationError(
                GENERATOR_NOT_CONFIGURED,
                "The image generator is not configured: set HUGGINGFACE_API_KEY (or AVATAR_GENERATOR=offline).",
                retryable=False,
            )
        self.model = model
        self.provider = provider or "auto"
        self.timeout = timeout
        self.inference_url = inference_url.strip()
        self.lora_scale = lora_scale
        self._api_key = api_key

    @classmethod
    def from_settings(cls) -> "HuggingFaceGenerator":
        use_lora = settings.FLUX_USE_LORA
        return cls(
            api_key=settings.HUGGINGFACE_API_KEY,
            model=settings.FLUX_LORA_MODEL if use_lora else settings.FLUX_MODEL,
            provider=settings.HF_PROVIDER,
            timeout=settings.FLUX_TIMEOUT,
            inference_url=settings.HF_INFERENCE_URL,
            lora_scale=settings.FLUX_LORA_SCALE if use_lora else None,
        )

    def __repr__(self) -> str:
        # Never the key.
        return (
            f"HuggingFaceGenerator(model={self.model!r}, provider={self.provider!r}, endpoint={self.inference_url!r})"
        )

    def generate(self, request: GenerationRequest) -> GenerationResult:
        started = time.monotonic()
        # A URL as the model makes the library post to it verbatim through its hf-inference helper.
        target = self.inference_url or self.model
        try:
            with InferenceClient(
                model=target, provider=self.provider, token=self._api_key, timeout=self.timeout
            ) as client:
                helper, request_parameters = self._prepare(client, target, request)
                body = self._post(client, helper, request_parameters)
        except (GenerationError, SoftTimeLimitExceeded):  # the worker's own time limit: the attempt settles it
            raise
        except Exception as exc:
            # Anything unforeseen still leaves as a GenerationError; the trace stays in the server log.
            logger.exception("Unexpected error from the image API (%s)", type(exc).__name__)
            raise GenerationError(
                GENERATION_FAILED, "The image could not be generated because of an unexpected error.", retryable=False
            ) from None
        content_type, width, height = self._inspect_image(body)
        return GenerationResult(
            image_bytes=body,
            content_type=content_type,
            seed=request.seed,
            width=width,
            height=height,
            model=self.model,
            duration_s=time.monotonic() - started,
        )

    def _prepare(
        self, client: InferenceClient, target: str, request: GenerationRequest
    ) -> tuple[TaskProviderHelper, RequestParameters]:
        """Resolve the provider and build the HTTP request; this is where the Hub is asked about the model."""
        parameters: dict = {
            "negative_prompt": request.negative_prompt or None,
            "width": request.width,
            "height": request.height,
            "num_inference_steps": request.num_inference_steps,
            "guidance_scale": request.guidance_scale,
            "seed": request.seed,
        }
        try:
            helper = get_provider_helper(client.provider, task=TASK, model=target)
            if self.lora_scale is not None and (self.inference_url or helper.provider in LORA_SCALE_PROVIDERS):
                parameters["lora_scale"] = self.lora_scale
            request_parameters = helper.prepare_request(
                inputs=request.prompt, parameters=parameters, headers=client.headers, model=target, api_key=client.token
            )
            if self.lora_scale is not None and helper.provider == LORA_LIST_PROVIDER:
                _scale_lora_list(request_parameters, self.lora_scale)
        except RepositoryNotFoundError as exc:
            self._log(exc)
            raise GenerationError(
                GENERATOR_NOT_CONFIGURED,
                f"The model '{self.model}' was not found on the Hugging Face Hub or this API key cannot access it.",
                retryable=False,
                status=_status_of(exc),
            ) from None
        except (HfHubHTTPError, httpx2.HTTPError, TimeoutError, OfflineModeIsEnabled, OSError) as exc:
            raise self._map_error(exc) from None
        except (ValueError, StopIteration) as exc:
            # The library's way of saying the model/provider/task combination cannot be served.
            self._log(exc)
            raise GenerationError(
                GENERATOR_NOT_CONFIGURED,
                f"The model '{self.model}' is not available for text-to-image from provider '{self.provider}'.",
                retryable=False,
            ) from None
        return helper, request_parameters

    def _post(
        self, client: InferenceClient, helper: TaskProviderHelper, request_parameters: RequestParameters
    ) -> bytes:
        try:
            response = client._inner_post(request_parameters)
            body = helper.get_response(response, request_parameters)
        except (HfHubHTTPError, httpx2.HTTPError, TimeoutError, OfflineModeIsEnabled, OSError) as exc:
            raise self._map_error(exc) from None
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            # A provider answered 2xx with a body its helper could not read (e.g. no image URL in the JSON).
            self._log(exc)
            raise GenerationError(
                GENERATION_FAILED, "The image API returned an answer without an image.", retryable=True
            ) from None
        if not isinstance(body, bytes | bytearray):
            raise GenerationError(
                GENERATION_FAILED, "The image API returned an answer without an image.", retryable=True
            )
        return bytes(body)

    def _map_error(self, exc: BaseException) -> GenerationError:
        self._log(exc)
        if isinstance(exc, OfflineModeIsEnabled):
            return GenerationError(
                GENERATOR_NOT_CONFIGURED,
                "The image API cannot be reached because HF_HUB_OFFLINE is set on this server.",
                retryable=False,
            )
        # InferenceTimeoutError (the library's wrapper), httpx timeouts and provider polling give-ups.
        if isinstance(exc, TimeoutError | httpx2.TimeoutException):
            return GenerationError(
                GENERATION_TIMEOUT,
                f"The image API did not answer within {self.timeout:g} seconds.",
                retryable=True,
            )
        if isinstance(exc, HfHubHTTPError) and exc.response is not None:
            return self._map_http_error(exc)
        return GenerationError(GENERATION_FAILED, "The image API could not be reached.", retryable=True)

    def _map_http_error(self, exc: HfHubHTTPError) -> GenerationError:
        response = exc.response
        status = response.status_code
        payload = _json_of(response)
        text = _text_of(response)
        if status == 503 and ("estimated_time" in payload or "loading" in text.lower()):
            estimated = _as_seconds(payload.get("estimated_time"))
            wait = f" Try again in about {estimated:.0f} seconds." if estimated is not None else " Try again shortly."
            return GenerationError(
                MODEL_LOADING,
                "The image model is loading on the server." + wait,
                retryable=True,
                retry_after=estimated,
                status=status,
            )
        if status == 429:
            return GenerationError(
                RATE_LIMIT_EXCEEDED,
                "The image API is rate limiting this server. Try again later.",
                retryable=True,
                retry_after=_retry_after(response),
                status=status,
            )
        if status in (401, 403):
            return GenerationError(
                GENERATOR_AUTH_FAILED,
                f"The image API rejected the API key (HTTP {status}): check HUGGINGFACE_API_KEY.",
                retryable=False,
                status=status,
            )
        if status in (408, 504):
            return GenerationError(
                GENERATION_TIMEOUT, f"The image API timed out (HTTP {status}).", retryable=True, status=status
            )
        if 400 <= status < 500:
            detail = self._server_message(exc)
            return GenerationError(
                GENERATION_FAILED,
                f"The image API refused the request (HTTP {status})" + (f": {detail}" if detail else "."),
                retryable=False,
                status=status,
            )
        return GenerationError(
            GENERATION_FAILED,
            f"The image API failed (HTTP {status}). Try again.",
            retryable=True,
            retry_after=_retry_after(response),
            status=status,
        )

    def _inspect_image(self, body: bytes) -> tuple[str, int, int]:
        """The real format and size of the upstream bytes, from the header (images.py). The pixels are checked once,
        where the preview job decodes and re-encodes them."""
        try:
            return images.image_info(body, max_side=UPSTREAM_MAX_SIDE)
        except images.ImageRejected as exc:
            self._log(exc)
            # Retryable: a corrupt or truncated body is an upstream fault that a new request usually does not repeat.
            raise GenerationError(
                GENERATION_FAILED, "The image API returned data that is not a valid image.", retryable=True
            ) from None

    def _server_message(self, exc: HfHubHTTPError) -> str:
        message = re.sub(r"\s+", " ", exc.server_message or "").strip()
        message = self._redact(message)
        if len(message) > _SERVER_MESSAGE_CHARS:
            message = message[: _SERVER_MESSAGE_CHARS - 3].rstrip() + "..."
        return message

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text

    def _log(self, exc: BaseException) -> None:
        logger.warning(
            "Image API error for model %s via %s: %s: %s",
            self.model,
            self.inference_url or self.provider,
            type(exc).__name__,
            self._redact(re.sub(r"\s+", " ", str(exc)))[:500],
        )


def _scale_lora_list(request_parameters: RequestParameters, scale: float) -> None:
    """Our scale on every `loras: [{path, scale}]` entry the provider helper wrote (it writes 1)."""
    payload = request_parameters.json
    if isinstance(payload, dict) and payload.get("loras"):
        payload["loras"] = [{**lora, "scale": scale} for lora in payload["loras"]]


def _status_of(exc: HfHubHTTPError) -> int | None:
    return exc.response.status_code if exc.response is not None else None


def _text_of(response: httpx2.Response) -> str:
    try:
        return response.text
    except Exception:  # A stream that was never read has no text; the status alone must do.
        return ""


def _json_of(response: httpx2.Response) -> dict:
    try:
        payload = response.json()
    except Exception:
        return {}
    return payload if isinstance(payload, dict) else {}


def _as_seconds(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def _retry_after(response: httpx2.Response) -> float | None:
    """Seconds to wait from Retry-After (seconds or an HTTP date), else from the IETF RateLimit header."""
    header = response.headers.get("retry-after")
    if header:
        seconds = _as_seconds(header.strip())
        if seconds is not None:
            return seconds
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    info = parse_ratelimit_headers(response.headers)
    if info is not None and info.remaining == 0:
        return float(info.reset_in_seconds)
    return None
