import json

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import JSONParser, MultiPartParser

from avatar_creator.errors import PayloadTooLarge, ServiceError
from avatar_creator.images import MAX_IMAGE_BYTES


class BoundedJSONParser(JSONParser):
    """JSON with a size bound checked before reading, and deep nesting answered as a parse error.

    DRF reads the raw stream, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE would not apply on its own.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            length = 0
        if limit and length > limit:
            raise PayloadTooLarge.over(limit)
        raw = stream.read(limit + 1) if (stream is not None and limit) else (stream.read() if stream else b"")
        if limit and len(raw) > limit:
            raise PayloadTooLarge.over(limit)
        if not raw:
            return {}
        try:
            return json.loads(raw.decode(settings.DEFAULT_CHARSET))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise exceptions.ParseError("The request body is not valid JSON.") from exc


class BoundedMultiPartParser(MultiPartParser):
    """multipart/form-data (an uploaded photo) with the whole body's size bound checked before anything is read:
    the image limit plus room for the other fields."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = MAX_IMAGE_BYTES + 1024 * 1024
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            length = 0
        if length > limit:
            raise PayloadTooLarge.over(limit)
        try:
            return super().parse(stream, media_type, parser_context)
        except exceptions.ParseError:  # the catalogue's words for MALFORMED_REQUEST speak of JSON
            raise ServiceError.of("MALFORMED_REQUEST", "The request body is not valid multipart/form-data.") from None
