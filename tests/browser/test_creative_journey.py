"""The creative loop in a real browser: the pick grid, reopening from the history, starting from a preset,
"More like this" and uploading an own photo."""

import io

import pytest
from PIL import Image
from playwright.sync_api import expect

from avatar_creator.models import Avatar, CreditAccount, Preview, PreviewStatus, Project
from tests.browser.axe import serious_violations
from tests.browser.conftest import screenshot
from tests.browser.steps import (
    create_project,
    describe,
    expect_phase_two,
    generate,
    generate_variations,
    open_avatar_form,
    sign_up,
)
from tests.factories import load_presets, make_avatar

pytestmark = pytest.mark.django_db(transaction=True)


def balance(username: str) -> int:
    return CreditAccount.objects.get(user__username=username).balance


@pytest.fixture(autouse=True)
def presets(transactional_db):
    load_presets()


def test_journey_pick_grid_saves_the_picked_variations(open_page, settings):
    settings.AVATAR_SAVE_COST = 10
    page = open_page()
    sign_up(page, "eka")
    create_project(page, "Campaign")
    open_avatar_form(page)
    describe(page)
    generate_variations(page, 2)
    modal = page.locator("#modal")
    tiles = modal.locator(".pick-item img")
    expect(tiles).to_have_count(2)
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "pick-grid-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    for index in range(2):
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=tiles.nth(index).element_handle())
    screenshot(page, "pick-grid")
    modal.get_by_label("Keep variation 1").check()
    modal.get_by_label("Keep variation 2").check()
    modal.get_by_label("Name").fill("Eka")
    modal.get_by_role("button", name="Save selected").click()

    expect(modal).to_be_hidden()
    names = page.locator("#avatar-grid .avatar-card .avatar-name")
    expect(names).to_have_count(2)
    expect(page.locator("#credit-badge")).to_have_text("80 credits")
    assert sorted(Avatar.objects.values_list("name", flat=True)) == ["Eka - Variation 1", "Eka - Variation 2"]
    assert Preview.objects.values("batch_id").distinct().count() == 1


def test_journey_history_reopens_a_preview_and_saves_it(open_page):
    page = open_page()
    sign_up(page, "fajar")
    create_project(page, "Campaign")
    open_avatar_form(page)
    describe(page)
    generate(page)
    expect_phase_two(page)
    first = Preview.objects.get()
    modal = page.locator("#modal")

    modal.get_by_role("link", name="Change the description").click()
    expect(page.locator("#modal-title")).to_have_text("Create an avatar")
    item = modal.locator(f'.history-item[data-preview-id="{first.pk}"]')
    expect(item).to_be_visible()
    expect(item.locator(".history-meta")).to_contain_text("left")
    first.refresh_from_db()
    assert first.status == PreviewStatus.SUCCEEDED

    item.click()
    expect_phase_two(page)
    expect(modal.locator(".preview-expiry")).to_contain_text("left")
    modal.get_by_label("Name").fill("Again")
    modal.get_by_role("button", name="Save · 10 credits").click()
    expect(modal).to_be_hidden()
    expect(page.locator("#avatar-grid .avatar-name")).to_have_text(["Again"])
    assert Avatar.objects.get().preview_id == first.pk

    # The page's own "Recent previews" section lists it too, marked saved.
    page.reload()
    expect(page.locator("#recent-previews .recent-card")).to_have_count(1)
    expect(page.locator("#recent-previews .meta")).to_contain_text("Saved")
    screenshot(page, "recent-previews")


def test_journey_start_from_a_preset(open_page):
    page = open_page()
    sign_up(page, "gita")
    create_project(page, "Campaign")
    open_avatar_form(page)
    modal = page.locator("#modal")
    expect(modal.get_by_role("heading", name="Start from a preset")).to_be_visible()
    screenshot(page, "preset-gallery")
    modal.locator(".preset", has_text="Kebaya").click()

    expect(modal.locator(".alert-info")).to_have_text("Started from “Kebaya”.")
    expect(modal.get_by_label("Style")).to_have_value("traditional")
    expect(modal.get_by_label("Ethnicity")).to_have_value("Javanese")
    expect(modal.get_by_label("Body type")).to_have_value("full_body")
    generate(page)
    expect_phase_two(page)
    preview = Preview.objects.get()
    assert (preview.style, preview.ethnicity, preview.body_type) == ("traditional", "Javanese", "full_body")
    assert preview.prompt.startswith("Javanese woman wearing an embroidered kebaya")


def test_journey_more_like_this_opens_the_form_filled_from_the_avatar(open_page):
    page = open_page()
    sign_up(page, "hadi")
    create_project(page, "Campaign")
    project = Project.objects.get()
    avatar = make_avatar(project, name="Hadi", gender="male", style="formal", ethnicity="Batak")
    page.reload()
    page.locator(f"#avatar-{avatar.pk} .avatar-thumb").click()
    modal = page.locator("#modal")
    expect(page.locator("#modal-title")).to_have_text("Hadi")
    modal.get_by_role("link", name="More like this").click()

    expect(page.locator("#modal-title")).to_have_text("Create an avatar")
    expect(modal.get_by_label("Describe the person")).to_have_value(avatar.generation_prompt)
    expect(modal.get_by_label("Gender")).to_have_value("male")
    expect(modal.get_by_label("Ethnicity")).to_have_value("Batak")
    generate(page)
    expect_phase_two(page)
    assert (Preview.objects.get().gender, Preview.objects.get().style) == ("male", "formal")


def test_journey_upload_an_own_photo(open_page):
    page = open_page()
    sign_up(page, "indah")
    create_project(page, "Campaign")
    page.get_by_role("button", name="Upload photo").click()
    modal = page.locator("#modal")
    expect(page.locator("#modal-title")).to_have_text("Upload a photo")
    preview = modal.locator("[data-photo-preview]")
    expect(preview).to_be_hidden()  # nothing picked yet: no empty picture frame
    assert serious_violations(page, "upload dialog") == []

    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 80, 40)).save(buffer, "JPEG")
    modal.get_by_label("Photo").set_input_files(
        {"name": "me.jpg", "mimeType": "image/jpeg", "buffer": buffer.getvalue()}
    )
    expect(preview).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 320", arg=preview.element_handle())
    modal.get_by_label("Name").fill("My photo")
    modal.get_by_role("button", name="Upload photo").click()

    expect(modal).to_be_hidden()
    expect(page.locator("#avatar-grid .avatar-name")).to_have_text(["My photo"])
    avatar = Avatar.objects.get()
    assert (avatar.source_type, avatar.width, avatar.height) == ("uploaded", 320, 240)
    assert balance("indah") == 100

    page.goto("/")
    expect(page.locator(".project-covers img")).to_have_count(1)
    screenshot(page, "project-covers")
