"""The database session store, refusing session keys it could never have issued.

A cookie value is unquoted by Django (`"\\000"` becomes a NUL byte), and PostgreSQL rejects NUL in a query
parameter: without this check a crafted `sessionid` cookie makes every page and API call answer 500.
Keys Django issues are 32 characters of [a-z0-9]; anything else is treated as no session at all.
"""

from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import VALID_KEY_CHARS

_VALID = frozenset(VALID_KEY_CHARS)


class SessionStore(db.SessionStore):
    def _validate_session_key(self, key):
        return bool(super()._validate_session_key(key)) and len(key) <= 40 and set(key) <= _VALID
