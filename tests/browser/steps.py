"""What a person does in the UI, as small steps the browser tests share."""

from playwright.sync_api import Page, expect

from tests.polling import wait_until  # noqa: F401 - the browser tests take it from here

PASSWORD = "correct-horse-battery-9"
PROMPT = "Professional Indonesian woman with modern hijab, smiling"
# True while the page is no wider than the screen (nothing pushes a phone screen sideways).
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


def sign_up(page: Page, username: str) -> None:
    page.goto("/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Your projects")).to_be_visible()


def create_project(page: Page, name: str, description: str = "") -> None:
    page.get_by_role("button", name="New project").click()
    modal = page.locator("#modal")
    expect(modal.get_by_role("heading", name="New project")).to_be_visible()
    modal.get_by_label("Name").fill(name)
    if description:
        modal.get_by_label("Description").fill(description)
    modal.get_by_role("button", name="Create project").click()
    expect(page.locator("#project-heading h1")).to_have_text(name)


def open_avatar_form(page: Page) -> None:
    page.locator(".page-actions").get_by_role("button", name="Create avatar").click()
    expect(page.locator("#modal-title")).to_have_text("Create an avatar")


def describe(
    page: Page,
    prompt: str = PROMPT,
    *,
    gender: str = "",
    age_range: str = "",
    style: str = "",
    ethnicity: str = "",
    body_type: str = "half_body",
) -> None:
    """Fill phase 1 as a person would: type the prompt, pick from the dropdowns."""
    modal = page.locator("#modal")
    modal.get_by_label("Describe the person").fill(prompt)
    modal.get_by_label("Gender").select_option(gender)
    modal.get_by_label("Age range").select_option(age_range)
    modal.get_by_label("Style").select_option(style)
    modal.get_by_label("Ethnicity").fill(ethnicity)
    modal.get_by_label("Body type").select_option(body_type)


def generate(page: Page) -> None:
    page.locator("#modal").get_by_role("button", name="Generate preview").click()


def generate_variations(page: Page, count: int) -> None:
    """Ask for `count` variations of what the form describes; the grid to pick from is shown once they are made."""
    page.locator("#modal").get_by_label(str(count), exact=True).check()
    generate(page)
    expect(page.locator("#modal-title")).to_have_text("Pick your favourites")


def expect_phase_two(page: Page) -> None:
    expect(page.locator("#modal-title")).to_have_text("Your preview")
    image = page.locator("#modal .split-media img")
    expect(image).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
