"""axe-core over every page and every state of the avatar modal, on a phone and on a desktop screen.

One walk per screen size (one sign-up, one project, one browser for the whole session): the pages a visitor and a
signed-in user see, then the modal's steps in the order a person meets them. The test fails on any serious or
critical violation, listing all of them at once.
"""

import pytest
from playwright.sync_api import expect

from avatar_creator import services
from avatar_creator.models import Preview
from tests.browser.axe import serious_violations
from tests.browser.steps import create_project, describe, expect_phase_two, generate, open_avatar_form, sign_up
from tests.factories import load_presets

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = (390, 844)
DESKTOP = (1440, 900)


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_every_page_and_modal_state_has_no_serious_axe_violations(open_page, held_queue, size):
    load_presets()  # as shipped: the landing's strip and the form's gallery are on the pages
    page = open_page(*size)
    page.emulate_media(reduced_motion="reduce")
    found = []

    for path, where in [("/", "landing"), ("/login", "login"), ("/signup", "signup"), ("/no-such-page", "404")]:
        page.goto(path)
        found += serious_violations(page, where)

    sign_up(page, "axel")
    found += serious_violations(page, "projects (empty)")
    create_project(page, "Team portraits", "Faces for the about page")
    found += serious_violations(page, "project (empty)")

    modal = page.locator("#modal")
    open_avatar_form(page)
    found += serious_violations(page, "modal: form")
    # Long enough for the browser, too short for the server once trimmed: the server's errors show.
    modal.get_by_label("Describe the person").fill("          short")
    generate(page)
    expect(modal.locator(".field-invalid")).to_have_count(1)
    found += serious_violations(page, "modal: form with errors")

    describe(page)
    generate(page)
    expect(page.locator("#modal-title")).to_have_text("Generating your preview")
    found += serious_violations(page, "modal: waiting")
    services.preview_attempt(preview_id=Preview.objects.get().pk)
    expect_phase_two(page)
    found += serious_violations(page, "modal: result")

    modal.get_by_label("Name").fill("Ayu")
    modal.get_by_role("button", name="Save · 10 credits").click()
    expect(modal).to_be_hidden()
    found += serious_violations(page, "project (one avatar)")

    page.locator("#avatar-grid .avatar-thumb").click()
    expect(page.locator("#modal-title")).to_have_text("Ayu")
    found += serious_violations(page, "modal: lightbox")
    modal.get_by_role("button", name="Delete avatar").click()
    expect(page.locator("#modal-title")).to_have_text("Delete avatar?")
    found += serious_violations(page, "modal: delete confirmation")
    page.keyboard.press("Escape")
    expect(modal).to_be_hidden()

    for path, where in [("/", "projects"), ("/account/credits", "credits"), ("/account/tokens", "tokens"),
                        ("/no-such-page", "404 (signed in)")]:  # fmt: skip
        page.goto(path)
        found += serious_violations(page, where)

    assert found == []


def test_axe_check_reports_a_button_without_a_name(open_page):
    """The check above can fail: a control that a screen reader cannot name is reported."""
    page = open_page()
    page.goto("/login")
    page.evaluate("() => document.querySelector('main').append(document.createElement('button'))")
    found = serious_violations(page, "login")
    assert [line.split(" ", 2)[:2] for line in found] == [["login:", "button-name"]]
