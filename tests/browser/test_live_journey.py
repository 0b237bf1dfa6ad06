"""The modal follows the preview's event stream: the result shows the moment it exists, with no polling, and the
waiting step says why it waits. The image API is the fake one, slowed down or loading, generation in the
background pool of the embedded default."""

import pytest
from playwright.sync_api import expect

from tests.browser.steps import create_project, describe, expect_phase_two, generate, open_avatar_form, sign_up
from tests.fake_image_api import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def requests_to(page):
    seen = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def test_journey_result_arrives_through_the_event_stream_without_polling(open_page, flux):
    flux.script(Reply("ok", delay=2.0))
    page = open_page()
    sign_up(page, "live")
    create_project(page, "Live portraits")
    open_avatar_form(page)
    describe(page)
    seen = requests_to(page)

    generate(page)
    expect(page.locator("#modal-title")).to_have_text("Generating your preview")
    expect(page.locator("[data-live-line]")).to_have_text("Drawing your portrait")
    expect_phase_two(page)

    streams = [url for url in seen if url.endswith("/events")]
    status_requests = [url for url in seen if "/status" in url]
    assert len(streams) == 1
    # One request for the finished step, sent once the stream said the preview was done: no polling meanwhile.
    assert len(status_requests) == 1


def test_journey_waiting_step_says_the_model_is_warming_up(open_page, flux, settings):
    settings.AVATAR_RETRY_MAX_WAIT = 4.0
    flux.script(Reply("loading", estimated_time=4), Reply("ok"))
    page = open_page()
    sign_up(page, "warming")
    create_project(page, "Warm portraits")
    open_avatar_form(page)
    describe(page)

    generate(page)
    expect(page.locator("[data-live-line]")).to_contain_text("The model is warming up, retrying in ")
    expect_phase_two(page)


def test_journey_tab_title_says_the_preview_is_ready_while_the_tab_is_hidden(open_page, flux):
    flux.script(Reply("ok", delay=1.5))
    page = open_page()
    sign_up(page, "hidden")
    create_project(page, "Hidden portraits")
    open_avatar_form(page)
    describe(page)
    title = page.title()

    generate(page)
    expect(page.locator("#modal-title")).to_have_text("Generating your preview")
    # The person looks at another tab while it draws.
    page.evaluate("Object.defineProperty(document, 'hidden', {value: true, configurable: true})")
    expect_phase_two(page)
    expect(page).to_have_title(f"Preview ready - {title}")

    # Back on the tab: the title is the page's own again.
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    expect(page).to_have_title(title)
