"""Webhooks: the one module that calls a user's server.

When a preview with a `webhook` finishes, its owner's URL receives `{"type": "preview.completed", "data": preview}`
signed per Standard Webhooks (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the user's `whsec_` secret.

SSRF guard: the host is resolved first and every address it resolves to must be public (no private, loopback,
link-local, multicast, reserved or unspecified address) and the URL https, unless AVATAR_WEBHOOK_ALLOW_PRIVATE; the
connection then goes to the address that was checked (no second lookup to rebind), redirects are not followed, and
time-outs are short. A non-2xx answer or a network fault is retried with backoff for more than a day.
"""

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from avatar_creator.errors import ValidationFailed
from avatar_creator.models import Preview, WebhookSecret

logger = logging.getLogger(__name__)

EVENT_TYPE = "preview.completed"
# Seconds before each retry (Standard Webhooks' suggested schedule): about 27 hours in all.
RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
_MAX_BODY_READ = 64 * 1024


class WebhookRefused(Exception):
    """The URL may not be called (scheme, address): permanent, never retried."""


def webhook_secret_for_user(*, user) -> str:
    """The user's signing secret, made on first use."""
    secret, _ = WebhookSecret.objects.get_or_create(
        user=user, defaults={"secret": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")}
    )
    return secret.secret


def webhook_url_check(url: str) -> str:
    """The URL, if a webhook may be sent there; else ValidationFailed naming the `webhook` field."""
    try:
        _target(url)
    except WebhookRefused as exc:
        raise ValidationFailed(details={"webhook": [str(exc)]}) from None
    return url


def _target(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, path, checked address) of a URL allowed as a webhook, else WebhookRefused."""
    allow_private = settings.AVATAR_WEBHOOK_ALLOW_PRIVATE
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookRefused("Not a valid URL.") from None
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed_schemes:
        raise WebhookRefused("The webhook must be an https URL.")
    if not parts.hostname or parts.username or parts.password:
        raise WebhookRefused("The webhook URL needs a host and no credentials.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise WebhookRefused("The webhook's host name does not resolve.") from None
    addresses = [info[4][0] for info in infos]
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if not ip.is_global or ip.is_multicast:
                raise WebhookRefused("The webhook's host resolves to a private or reserved address.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path, addresses[0]


def sign(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def webhook_deliver(*, preview_id, attempt: int = 0) -> float | None:
    """Deliver one finished preview's webhook once. Returns seconds until the next try, or None when done (sent,
    refused, or out of retries)."""
    from avatar_creator.api.serializers import preview_representation  # the payload is the API's preview object

    preview = Preview.objects.select_related("avatar").filter(pk=preview_id).first()
    if preview is None or not preview.webhook_url or preview.webhook_delivered_at is not None:
        return None
    message_id = f"msg_{preview.pk.hex}"
    body = json.dumps({"type": EVENT_TYPE, "data": preview_representation(preview)}, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Lumiku-Webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(
            webhook_secret_for_user(user=preview.owner), message_id=message_id, timestamp=timestamp, body=body
        ),
    }
    try:
        status = _post(preview.webhook_url, body=body, headers=headers)
    except WebhookRefused as exc:
        logger.warning("webhook of preview %s refused: %s", preview_id, exc)
        return None
    except (OSError, http.client.HTTPException) as exc:
        status = None
        logger.info("webhook of preview %s: %s", preview_id, exc)
    if status is not None and 200 <= status < 300:
        Preview.objects.filter(pk=preview.pk, webhook_delivered_at=None).update(webhook_delivered_at=timezone.now())
        return None
    if attempt >= len(RETRY_SCHEDULE):
        logger.warning("webhook of preview %s given up after %s attempts", preview_id, attempt + 1)
        return None
    return float(RETRY_SCHEDULE[attempt])


def _post(url: str, *, body: bytes, headers: dict) -> int:
    scheme, host, port, path, address = _target(url)
    timeout = settings.AVATAR_WEBHOOK_TIMEOUT
    if scheme == "https":
        conn = _PinnedHTTPSConnection(host, port, address=address, timeout=timeout)
    else:
        conn = _PinnedHTTPConnection(host, port, address=address, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(_MAX_BODY_READ)
        return response.status  # a 3xx is not followed: it counts as not delivered
    finally:
        conn.close()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the host name resolves to now."""

    def __init__(self, host, port, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
