"""OpenAPI details: the success envelope per endpoint and the one error envelope on every operation."""

from drf_spectacular.utils import extend_schema_serializer, inline_serializer
from rest_framework import serializers

ERROR_ENVELOPE = {
    "type": "object",
    "required": ["success", "error"],
    "properties": {
        "success": {"type": "boolean", "enum": [False]},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "pattern": "^[A-Z][A-Z_]*$"},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
            },
        },
    },
}
_ERROR_STATUSES = {
    "400": "Validation error or malformed request",
    "401": "Missing or invalid credentials",
    "404": "Not found (or not yours)",
    "405": "Method not allowed",
    "406": "Not acceptable",
    "413": "Payload too large",
    "415": "Unsupported media type",
    "429": "Rate limited",
    "default": "Any other error, in the same envelope",
}


def envelope(name: str, **fields) -> serializers.Serializer:
    """`{"success": true, ...fields}` as a named schema component.

    Always one object: without `many=False`, drf-spectacular would wrap a `list` action's envelope in an array.
    """
    serializer = inline_serializer(name=name, fields={"success": serializers.BooleanField(), **fields})
    extend_schema_serializer(many=False)(type(serializer))
    return serializer


def postprocess(result, generator, request, public):
    """Paths accept an optional trailing slash; the schema names the contract's form, without it.
    Every operation can answer the error envelope."""
    result["paths"] = {path.rstrip("/") or "/": item for path, item in result["paths"].items()}
    result.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = ERROR_ENVELOPE
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    for item in result["paths"].values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            for status, description in _ERROR_STATUSES.items():
                responses.setdefault(status, {"description": description, "content": reference})
    return result
