"""The account pages in a real browser: the credit badge leads to Credits & usage, and a new API token is shown
once with a working copy button."""

import pytest
from playwright.sync_api import expect

from avatar_creator.models import ApiToken
from tests.browser.conftest import screenshot
from tests.browser.steps import sign_up

pytestmark = pytest.mark.django_db(transaction=True)


def test_credit_badge_opens_the_credits_page(open_page):
    page = open_page()
    sign_up(page, "hana")
    page.locator("#credit-badge").click()
    expect(page.get_by_role("heading", name="Credits & usage")).to_be_visible()
    expect(page.locator("[data-balance]")).to_have_text("100 credits")
    expect(page.get_by_role("cell", name="Signup bonus · Welcome")).to_be_visible()
    expect(page.get_by_text("You have not made any previews in the last 30 days.")).to_be_visible()
    screenshot(page, "credits")


def test_new_api_token_is_copied_and_then_listed_without_its_secret(open_page):
    page = open_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_up(page, "indra")
    page.goto("/account/tokens")
    page.get_by_label("Token name").fill("Build server")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#issued-token").input_value()
    assert len(secret) == 40
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    assert ApiToken.objects.filter(name="Build server").count() == 1
    screenshot(page, "tokens")
    page.goto("/account/tokens")
    expect(page.get_by_role("cell", name="Build server")).to_be_visible()
    assert secret not in page.content()
