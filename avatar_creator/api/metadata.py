"""The answer to OPTIONS: DRF's description of the route, inside the success envelope every API answer has."""

from rest_framework.metadata import SimpleMetadata


class EnvelopedMetadata(SimpleMetadata):
    """`{"success": true, "name", "description", "renders", "parses"}`: SPEC's "success bodies carry success: true"
    holds for OPTIONS too (a CORS preflight is answered before this, by django-cors-headers)."""

    def determine_metadata(self, request, view) -> dict:
        return {"success": True, **super().determine_metadata(request, view)}
