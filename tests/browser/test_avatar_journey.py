"""The product's centre in a real browser: sign up, create a project, preview, regenerate, save; cancel; errors.

Tasks run in-process (no broker), so on the offline generator a preview has finished when the request that asked
for it returns. The waiting step is reached by holding the queue (the enqueue does nothing) and finishing the
preview from the test, as a worker would.
"""

import time

import pytest
from playwright.sync_api import expect

from avatar_creator import services
from avatar_creator.models import Avatar, CreditAccount, Preview, PreviewStatus
from avatar_creator.services import previews
from tests.browser.conftest import screenshot
from tests.browser.steps import (
    PROMPT,
    create_project,
    describe,
    expect_phase_two,
    generate,
    open_avatar_form,
    sign_up,
    wait_until,
)
from tests.fake_image_api import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def balance(username: str) -> int:
    return CreditAccount.objects.get(user__username=username).balance


def test_journey_preview_regenerate_save_adds_the_avatar_and_charges(open_page, settings):
    settings.AVATAR_SAVE_COST = 10
    page = open_page()
    sign_up(page, "ayu")
    expect(page.locator("#credit-badge")).to_have_text("100 credits")
    expect(page.get_by_role("heading", name="Start with your first project")).to_be_visible()
    screenshot(page, "projects-empty")

    create_project(page, "Team portraits", "Faces for the about page")
    expect(page.get_by_role("heading", name="No avatars yet")).to_be_visible()
    page.evaluate("window.pageMarker = 'no reload'")

    open_avatar_form(page)
    describe(page, gender="female", age_range="adult", style="professional", ethnicity="Indonesian",
             body_type="full_body")  # fmt: skip
    expect(page.locator("#prompt-count")).to_have_text(str(len(PROMPT)))
    generate(page)
    expect_phase_two(page)
    modal = page.locator("#modal")
    expect(modal.locator(".cost")).to_have_text("Saving costs 10 credits. Your balance: 100.")
    first = Preview.objects.get()
    screenshot(page, "phase-two")

    modal.get_by_role("button", name="Regenerate").click()
    expect(modal.locator(f'[data-discard-url*="{first.pk}"]')).to_have_count(0)
    expect_phase_two(page)
    first.refresh_from_db()
    second = Preview.objects.exclude(pk=first.pk).get()
    assert first.status == PreviewStatus.EXPIRED
    assert second.status == PreviewStatus.SUCCEEDED
    fields = ("prompt", "gender", "age_range", "style", "ethnicity", "body_type")
    assert [getattr(second, f) for f in fields] == [getattr(first, f) for f in fields]
    assert second.seed != first.seed

    modal.get_by_label("Name").fill("Ayu")
    modal.get_by_role("button", name="Save · 10 credits").click()
    expect(modal).to_be_hidden()
    card = page.locator("#avatar-grid .avatar-card")
    expect(card).to_have_count(1)
    expect(card.locator(".avatar-name")).to_have_text("Ayu")
    expect(card.locator(".chip")).to_have_text(["Female", "Adult (30-40)", "Professional", "Indonesian", "Full body"])
    expect(page.locator("#credit-badge")).to_have_text("90 credits")
    expect(page.get_by_role("heading", name="No avatars yet")).to_have_count(0)
    assert page.evaluate("window.pageMarker") == "no reload"
    screenshot(page, "grid")

    avatar = Avatar.objects.get()
    assert (avatar.name, avatar.preview_id, avatar.project.name) == ("Ayu", second.pk, "Team portraits")
    assert balance("ayu") == 90

    # The lightbox shows the full image, with a download of the saved file.
    card.locator(".avatar-thumb").click()
    expect(page.locator("#modal-title")).to_have_text("Ayu")
    expect(modal.get_by_role("link", name="Download")).to_have_attribute("href", f"/avatars/{avatar.pk}/download")
    with page.expect_download() as download:
        modal.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "ayu.jpg"


def test_cancel_in_phase_two_saves_and_charges_nothing(open_page):
    page = open_page()
    sign_up(page, "bima")
    create_project(page, "Campaign")
    open_avatar_form(page)
    describe(page)
    generate(page)
    expect_phase_two(page)

    page.locator("#modal").get_by_role("button", name="Cancel").click()
    expect(page.locator("#modal")).to_be_hidden()
    expect(page.locator("#avatar-grid .avatar-card")).to_have_count(0)
    expect(page.locator("#credit-badge")).to_have_text("100 credits")
    assert Preview.objects.get().status == PreviewStatus.EXPIRED
    assert (Avatar.objects.count(), balance("bima")) == (0, 100)


def test_escape_closes_the_preview_and_discards_it(open_page):
    page = open_page()
    sign_up(page, "citra")
    create_project(page, "Campaign")
    open_avatar_form(page)
    describe(page)
    generate(page)
    expect_phase_two(page)

    page.keyboard.press("Escape")
    expect(page.locator("#modal")).to_be_hidden()
    assert wait_until(lambda: Preview.objects.get().status == PreviewStatus.EXPIRED)
    assert (Avatar.objects.count(), balance("citra")) == (0, 100)


