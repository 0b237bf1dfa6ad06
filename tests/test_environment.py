import os

import pytest
from django.db import connection

REQUIRED = os.environ.get("LUMIKU_REQUIRE_SERVICES") == "1"


@pytest.mark.django_db
@pytest.mark.skipif(not REQUIRED, reason="only CI promises PostgreSQL")
def test_ci_runs_on_postgresql():
    assert connection.vendor == "postgresql"
