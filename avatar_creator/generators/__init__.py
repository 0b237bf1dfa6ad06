"""Image backends behind one small interface; get_generator() picks the configured one.

The generator is built from django.conf.settings on every call: it is cheap (no network, no model load) and
it means settings overridden in a test or changed in the environment take effect without a restart.
"""

from django.conf import settings

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
    Generator,
)
from avatar_creator.generators.huggingface import HuggingFaceGenerator
from avatar_creator.generators.offline import OfflineGenerator

__all__ = [
    "GENERATION_FAILED",
    "GENERATION_TIMEOUT",
    "GENERATOR_AUTH_FAILED",
    "GENERATOR_NOT_CONFIGURED",
    "MODEL_LOADING",
    "RATE_LIMIT_EXCEEDED",
    "GenerationError",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "HuggingFaceGenerator",
    "OfflineGenerator",
    "get_generator",
]


def get_generator() -> Generator:
    """The generator settings.AVATAR_GENERATOR names; GenerationError(GENERATOR_NOT_CONFIGURED) if it cannot run."""
    name = (settings.AVATAR_GENERATOR or "").strip().lower()
    if name == OfflineGenerator.name:
        return OfflineGenerator()
    if name == HuggingFaceGenerator.name:
        return HuggingFaceGenerator.from_settings()
    raise GenerationError(
        GENERATOR_NOT_CONFIGURED,
        f"Unknown image generator {settings.AVATAR_GENERATOR!r}: set AVATAR_GENERATOR to 'huggingface' or 'offline'.",
        retryable=False,
    )