def test_waiting_shows_progress_then_the_preview_when_the_worker_finishes(open_page, held_queue):
    page = open_page()
    sign_up(page, "dewi")
    create_project(page, "Campaign")
    open_avatar_form(page)
    describe(page, style="casual")
    generate(page)

    modal = page.locator("#modal")
    expect(page.locator("#modal-title")).to_have_text("Generating your preview")
    expect(modal.locator(".status-pill")).to_have_text("Queued")
    expect(modal.locator(".elapsed")).to_contain_text("usually 20–30 seconds")
    expect(modal.locator("[data-elapsed]")).not_to_have_text("0")
    screenshot(page, "waiting")

    preview = Preview.objects.get()
    assert preview.status == PreviewStatus.QUEUED
    services.preview_attempt(preview_id=preview.pk)
    expect_phase_two(page)
    expect(modal.locator(".chip")).to_have_text(["Casual", "Half body"])


def test_cancel_while_waiting_cancels_the_preview_and_keeps_the_form(open_page, held_queue):
    page = open_page()
    sign_up(page, "eka")
    create_project(page, "Campaign")
    open_avatar_form(page)
    describe(page, gender="male", age_range="mature", ethnicity="Javanese", body_type="full_body")
    generate(page)
    modal = page.locator("#modal")
    expect(modal.locator(".status-pill")).to_have_text("Queued")

    modal.get_by_role("button", name="Cancel").click()
    expect(page.locator("#modal-title")).to_have_text("Create an avatar")
    expect(modal.get_by_role("status")).to_have_text("Preview canceled. Nothing was charged.")
    expect(modal.get_by_label("Describe the person")).to_have_value(PROMPT)
    expect(modal.get_by_label("Gender")).to_have_value("male")
    expect(modal.get_by_label("Age range")).to_have_value("mature")
    expect(modal.get_by_label("Ethnicity")).to_have_value("Javanese")
    expect(modal.get_by_label("Body type")).to_have_value("full_body")
    assert Preview.objects.get().status == PreviewStatus.CANCELED
    assert (Avatar.objects.count(), balance("eka")) == (0, 100)


def test_image_api_refusing_the_key_shows_the_error_and_charges_nothing(open_page, settings, fake_image_api):
    settings.AVATAR_GENERATOR = "huggingface"
    settings.HUGGINGFACE_API_KEY = "hf_test_key"
    settings.HF_INFERENCE_URL = fake_image_api.url + "/models/XLabs-AI/flux-RealismLora"
    fake_image_api.script("unauthorized")
    page = open_page()
    sign_up(page, "fajar")
    create_project(page, "Campaign")
    open_avatar_form(page)
    describe(page, gender="female", style="formal")
    generate(page)

    modal = page.locator("#modal")
    alert = modal.get_by_role("alert")
    expect(alert).to_have_text(
        "The image service refused this server's key. No image was made. The administrator needs to check "
        "HUGGINGFACE_API_KEY. Nothing was charged."
    )
    expect(modal.get_by_label("Describe the person")).to_have_value(PROMPT)
    expect(modal.get_by_label("Gender")).to_have_value("female")
    expect(modal.get_by_label("Style")).to_have_value("formal")
    screenshot(page, "error")
    preview = Preview.objects.get()
    assert (preview.status, preview.error_code) == (PreviewStatus.FAILED, "GENERATOR_AUTH_FAILED")
    assert [request.header("Authorization") for request in fake_image_api.requests] == ["Bearer hf_test_key"]
    assert (Avatar.objects.count(), balance("fajar")) == (0, 100)


def test_escape_during_generation_keeps_the_modal_closed_and_discards_the_late_preview(
    open_page, settings, fake_image_api, monkeypatch
):
    settings.AVATAR_GENERATOR = "huggingface"
    settings.HUGGINGFACE_API_KEY = "hf_test_key"
    settings.HF_INFERENCE_URL = fake_image_api.url + "/models/XLabs-AI/flux-RealismLora"
    fake_image_api.script(Reply("ok", delay=1.5))
    # Generation runs in the background now; a slow admission keeps the request in flight long enough to see it.
    admit = previews.preview_rate_check
    monkeypatch.setattr(previews, "preview_rate_check", lambda **kw: (time.sleep(1.0), admit(**kw))[1])
    page = open_page()
    sign_up(page, "gilang")
    create_project(page, "Campaign")
    open_avatar_form(page)
    describe(page)
    generate(page)
    modal = page.locator("#modal")
    expect(modal.locator(".working")).to_contain_text("usually 20–30 seconds")
    expect(modal.get_by_role("button", name="Generate preview")).to_be_disabled()
    screenshot(page, "generating")

    # Generation runs in the background: the preview finishes while the modal waits; Escape once it is shown.
    expect_phase_two(page)
    page.keyboard.press("Escape")
    expect(modal).to_be_hidden()
    assert wait_until(lambda: Preview.objects.filter(status=PreviewStatus.EXPIRED).exists())
    expect(modal).to_be_hidden()
    assert page.locator("#modal-content").inner_html() == ""
    assert (Avatar.objects.count(), balance("gilang")) == (0, 100)
