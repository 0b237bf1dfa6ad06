"""Playwright (sync API) driving Debian's Chromium against pytest-django's live server.

The browser is the system one (CHROMIUM_PATH, default /usr/bin/chromium), never a downloaded build. Without it the
browser tests skip, except in CI (LUMIKU_REQUIRE_SERVICES=1), where a missing browser is a failure.
"""

import os
import shutil

import pytest
from playwright.sync_api import expect, sync_playwright

# Playwright's sync API runs an event loop in the test thread; Django would otherwise refuse ORM calls there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Generous for a CI machine, still far below the 30 s a whole test may take.
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)


def _chromium_path() -> str | None:
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else shutil.which(path)


@pytest.fixture(scope="session")
def chromium():
    path = _chromium_path()
    if path is None:
        message = f"Chromium not found at {os.environ.get('CHROMIUM_PATH', '/usr/bin/chromium')}; set CHROMIUM_PATH."
        if os.environ.get("LUMIKU_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium, live_server):
    """A fresh browser context (no cookies) at a given viewport width; JavaScript errors, console errors and failing
    images, styles or scripts fail the test."""
    contexts = []
    errors = []

    def make(width: int = 1280, height: int = 900):
        context = chromium.new_context(viewport={"width": width, "height": height}, base_url=live_server.url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: _console_error(message, errors))
        page.on("response", lambda response: _resource_error(response, errors))
        # A <script> that runs would open an alert: none may ever appear.
        page.on(
            "dialog", lambda dialog: (errors.append(f"unexpected {dialog.type}: {dialog.message}"), dialog.dismiss())
        )
        return page

    yield make
    for context in contexts:
        context.close()
    assert errors == []


# Answers the UI gives on purpose and handles itself: a 4xx to an htmx request (a form with errors, 402, 429), a
# stream or a page that is asked for (the 404 page). A failing image, style sheet or script is a defect.
HANDLED_RESOURCE_TYPES = {"xhr", "fetch", "eventsource", "document"}


def _console_error(message, errors: list) -> None:
    # Chromium logs every failing request as "Failed to load resource"; _resource_error judges those by their type.
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        errors.append(f"console error: {message.text}")


def _resource_error(response, errors: list) -> None:
    if response.status >= 400 and response.request.resource_type not in HANDLED_RESOURCE_TYPES:
        errors.append(f"{response.request.resource_type} {response.url} answered {response.status}")


def screenshot(page, name: str) -> None:
    """Save a screenshot to $LUMIKU_UI_SCREENSHOTS/ui-<name>.png when that directory is set (to look at the UI)."""
    directory = os.environ.get("LUMIKU_UI_SCREENSHOTS")
    if directory:
        page.screenshot(path=os.path.join(directory, f"ui-{name}.png"), full_page=True)
