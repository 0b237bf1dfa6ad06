"""The UI's rough edges, filed down, in a real browser: keyboard-only and phone journeys, where focus goes after a
delete, the backdrop, the page following a rename, form errors that clear, the prompt counter."""

import io

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from avatar_creator import services
from avatar_creator.models import Avatar, Preset, PresetCategory, Preview, PreviewStatus, Project
from tests.browser.conftest import screenshot
from tests.browser.steps import (
    NO_SIDEWAYS_SCROLL,
    PASSWORD,
    PROMPT,
    create_project,
    describe,
    expect_phase_two,
    generate,
    generate_variations,
    open_avatar_form,
    sign_up,
    wait_until,
)
from tests.factories import load_presets

pytestmark = pytest.mark.django_db(transaction=True)

FOCUSED_IN_MODAL = "() => document.getElementById('modal').contains(document.activeElement)"


def tab_to(page: Page, locator, *, limit: int = 40) -> None:
    """Press Tab (only Tab) until `locator` has focus, as a keyboard user would."""
    for _ in range(limit):
        if locator.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {locator}")


def settled(page: Page) -> None:
    """Wait until htmx has wired up the step it swapped in (its forms submit through htmx only then)."""
    page.wait_for_function("() => !document.querySelector('.htmx-settling, .htmx-added, .htmx-request')")


def to_the_avatar_form(page: Page, username: str) -> None:
    sign_up(page, username)
    create_project(page, "Portraits")
    open_avatar_form(page)


def save_preview(page: Page, name: str) -> None:
    open_avatar_form(page)
    describe(page)
    generate(page)
    expect_phase_two(page)
    modal = page.locator("#modal")
    modal.get_by_label("Name").fill(name)
    modal.get_by_role("button", name="Save · 10 credits").click()
    expect(modal).to_be_hidden()
    settled(page)  # the new card arrives out of band; its buttons work once htmx has wired them


