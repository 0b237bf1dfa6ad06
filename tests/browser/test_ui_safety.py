"""User text stays text, the modal works by keyboard, and a phone-width screen does not scroll sideways."""

import pytest
from playwright.sync_api import expect

from avatar_creator.models import Avatar, Project
from tests.browser.conftest import screenshot
from tests.browser.steps import (
    NO_SIDEWAYS_SCROLL,
    create_project,
    describe,
    expect_phase_two,
    generate,
    open_avatar_form,
    sign_up,
)

pytestmark = pytest.mark.django_db(transaction=True)

PROJECT_NAME = '<script>alert("project")</script>'
AVATAR_NAME = "<script>alert('avatar')</script>"
PROMPT = '<img src=x onerror=alert("prompt")> woman <script>alert("prompt")</script>'
# The three script tags base.html loads: htmx, (DEBUG only: django-htmx) and app.js, all external.
SCRIPTS_WITHOUT_SRC = "[...document.scripts].filter(s => !s.src).length"


def test_script_typed_as_names_and_prompt_is_shown_as_text(open_page):
    page = open_page()
    sign_up(page, "gita")
    create_project(page, PROJECT_NAME)
    open_avatar_form(page)
    describe(page, prompt=PROMPT)
    generate(page)
    expect_phase_two(page)
    modal = page.locator("#modal")
    expect(modal.locator(".prompt-text")).to_have_text(PROMPT)
    modal.get_by_label("Name").fill(AVATAR_NAME)
    modal.get_by_role("button", name="Save · 10 credits").click()

    expect(page.locator("#avatar-grid .avatar-name")).to_have_text(AVATAR_NAME)
    expect(page.locator("#project-heading h1")).to_have_text(PROJECT_NAME)
    assert page.evaluate(SCRIPTS_WITHOUT_SRC) == 0
    assert page.locator("#main img[onerror]").count() == 0

    page.locator("#avatar-grid .avatar-thumb").click()
    expect(page.locator("#modal-title")).to_have_text(AVATAR_NAME)
    modal.locator(".prompt-details summary").click()
    expect(modal.locator(".prompt-details p").first).to_have_text(PROMPT)
    assert page.evaluate(SCRIPTS_WITHOUT_SRC) == 0

    page.goto("/")
    expect(page.locator(".project-card .card-title")).to_have_text(PROJECT_NAME)
    assert page.evaluate(SCRIPTS_WITHOUT_SRC) == 0
    assert (Project.objects.get().name, Avatar.objects.get().name) == (PROJECT_NAME, AVATAR_NAME)


def test_modal_works_by_keyboard_on_a_phone_width_screen(open_page):
    page = open_page(width=375, height=740)
    sign_up(page, "hana")
    create_project(page, "Phone project")
    assert page.evaluate(NO_SIDEWAYS_SCROLL)

    create_button = page.locator(".page-actions").get_by_role("button", name="Create avatar")
    create_button.focus()
    page.keyboard.press("Enter")
    modal = page.locator("#modal")
    expect(page.locator("#modal-title")).to_have_text("Create an avatar")
    expect(modal.get_by_label("Describe the person")).to_be_focused()
    page.keyboard.type("Smiling teacher with round glasses")
    expect(page.locator("#prompt-count")).to_have_text("34")

    # Focus cycles through the dialog and never reaches the page behind it, forwards or backwards.
    inside = "() => document.getElementById('modal').contains(document.activeElement)"
    for key in ["Tab"] * 14 + ["Shift+Tab"] * 14:
        page.keyboard.press(key)
        assert page.evaluate(inside), f"focus left the dialog after {key}"
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    screenshot(page, "phone-form")

    modal.get_by_label("Describe the person").focus()
    page.keyboard.press("Escape")
    expect(modal).to_be_hidden()
    expect(create_button).to_be_focused()

    open_avatar_form(page)
    describe(page, prompt="Smiling teacher with round glasses", body_type="full_body")
    generate(page)
    expect_phase_two(page)
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    screenshot(page, "phone-preview")