def test_keyboard_only_journey_signs_up_saves_and_deletes_an_avatar(open_page):
    page = open_page()
    page.goto("/")
    tab_to(page, page.locator("main").get_by_role("link", name="Sign up free"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    for label, value in [("Username", "kiki"), ("Email", "kiki@example.com"), ("Password", PASSWORD),
                         ("Password again", PASSWORD)]:  # fmt: skip
        tab_to(page, page.get_by_label(label, exact=True))
        page.keyboard.type(value)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Your projects")).to_be_visible()

    tab_to(page, page.get_by_role("button", name="New project"))
    page.keyboard.press("Enter")
    expect(page.get_by_label("Name")).to_be_focused()
    settled(page)
    page.keyboard.type("Keyboard project")
    page.keyboard.press("Enter")
    expect(page.locator("#project-heading h1")).to_have_text("Keyboard project")

    tab_to(page, page.locator(".page-actions").get_by_role("button", name="Create avatar"))
    page.keyboard.press("Enter")
    expect(page.get_by_label("Describe the person")).to_be_focused()
    settled(page)
    page.keyboard.type(PROMPT)
    tab_to(page, page.get_by_role("button", name="Generate preview"))
    page.keyboard.press("Enter")
    expect_phase_two(page)
    settled(page)
    tab_to(page, page.locator("#modal").get_by_label("Name"))
    page.keyboard.type("Kiki")
    page.keyboard.press("Enter")
    expect(page.locator("#modal")).to_be_hidden()
    expect(page.locator("#avatar-grid .avatar-name")).to_have_text("Kiki")
    settled(page)  # the card came in out of band: its button opens the lightbox once htmx has wired it

    tab_to(page, page.get_by_role("button", name="Open Kiki"))
    page.keyboard.press("Enter")
    expect(page.locator("#modal-title")).to_have_text("Kiki")
    settled(page)
    tab_to(page, page.locator("#modal").get_by_role("button", name="Delete avatar"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Keep it")).to_be_focused()
    settled(page)
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#modal")).to_be_hidden()
    expect(page.get_by_role("heading", name="No avatars yet")).to_be_visible()
    # The card is gone and there is no other: focus lands on the page heading, not on <body>.
    expect(page.locator("#project-heading h1")).to_be_focused()
    assert Avatar.objects.count() == 0


def test_deleting_an_avatar_moves_focus_to_the_next_card(open_page):
    page = open_page()
    sign_up(page, "lala")
    create_project(page, "Two faces")
    save_preview(page, "First")
    save_preview(page, "Second")
    expect(page.locator("#avatar-grid .avatar-name")).to_have_text(["Second", "First"])

    page.get_by_role("button", name="Open Second").click()
    modal = page.locator("#modal")
    modal.get_by_role("button", name="Delete avatar").click()
    modal.get_by_role("button", name="Delete avatar").click()
    expect(modal).to_be_hidden()
    expect(page.get_by_role("button", name="Open First")).to_be_focused()


def test_deleting_a_project_from_the_list_moves_focus_to_the_next_card(open_page):
    page = open_page()
    sign_up(page, "mira")
    for name in ["Older", "Newer"]:
        Project.objects.create(owner=Project.objects.model.owner.field.related_model.objects.get(), name=name)
    page.goto("/")
    page.get_by_role("button", name="Delete Newer").click()
    page.locator("#modal").get_by_role("button", name="Delete project").click()
    expect(page.locator("#modal")).to_be_hidden()
    expect(page.locator(".project-card .card-title")).to_have_text(["Older"])
    expect(page.get_by_role("link", name="Older", exact=True)).to_be_focused()


def test_backdrop_click_closes_the_dialog(open_page):
    page = open_page()
    sign_up(page, "nia")
    page.get_by_role("button", name="New project").click()
    modal = page.locator("#modal")
    expect(modal).to_be_visible()
    modal.click(position={"x": 10, "y": 10})
    expect(modal).to_be_visible()
    page.mouse.click(5, 5)
    expect(modal).to_be_hidden()
    expect(page.get_by_role("button", name="New project")).to_be_focused()


def test_renaming_a_project_on_its_page_updates_breadcrumb_and_title(open_page):
    page = open_page()
    sign_up(page, "omar")
    create_project(page, "Old name")
    expect(page).to_have_title("Old name · Lumiku Avatar Creator")
    page.get_by_role("button", name="Rename").click()
    page.locator("#modal").get_by_label("Name").fill("New name")
    page.locator("#modal").get_by_role("button", name="Save changes").click()
    expect(page.locator("#modal")).to_be_hidden()
    expect(page.locator(".breadcrumb [aria-current=page]")).to_have_text("New name")
    expect(page).to_have_title("New name · Lumiku Avatar Creator")
    expect(page.locator("#project-heading h1")).to_have_text("New name")


def test_prompt_counter_counts_trimmed_text_and_is_red_only_once_typed_in(open_page):
    page = open_page()
    to_the_avatar_form(page, "putu")
    counter = page.locator(".char-count")
    expect(page.locator("#prompt-count")).to_have_text("0")
    expect(counter).not_to_have_class("char-count char-count-off")
    page.get_by_label("Describe the person").fill("   short   ")
    expect(page.locator("#prompt-count")).to_have_text("5")
    expect(counter).to_have_class("char-count char-count-off")
    page.get_by_label("Describe the person").fill(f"  {PROMPT}  ")
    expect(page.locator("#prompt-count")).to_have_text(str(len(PROMPT)))
    expect(counter).to_have_class("char-count")


def test_fixed_prompt_loses_the_servers_error_before_it_is_sent_again(open_page):
    page = open_page()
    to_the_avatar_form(page, "rudi")
    prompt = page.get_by_label("Describe the person")
    prompt.fill("          short")
    generate(page)
    field = page.locator("#modal .field-invalid")
    expect(field).to_have_count(1)
    expect(field.locator(".errorlist")).to_have_count(1)
    prompt.fill(PROMPT)
    expect(field).to_have_count(0)
    expect(page.locator("#modal .errorlist")).to_have_count(0)
    expect(prompt).not_to_have_attribute("aria-invalid", "true")


def finished_step_held(page: Page):
    """Generate, finish the preview and hold the finished step the page then asks for: (its route, its response)."""
    to_the_avatar_form(page, "sinta")
    describe(page)
    generate(page)
    expect(page.locator("#modal-title")).to_have_text("Generating your preview")
    held = []
    page.route("**/status*", lambda route: held.append(route))
    services.preview_attempt(preview_id=Preview.objects.get().pk)
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    # The finished step (with its image) is answered by the server, and arrives only when the test says so.
    return held[0], held[0].fetch()


def watch_image_requests(page: Page) -> list:
    image_requests = []
    page.on("request", lambda request: image_requests.append(request.url) if "/image" in request.url else None)
    return image_requests


def expect_ignored(page: Page, image_requests: list) -> None:
    """A finished step released for a dialog closed meanwhile: nothing shown, no image asked for, the preview gone."""
    page.wait_for_timeout(300)
    expect(page.locator("#modal")).to_be_hidden()
    assert page.locator("#modal-content").inner_html() == ""
    assert image_requests == []
    assert wait_until(lambda: Preview.objects.get().status == PreviewStatus.EXPIRED)


def test_escape_while_the_finished_step_is_on_its_way_ignores_it(open_page, held_queue):
    page = open_page()
    route, finished_step = finished_step_held(page)
    image_requests = watch_image_requests(page)
    modal = page.locator("#modal")
    page.keyboard.press("Escape")
    expect(modal).to_be_hidden()
    route.fulfill(response=finished_step)
    expect_ignored(page, image_requests)


def test_escape_just_before_the_finished_step_is_handled_ignores_it(open_page, held_queue):
    # Esc closes the dialog at once, but the browser fires "close" only at its next frame: a response handled in
    # between is as late as one handled after it. Here Esc lands exactly there, as htmx starts on the response.
    page = open_page()
    route, finished_step = finished_step_held(page)
    image_requests = watch_image_requests(page)
    page.evaluate("""() => document.body.addEventListener("htmx:beforeOnLoad",
                                                           () => document.getElementById("modal").requestClose(),
                                                           { once: true })""")  # fmt: skip
    route.fulfill(response=finished_step)
    expect_ignored(page, image_requests)


def test_a_finished_step_for_a_closed_dialog_leaves_the_next_dialog_alone(open_page, held_queue):
    page = open_page()
    route, finished_step = finished_step_held(page)
    modal = page.locator("#modal")
    page.keyboard.press("Escape")
    expect(modal).to_be_hidden()
    open_avatar_form(page)
    route.fulfill(response=finished_step)
    page.wait_for_timeout(300)

    expect(modal).to_be_visible()
    expect(page.locator("#modal-title")).to_have_text("Create an avatar")
    expect(modal.get_by_label("Describe the person")).to_be_visible()
    assert wait_until(lambda: Preview.objects.get().status == PreviewStatus.EXPIRED)


def test_a_dialog_opened_while_a_discard_is_on_its_way_waits_for_it(open_page, held_queue):
    """Esc discards the preview in the background; the next dialog is asked for once that discard is done, so its
    history strip never lists (and loads the thumbnail of) the preview being thrown away."""
    page = open_page()
    route, finished_step = finished_step_held(page)
    route.fulfill(response=finished_step)
    expect_phase_two(page)
    discards, asked = [], []
    page.route("**/discard", lambda held: discards.append(held))
    page.on("request", lambda request: asked.append(request.url))
    page.keyboard.press("Escape")
    for _ in range(100):
        if discards:
            break
        page.wait_for_timeout(50)
    assert len(discards) == 1
    page.locator(".page-actions").get_by_role("button", name="Create avatar").click()
    page.wait_for_timeout(300)
    assert not [url for url in asked if "/avatars/new" in url or "/thumbnail" in url], asked

    discards[0].continue_()
    expect(page.locator("#modal-title")).to_have_text("Create an avatar")
    assert wait_until(lambda: Preview.objects.get().status == PreviewStatus.EXPIRED)
    expect(page.locator("#modal .history-strip")).to_have_count(0)
    assert not [url for url in asked if "/thumbnail" in url], asked


def test_phone_journey_keeps_each_steps_primary_action_in_view(open_page):
    # The preset gallery, as shipped, sits above the form: a category of thumbnails per row.
    for number, (category, _) in enumerate(PresetCategory.choices * 2):
        Preset.objects.create(slug=f"preset-{number}", name=f"Preset {number}", category=category,
                              prompt="A person to start from", static_thumbnail="img/presets/chef.webp")  # fmt: skip
    page = open_page(390, 844)
    page.goto("/")
    expect(page.locator("main").get_by_role("link", name="Sign up free")).to_be_in_viewport()
    # The landing's presets keep their size (8.5rem) in a strip that scrolls sideways; the page itself does not.
    presets = page.locator(".landing-preset-list .preset")
    expect(presets.first).to_be_visible()
    widths = presets.evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
    assert len(widths) > 3 and all(abs(width - 136) < 1 for width in widths), widths
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    strip = page.locator(".landing-preset-list")
    strip.focus()  # a keyboard reaches the strip and scrolls it
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("el => el.scrollLeft > 0", arg=strip.element_handle())
    sign_up(page, "sari")
    expect(page.get_by_role("button", name="New project")).to_be_in_viewport()
    page.get_by_role("button", name="New project").click()
    expect(page.get_by_role("button", name="Create project")).to_be_in_viewport()
    page.locator("#modal").get_by_label("Name").fill("Phone")
    page.get_by_role("button", name="Create project").click()
    create = page.locator(".page-actions").get_by_role("button", name="Create avatar")
    expect(create).to_be_in_viewport()

    create.click()
    modal = page.locator("#modal")
    expect(modal.get_by_role("button", name="Generate preview")).to_be_in_viewport()
    screenshot(page, "phone-form-actions")
    describe(page, body_type="full_body")
    generate(page)
    expect_phase_two(page)
    for name in ["Save · 10 credits", "Regenerate", "Cancel"]:
        expect(modal.get_by_role("button", name=name)).to_be_in_viewport()
    screenshot(page, "phone-result-actions")
    modal.get_by_role("button", name="Save · 10 credits").click()
    expect(modal).to_be_hidden()
    expect(page.locator("#avatar-grid .avatar-card")).to_have_count(1)


# Text that wraps on a phone wraps between words: the body's `overflow-wrap: anywhere` (long names never push a phone
# screen sideways) once let flex items and table columns shrink until a word broke into pieces.
BROKEN_WORDS = """els => els.filter(el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    return range.getClientRects().length > 1;
}).map(el => el.textContent.trim())"""


def test_phone_screens_break_lines_between_words_only(open_page):
    page = open_page(390, 844)
    sign_up(page, "wulan")
    create_project(page, "A project with a rather long name to see how it wraps on a phone")
    assert page.locator(".breadcrumb a").evaluate_all(BROKEN_WORDS) == []
    expect(page.locator(".breadcrumb [aria-current]")).to_be_visible()

    page.goto("/account/credits")
    cells = page.locator(".ledger th, .ledger .num")
    expect(cells).to_have_count(6)  # four headings, the sign-up bonus and the balance after it
    assert cells.evaluate_all(BROKEN_WORDS) == []
    assert page.evaluate(NO_SIDEWAYS_SCROLL)

    page.goto("/account/tokens")
    page.get_by_label("Token name").fill("Laptop script for the weekly portraits")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator(".tokens").get_by_role("button", name="Revoke")).to_be_visible()
    # The whole table fits: Revoke is on the screen, not in a part of the table scrolled out of sight.
    assert page.locator(".table-wrap").evaluate("wrap => wrap.scrollWidth <= wrap.clientWidth")


SPILLED_LABELS = "els => els.filter(el => el.scrollWidth > el.clientWidth).map(el => el.textContent.trim())"


def test_narrowest_phone_keeps_every_label_inside_its_button(open_page):
    """At 320 px (the narrowest phones): the header's buttons stay on one line, and the actions pinned to the bottom of
    a preview and of the pick grid keep each label inside its button (the last one may take a row of its own)."""
    page = open_page(320, 640)
    sign_up(page, "tari")
    assert page.locator(".header-nav .btn").evaluate_all(BROKEN_WORDS) == []
    assert page.evaluate(NO_SIDEWAYS_SCROLL)  # the header fits: the logo stands for the name
    expect(page.get_by_role("link", name="Lumiku", exact=True)).to_be_visible()
    create_project(page, "Narrow")
    open_avatar_form(page)
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    describe(page)
    generate(page)
    expect_phase_two(page)
    actions = page.locator("#modal .preview-actions .btn")
    expect(actions).to_have_count(3)
    assert actions.evaluate_all(SPILLED_LABELS) == []
    for index in range(3):
        expect(actions.nth(index)).to_be_in_viewport()

    page.locator("#modal").get_by_role("button", name="Cancel").click()
    expect(page.locator("#modal")).to_be_hidden()
    open_avatar_form(page)
    describe(page)
    generate_variations(page, 4)
    assert actions.evaluate_all(SPILLED_LABELS) == []
    for index in range(actions.count()):
        expect(actions.nth(index)).to_be_in_viewport()


def test_pick_grid_keeps_its_actions_in_view_on_a_laptop_screen(open_page, settings):
    """Four variations are taller than the dialog: Save selected, Regenerate all and Cancel stay at its bottom edge (in
    one row) as it opens and scrolled to the end, and save what was picked down there."""
    settings.AVATAR_SAVE_COST = 10
    page = open_page(1280, 720)
    sign_up(page, "wulan")
    create_project(page, "Laptop")
    open_avatar_form(page)
    describe(page)
    generate_variations(page, 4)
    modal = page.locator("#modal")
    assert modal.evaluate("dialog => dialog.scrollHeight > dialog.clientHeight")  # the grid does scroll
    actions = modal.locator(".preview-actions .btn")
    expect(actions).to_have_count(3)
    for where in ("as opened", "at the end"):
        if where == "at the end":
            modal.evaluate("dialog => { dialog.scrollTop = dialog.scrollHeight; }")
        for index in range(3):
            expect(actions.nth(index), f"action {index + 1}, the dialog {where}").to_be_in_viewport(ratio=1)
        tops = actions.evaluate_all("buttons => buttons.map(b => Math.round(b.getBoundingClientRect().top))")
        assert len(set(tops)) == 1, tops
    modal.get_by_label("Keep variation 4").check()
    modal.get_by_role("button", name="Save selected").click()
    expect(modal).to_be_hidden()
    expect(page.locator("#avatar-grid .avatar-card")).to_have_count(1)


# The "Change the description" link against the dialog's actions bar: whether it comes before the bar in the page
# (and so in the Tab order), and whether what the browser shows at the link's middle is the link itself.
EDIT_LINK_AGAINST_BAR = """link => {
  const bar = document.querySelector("#modal .preview-actions");
  const box = link.getBoundingClientRect();
  const shown = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return {
    beforeBar: Boolean(link.compareDocumentPosition(bar) & Node.DOCUMENT_POSITION_FOLLOWING),
    onTop: link.contains(shown),
  };
}"""


@pytest.mark.parametrize("width, height", [(1280, 720), (390, 700)])
def test_change_the_description_sits_by_the_description_above_the_actions(open_page, width, height):
    """On the preview and on the pick grid, "Change the description" is beside the description, before the actions
    bar: never below the bar at the dialog's end nor under it (sticky on a laptop, fixed on a phone), and it opens the
    form filled from the preview."""
    page = open_page(width, height)
    sign_up(page, f"edit{width}")
    create_project(page, "Edits")
    modal = page.locator("#modal")
    for step in ("preview", "pick"):
        open_avatar_form(page)
        describe(page)
        if step == "preview":
            generate(page)
            expect_phase_two(page)
        else:
            generate_variations(page, 4)
        link = modal.get_by_role("link", name="Change the description")
        for where in ("as opened", "at the end"):
            if where == "at the end":
                modal.evaluate("dialog => { dialog.scrollTop = dialog.scrollHeight; }")
            link.scroll_into_view_if_needed()
            assert link.evaluate(EDIT_LINK_AGAINST_BAR) == {"beforeBar": True, "onTop": True}, (step, where)
        link.click()
        expect(modal.get_by_label("Describe the person")).to_have_value(PROMPT)
        modal.get_by_role("button", name="Close").first.click()
        expect(modal).to_be_hidden()


# Where the element the keyboard focused is, against the dialog's actions bar (sticky or fixed at its bottom edge):
# null when the focus is in the bar itself.
FOCUS_AGAINST_BAR = """() => {
  const focused = document.activeElement;
  const bar = document.querySelector("#modal .generate-actions, #modal .preview-actions");
  if (!bar || bar.contains(focused)) return null;
  const box = focused.getBoundingClientRect(), edges = bar.getBoundingClientRect();
  return {
    what: focused.name || focused.textContent.trim().slice(0, 30), top: box.top, bottom: box.bottom,
    barTop: edges.top, barBottom: edges.bottom,
  };
}"""


@pytest.mark.parametrize("width, height", [(1280, 720), (390, 700)])
def test_keyboard_focus_never_hides_under_the_dialog_actions(open_page, width, height):
    """Tabbing through the preset gallery and the form, then the pick grid, scrolls each focused element, the
    description's box whole, clear of the actions bar at the dialog's bottom edge."""
    load_presets()
    page = open_page(width, height)
    sign_up(page, f"tab{width}")
    create_project(page, "Keys")
    open_avatar_form(page)
    modal = page.locator("#modal")
    modal.evaluate("dialog => { dialog.scrollTop = 0; }")
    modal.locator(".preset").first.focus()
    hidden = []
    for step in ("form", "pick"):
        for _ in range(45 if step == "form" else 15):
            page.keyboard.press("Tab")
            seen = page.evaluate(FOCUS_AGAINST_BAR)
            if seen is None:
                continue
            if seen["bottom"] > seen["barTop"] + 1 and seen["top"] < seen["barBottom"] - 1:  # under it, not below
                hidden.append((step, seen))
        if step == "form":
            describe(page)
            generate_variations(page, 4)
            modal.locator(".modal-header button").focus()
    assert hidden == []


FILE_BUTTON = "input => getComputedStyle(input, '::file-selector-button')"
INSIDE = """([part, box]) => {
  const a = part.getBoundingClientRect(), b = box.getBoundingClientRect();
  return a.left >= b.left - 0.5 && a.right <= b.right + 0.5;
}"""


def test_upload_photo_field_is_a_button_and_its_picture_fits_a_phone(open_page):
    """The photo field shows the app's button (not the browser's small grey one inside a text box); the picture picked
    and the help text stay inside the drop zone on a phone."""
    page = open_page(390, 844)
    sign_up(page, "ayu")
    create_project(page, "Photos")
    page.get_by_role("button", name="Upload photo").click()
    modal = page.locator("#modal")
    photo = modal.get_by_label("Photo")
    button = photo.evaluate(f"input => {{ const b = ({FILE_BUTTON})(input); return [b.minHeight, b.fontWeight]; }}")
    assert button == ["42px", "600"]
    assert photo.evaluate("input => getComputedStyle(input).borderTopWidth") == "0px"

    picture = io.BytesIO()
    Image.new("RGB", (1200, 800), (40, 120, 200)).save(picture, "JPEG")
    photo.set_input_files({"name": "a-rather-long-file-name-from-the-camera-roll.jpg", "mimeType": "image/jpeg",
                           "buffer": picture.getvalue()})  # fmt: skip
    preview = modal.locator("[data-photo-preview]")
    expect(preview).to_be_visible()
    zone, form = modal.locator("[data-dropzone]"), modal.locator("form")
    for part, box in ((zone, form), (preview, zone), (photo, zone), (zone.locator(".helptext"), zone)):
        assert page.evaluate(INSIDE, [part.element_handle(), box.element_handle()])


def test_a_tall_form_keeps_its_actions_in_view_on_a_laptop_screen(open_page):
    """With the preset gallery above it, the form is taller than the dialog: Close and Generate stay at the dialog's
    bottom edge wherever it is scrolled (as it opens, the description's box focused; at the top, browsing the
    gallery; at the end), and they still submit the form and close the dialog."""
    load_presets()
    page = open_page(1280, 720)
    sign_up(page, "rina")
    create_project(page, "Laptop")
    open_avatar_form(page)
    modal = page.locator("#modal")
    assert modal.evaluate("dialog => dialog.scrollHeight > dialog.clientHeight")  # the form does scroll
    expect(modal.get_by_label("Describe the person")).to_be_focused()
    for where, scroll in (("as opened", None), ("at the top", "0"), ("at the end", "dialog.scrollHeight")):
        if scroll is not None:
            modal.evaluate(f"dialog => {{ dialog.scrollTop = {scroll}; }}")
        for name in ("Close", "Generate preview"):
            button = modal.locator(".modal-actions").get_by_role("button", name=name, exact=True)
            expect(button, f"{name}, the dialog {where}").to_be_in_viewport(ratio=1)
    modal.evaluate("dialog => { dialog.scrollTop = 0; }")
    modal.get_by_role("button", name="Generate preview").click()  # the gallery in view: the form says what is missing
    expect(modal.get_by_label("Describe the person")).to_be_focused()
    modal.evaluate("dialog => { dialog.scrollTop = 0; }")
    modal.locator(".modal-actions").get_by_role("button", name="Close", exact=True).click()
    expect(modal).to_be_hidden()
