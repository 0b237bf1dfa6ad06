"""The browser UI's pages and htmx partials through Django's test client: auth, ownership, forms, escaping."""

import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.utils.dateformat import format as date_format

from avatar_creator import services
from avatar_creator.models import Avatar, CreditAccount, Preview, PreviewStatus, Project
from avatar_creator.ui.messages import error_words
from tests.factories import PROMPT, make_avatar, make_preview, make_project, wait_finished

SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
HTMX = {"HTTP_HX_REQUEST": "true"}


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def text(response) -> str:
    """What a person reads: the response's text without tags, whitespace collapsed."""
    parser = _Text()
    parser.feed(response.content.decode())
    return " ".join("".join(parser.parts).split())


def balance(user) -> int:
    return CreditAccount.objects.get(user=user).balance


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def project(alice):
    return make_project(alice, name="Team portraits", description="Faces for the about page")


def preview_url(project, preview, action: str) -> str:
    return f"/projects/{project.pk}/previews/{preview.pk}/{action}"


# Accounts


def test_htmx_request_without_session_is_sent_to_the_login_page(client, project):
    page = f"http://testserver/projects/{project.pk}"
    response = client.get(f"/projects/{project.pk}/avatars/new", HTTP_HX_CURRENT_URL=page, **HTMX)
    assert response["HX-Redirect"] == f"/login?next=/projects/{project.pk}"


@pytest.mark.django_db
def test_signup_creates_the_account_with_signup_credits_and_logs_in(client, settings):
    settings.AVATAR_SIGNUP_CREDITS = 100
    body = {"username": "ayu", "email": "ayu@example.com", "password": "correct-horse-battery-9"}
    response = client.post("/signup", {**body, "password_confirm": body["password"]})
    assert (response.status_code, response["Location"]) == (302, "/")
    user = get_user_model().objects.get(username="ayu")
    assert (user.email, balance(user)) == ("ayu@example.com", 100)
    assert "100 credits" in text(client.get("/"))


@pytest.mark.django_db
def test_signup_applies_the_password_validators(client):
    response = client.post(
        "/signup", {"username": "ayu", "password": "12345678", "password_confirm": "12345678", "email": ""}
    )
    assert response.status_code == 422
    assert response.context["form"].errors["password"] == [
        "This password is too common.",
        "This password is entirely numeric.",
    ]
    assert get_user_model().objects.count() == 0


@pytest.mark.django_db
def test_signup_rejects_passwords_that_differ(client):
    body = {"username": "ayu", "password": "correct-horse-battery-9", "password_confirm": "correct-horse-battery-8"}
    response = client.post("/signup", body)
    assert response.status_code == 422
    assert response.context["form"].errors["password_confirm"] == ["The two passwords are not the same."]


@pytest.mark.django_db
def test_signup_refuses_an_email_longer_than_its_column(client):
    body = {"username": "eve", "password": "correct-horse-battery-9", "email": "a" * 245 + "@x.example"}
    response = client.post("/signup", {**body, "password_confirm": body["password"]})
    assert response.status_code == 422
    assert list(response.context["form"].errors) == ["email"]
    assert get_user_model().objects.count() == 0


def test_signup_rejects_a_taken_username_whatever_its_case(client, alice):
    body = {"username": "ALICE", "password": "correct-horse-battery-9", "password_confirm": "correct-horse-battery-9"}
    response = client.post("/signup", body)
    assert response.status_code == 422
    assert response.context["form"].errors["username"] == ["This username is taken."]
    assert get_user_model().objects.count() == 1


def test_login_goes_to_the_projects_page(client, alice):
    response = client.post("/login", {"username": "alice", "password": "correct-horse-battery-9"})
    assert (response.status_code, response["Location"]) == (302, "/")
    assert client.get("/").context["user"] == alice


def test_login_with_a_wrong_password_says_so(client, alice):
    response = client.post("/login", {"username": "alice", "password": "wrong-password-1"})
    assert response.status_code == 200
    assert "Please enter a correct username and password." in text(response)


def test_logout_takes_a_post_only(alice_client):
    assert alice_client.get("/logout").status_code == 405
    response = alice_client.post("/logout")
    assert (response.status_code, response["Location"]) == (302, "/login")
    assert alice_client.get("/").status_code == 302


# Projects


def test_projects_page_tells_a_new_user_what_to_do(alice_client):
    page = text(alice_client.get("/"))
    assert "Start with your first project" in page
    assert "Create your first project" in page


def test_projects_page_lists_only_the_users_projects_with_their_counts(alice_client, alice, bob, project):
    make_avatar(project, name="Ayu")
    make_avatar(project, name="Bima")
    make_project(alice, name="Empty one")
    make_project(bob, name="Bob's secret")
    response = alice_client.get("/")
    assert [p.name for p in response.context["projects"]] == ["Empty one", "Team portraits"]
    page = text(response)
    assert "Team portraits Faces for the about page 2 avatars · Updated" in page
    assert "Empty one 0 avatars" in page
    assert "Bob's secret" not in page


def test_project_create_goes_to_the_new_project(alice_client, alice):
    response = alice_client.post("/projects/new", {"name": "  Campaign  ", "description": "Spring"}, **HTMX)
    project = Project.objects.get()
    assert (project.owner, project.name, project.description) == (alice, "Campaign", "Spring")
    assert response["HX-Redirect"] == f"/projects/{project.pk}"


def test_project_create_rejects_a_blank_or_long_name(alice_client):
    blank = alice_client.post("/projects/new", {"name": "   "}, **HTMX)
    long = alice_client.post("/projects/new", {"name": "x" * 101}, **HTMX)
    assert (blank.status_code, long.status_code) == (422, 422)
    assert blank.context["form"].errors["name"] == ["This field is required."]
    assert long.context["form"].errors["name"] == ["Ensure this value has at most 100 characters (it has 101)."]
    assert Project.objects.count() == 0


def test_project_rename_from_the_list_updates_its_card(alice_client, project):
    response = alice_client.post(
        f"/projects/{project.pk}/edit",
        {"name": "Renamed", "description": ""},
        HTTP_HX_CURRENT_URL="http://testserver/",
        **HTMX,
    )
    project.refresh_from_db()
    assert (project.name, project.description) == ("Renamed", "")
    html = response.content.decode()
    assert f'id="project-{project.pk}" hx-swap-oob="true"' in html
    assert "Renamed" in text(response)


def test_project_rename_from_its_page_updates_the_heading(alice_client, project):
    response = alice_client.post(
        f"/projects/{project.pk}/edit",
        {"name": "Renamed", "description": "New words"},
        HTTP_HX_CURRENT_URL=f"http://testserver/projects/{project.pk}",
        **HTMX,
    )
    html = response.content.decode()
    assert '<div id="project-heading" class="project-heading" hx-swap-oob="true">' in html
    assert f'id="project-{project.pk}"' not in html


def test_project_delete_confirmation_says_how_many_avatars_go_with_it(alice_client, project):
    make_avatar(project)
    make_avatar(project)
    response = alice_client.get(f"/projects/{project.pk}/delete", **HTMX)
    assert "Delete “Team portraits”? Its 2 avatars will be deleted with it. This cannot be undone." in text(response)


def test_project_delete_removes_it_with_its_avatars(alice_client, project):
    make_avatar(project)
    response = alice_client.post(f"/projects/{project.pk}/delete", HTTP_HX_CURRENT_URL="http://testserver/", **HTMX)
    assert (Project.objects.count(), Avatar.objects.count()) == (0, 0)
    assert 'id="project-list" hx-swap-oob="true"' in response.content.decode()
    assert "Project “Team portraits” and its 1 avatar deleted." in text(response)


def test_project_delete_without_avatars_says_so_plainly(alice_client, project):
    response = alice_client.post(f"/projects/{project.pk}/delete", HTTP_HX_CURRENT_URL="http://testserver/", **HTMX)
    assert "Project “Team portraits” deleted." in text(response)


def test_project_delete_from_its_page_returns_to_the_list(alice_client, project):
    response = alice_client.post(
        f"/projects/{project.pk}/delete", HTTP_HX_CURRENT_URL=f"http://testserver/projects/{project.pk}", **HTMX
    )
    assert response["HX-Redirect"] == "/"
    assert Project.objects.count() == 0
    assert "Project “Team portraits” deleted." in text(alice_client.get("/"))


def test_logout_says_the_user_is_signed_out(alice_client):
    response = alice_client.post("/logout", follow=True)
    assert "You are signed out. See you soon." in text(response)


def test_expired_session_says_why_the_login_page_shows(alice_client):
    alice_client.cookies["sessionid"] = "a-session-that-no-longer-exists"
    response = alice_client.get("/", follow=True)
    assert response.redirect_chain == [("/login?next=/", 302)]
    assert "Your session has ended. Log in again to continue." in text(response)


def test_preview_saved_without_a_name_takes_the_first_words_without_a_trailing_comma(alice_client, alice, project):
    preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True,
                           prompt="Senior architect, silver beard, confident look, warm light")  # fmt: skip
    alice_client.post(preview_url(project, preview, "save"), {"name": ""}, **HTMX)
    assert Avatar.objects.get().name == "Senior architect, silver beard, confident look"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("get", "/edit"),
        ("post", "/edit"),
        ("get", "/delete"),
        ("post", "/delete"),
        ("get", "/avatars/new"),
        ("post", "/previews"),
    ],
)
def test_another_users_project_is_not_found(bob_client, project, method, path):
    response = getattr(bob_client, method)(f"/projects/{project.pk}{path}", {"name": "Mine now", "prompt": PROMPT})
    assert response.status_code == 404
    project.refresh_from_db()
    assert (Project.objects.count(), project.name, Preview.objects.count()) == (1, "Team portraits", 0)


def test_another_users_project_is_not_found_in_the_modal_either(bob_client, project):
    response = bob_client.get(f"/projects/{project.pk}/avatars/new", **HTMX)
    assert response.status_code == 404
    assert text(response) == "Not found × Project not found. It may have been deleted. Close"


# Avatars


def test_project_page_shows_the_avatar_grid(alice_client, project):
    make_avatar(project, name="Ayu", gender="female", age_range="adult", style="formal", body_type="full_body")
    response = alice_client.get(f"/projects/{project.pk}")
    assert [a.name for a in response.context["avatars"]] == ["Ayu"]
    page = text(response)
    assert "Ayu Female Adult (30-40) Formal Full body" in page
    assert "No avatars yet" not in page
    assert "100 credits" in page


def test_project_page_without_avatars_shows_how_to_start(alice_client, project):
    page = text(alice_client.get(f"/projects/{project.pk}"))
    assert "No avatars yet Press Create avatar and describe a person." in page


def test_avatar_lightbox_shows_the_full_image_and_its_actions(alice_client, project):
    avatar = make_avatar(project, name="Ayu")
    response = alice_client.get(f"/avatars/{avatar.pk}", **HTMX)
    html = response.content.decode()
    assert f'src="{avatar.image.url}"' in html
    assert f'href="/avatars/{avatar.pk}/download"' in html
    assert "Rename" in text(response)
    assert "Delete avatar" in text(response)


def test_avatar_rename_updates_the_lightbox_and_the_card(alice_client, project):
    avatar = make_avatar(project, name="Ayu")
    response = alice_client.post(f"/avatars/{avatar.pk}/rename", {"name": "Ayu Lestari"}, **HTMX)
    avatar.refresh_from_db()
    assert avatar.name == "Ayu Lestari"
    assert f'id="avatar-{avatar.pk}" hx-swap-oob="true"' in response.content.decode()
    assert "Renamed." in text(response)


def test_avatar_rename_rejects_a_blank_name(alice_client, project):
    avatar = make_avatar(project, name="Ayu")
    response = alice_client.post(f"/avatars/{avatar.pk}/rename", {"name": " "}, **HTMX)
    avatar.refresh_from_db()
    assert (response.status_code, avatar.name) == (422, "Ayu")


def test_avatar_delete_removes_it_and_brings_back_the_empty_state(alice_client, project):
    avatar = make_avatar(project)
    response = alice_client.post(f"/avatars/{avatar.pk}/delete", **HTMX)
    html = response.content.decode()
    assert Avatar.objects.count() == 0
    assert f'<div id="avatar-{avatar.pk}" hx-swap-oob="delete"></div>' in html
    assert "No avatars yet" in text(response)


def test_avatar_download_is_an_attachment_named_after_the_avatar(alice_client, project):
    avatar = make_avatar(project, name="Ayu <Lestari>")
    response = alice_client.get(f"/avatars/{avatar.pk}/download")
    assert response["Content-Disposition"] == 'attachment; filename="ayu-lestari.jpg"'
    assert b"".join(response.streaming_content) == avatar.image.open("rb").read()


@pytest.mark.parametrize(
    ("method", "path"), [("get", ""), ("post", "/rename"), ("post", "/delete"), ("get", "/download")]
)
def test_another_users_avatar_is_not_found(bob_client, project, method, path):
    avatar = make_avatar(project, name="Ayu")
    response = getattr(bob_client, method)(f"/avatars/{avatar.pk}{path}", {"name": "Mine now"})
    avatar.refresh_from_db()
    assert (response.status_code, avatar.name, Avatar.objects.count()) == (404, "Ayu", 1)


# The avatar modal


def test_preview_form_offers_the_fields_with_body_type_half_body_by_default(alice_client, project):
    response = alice_client.get(f"/projects/{project.pk}/avatars/new", **HTMX)
    html = response.content.decode()
    assert 'placeholder="Professional Indonesian woman with a modern hijab, warm smile, soft office light"' in html
    assert '<option value="half_body" selected>Half body — portrait</option>' in html
    assert '<option value="full_body">Full body</option>' in html
    assert "0 / 500 characters (at least 10)" in text(response)
    form = response.context["form"]
    assert list(form.fields) == ["prompt", "gender", "age_range", "style", "ethnicity", "body_type"]


def test_preview_create_rejects_a_short_prompt_and_keeps_what_was_typed(alice_client, project):
    body = {
        "prompt": "too short",
        "gender": "male",
        "style": "sporty",
        "ethnicity": "Sundanese",
        "body_type": "full_body",
    }
    response = alice_client.post(f"/projects/{project.pk}/previews", body, **HTMX)
    assert response.status_code == 422
    form = response.context["form"]
    assert form.errors["prompt"] == ["Ensure this value has at least 10 characters (it has 9)."]
    assert {key: form[key].value() for key in body} == body
    assert Preview.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_preview_create_shows_the_preview_with_cost_and_balance(alice_client, project):
    body = {"prompt": PROMPT, "gender": "female", "age_range": "adult", "style": "professional",
            "ethnicity": "Indonesian", "body_type": "half_body"}  # fmt: skip
    alice_client.post(f"/projects/{project.pk}/previews", body, **HTMX)
    preview = wait_finished(Preview.objects.get())
    # The form answers with the waiting step; the finished step is what the status answers now.
    response = alice_client.get(preview_url(project, preview, "status"), **HTMX)
    assert (preview.status, preview.prompt, preview.ethnicity) == ("succeeded", PROMPT, "Indonesian")
    html = response.content.decode()
    assert f'src="/api/avatar-creator/previews/{preview.pk}/image"' in html
    page = text(response)
    assert "Your preview" in page
    assert f"Enhanced prompt {preview.enhanced_prompt}" in page
    assert "Saving costs 10 credits. Your balance: 100." in page
    assert 'hx-trigger="every 1s"' not in html


@pytest.mark.django_db(transaction=True)
def test_preview_create_when_rate_limited_says_so_and_keeps_the_form(alice_client, project, settings):
    settings.AVATAR_PREVIEW_RATE = "1/hour"
    body = {"prompt": PROMPT, "style": "casual", "body_type": "half_body"}
    alice_client.post(f"/projects/{project.pk}/previews", body, **HTMX)
    response = alice_client.post(f"/projects/{project.pk}/previews", body, **HTMX)
    assert response.status_code == 429
    assert "Too many previews right now. Try again in 60 min. Nothing was charged." in text(response)
    assert response.context["form"]["style"].value() == "casual"
    assert Preview.objects.count() == 1


def test_preview_status_while_queued_keeps_polling_the_progress_line(alice_client, alice, project):
    preview = make_preview(alice, project)
    response = alice_client.get(preview_url(project, preview, "status"), **HTMX)
    html = response.content.decode()
    assert html.startswith('<div id="preview-progress"')
    assert 'hx-trigger="every 1s"' in html
    assert text(response) == "Queued Waiting for the generator…"
    assert "HX-Retarget" not in response


def test_preview_status_while_retrying_says_why(alice_client, alice, project):
    preview = make_preview(alice, project, status=PreviewStatus.QUEUED, error_code="MODEL_LOADING", attempts=1)
    response = alice_client.get(preview_url(project, preview, "status"), **HTMX)
    assert text(response) == "Queued Waiting for the generator… The model is warming up: trying again automatically."


def test_preview_status_when_finished_replaces_the_modal_and_stops_polling(alice_client, alice, project):
    preview = make_preview(alice, project, status=PreviewStatus.SUCCEEDED, files=True)
    response = alice_client.get(preview_url(project, preview, "status") + "?name=Ayu", **HTMX)
    assert (response["HX-Retarget"], response["HX-Reswap"]) == ("#modal-content", "innerHTML")
    html = response.content.decode()
    assert 'hx-trigger="every 1s"' not in html
    assert 'value="Ayu"' in html


def test_preview_status_of_a_failed_preview_shows_plain_words_and_the_filled_form(alice_client, alice, project):
    upstream = "Model black-forest-labs/FLUX.1-dev is currently loading"
    preview = make_preview(alice, project, status=PreviewStatus.FAILED, gender="female", style="professional",
                           error_code="MODEL_LOADING", error_message=upstream, retry_after=19.2)  # fmt: skip
    response = alice_client.get(preview_url(project, preview, "status"), **HTMX)
    page = text(response)
    assert "The model is warming up. Try again in 20 s. Nothing was charged." in page
    assert "black-forest-labs" not in page
    form = response.context["form"]
    assert (form["prompt"].value(), form["gender"].value(), form["style"].value()) == (PROMPT, "female", "professional")


@pytest.mark.parametrize(
    ("code", "retry_after", "expected"),
    [
        ("MODEL_LOADING", 20, ("The model is warming up", "Try again in 20 s. Nothing was charged.")),
        ("RATE_LIMIT_EXCEEDED", 7, ("Too many previews right now", "Try again in 7 s. Nothing was charged.")),
        (
            "GENERATION_FAILED",
            None,
            ("Generation failed", "The image could not be made. Try again. Nothing was charged."),
        ),
        ("GENERATION_TIMEOUT", None, ("Generation took too long", "Try again. Nothing was charged.")),
        (
            "QUEUE_UNAVAILABLE",
            None,
            ("The generation queue is unavailable", "Try again in a moment. Nothing was charged."),
        ),
        ("SOMETHING_NEW", None, ("Something went wrong", "The upstream said no.")),
    ],
)
def test_error_words_are_plain_sentences(code, retry_after, expected):
    words = error_words(code, retry_after=retry_after, message="The upstream said no.")
    assert (words["title"], words["message"]) == expected


def test_preview_cancel_while_waiting_cancels_and_returns_the_filled_form(alice_client, alice, project):
    preview = make_preview(alice, project, ethnicity="Javanese", body_type="full_body")
    response = alice_client.post(preview_url(project, preview, "cancel"), **HTMX)
    preview.refresh_from_db()
    assert preview.status == PreviewStatus.CANCELED
    assert "Preview canceled. Nothing was charged." in text(response)
    form = response.context["form"]
    assert (form["prompt"].value(), form["ethnicity"].value(), form["body_type"].value()) == (
        PROMPT,
        "Javanese",
        "full_body",
    )


@pytest.mark.django_db(transaction=True)
def test_preview_discard_throws_the_preview_away_and_closes_the_modal(alice_client, alice, project):
    preview = services.preview_request(user=alice, project=project, prompt=PROMPT)
    wait_finished(preview)
    response = alice_client.post(preview_url(project, preview, "discard"), **HTMX)
    preview.refresh_from_db()
    assert (response.status_code, response.content) == (200, b"")
    assert (preview.status, preview.image.name) == (PreviewStatus.EXPIRED, "")


@pytest.mark.django_db(transaction=True)
def test_preview_regenerate_uses_the_same_fields_with_a_new_seed(alice_client, alice, project):
    old = services.preview_request(user=alice, project=project, prompt=PROMPT, gender="male", age_range="young",
                                   style="sporty", ethnicity="Batak", body_type="full_body", seed=1)  # fmt: skip
    wait_finished(old)
    response = alice_client.post(preview_url(project, old, "regenerate"), {"name": "Budi"}, **HTMX)
    old.refresh_from_db()
    new = wait_finished(Preview.objects.exclude(pk=old.pk).get())
    fields = ("prompt", "gender", "age_range", "style", "ethnicity", "body_type")
    assert [getattr(new, f) for f in fields] == [getattr(old, f) for f in fields]
    assert (old.status, new.status) == (PreviewStatus.EXPIRED, PreviewStatus.SUCCEEDED)
    assert new.seed != 1
    # The answer is the waiting step, which carries the name on to the finished one.
    response = alice_client.get(response.context["status_url"], **HTMX)
    assert 'value="Budi"' in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_preview_save_adds_the_card_and_updates_the_balance_out_of_band(alice_client, alice, project, settings):
    settings.AVATAR_SAVE_COST = 10
    preview = services.preview_request(user=alice, project=project, prompt=PROMPT, style="formal")
    wait_finished(preview)
    response = alice_client.post(preview_url(project, preview, "save"), {"name": "Ayu"}, **HTMX)
    avatar = Avatar.objects.get()
    assert (avatar.name, avatar.preview_id, avatar.style, balance(alice)) == ("Ayu", preview.pk, "formal", 90)
    html = response.content.decode()
    assert '<div hx-swap-oob="afterbegin:#avatar-grid">' in html
    assert f'id="avatar-{avatar.pk}"' in html
    assert re.search(r'id="credit-badge"[^>]*hx-swap-oob="true"', html)
    assert '<div id="avatar-empty" hx-swap-oob="true">' in html
    assert text(response) == f"Ayu Formal Half body {date_format(avatar.created_at, 'j M Y')} 90 credits Saved “Ayu”."


@pytest.mark.django_db(transaction=True)
def test_preview_save_twice_charges_once(alice_client, alice, project):
    preview = services.preview_request(user=alice, project=project, prompt=PROMPT)
    wait_finished(preview)
    alice_client.post(preview_url(project, preview, "save"), {"name": "Ayu"}, **HTMX)
    again = alice_client.post(preview_url(project, preview, "save"), {"name": "Ayu"}, **HTMX)
    assert (Avatar.objects.count(), balance(alice)) == (1, 90)
    assert "avatar-grid" not in again.content.decode()
    assert "“Ayu” was already saved." in text(again)


@pytest.mark.django_db(transaction=True)
def test_preview_with_too_few_credits_cannot_be_saved(client, make_user, settings):
    settings.AVATAR_SAVE_COST = 10
    poor = make_user("poor", credits=5)
    client.force_login(poor)
    own = make_project(poor)
    preview = services.preview_request(user=poor, project=own, prompt=PROMPT)
    wait_finished(preview)
    shown = client.get(preview_url(own, preview, "status"), **HTMX)
    save_button = '<button type="submit" class="btn btn-primary" disabled aria-describedby="save-blocked">'
    assert save_button in shown.content.decode()
    assert "You need 10 credits to save and have 5." in text(shown)

    response = client.post(preview_url(own, preview, "save"), {"name": "Ayu"}, **HTMX)
    assert response.status_code == 402
    assert "Not enough credits. Saving costs 10 credits and you have 5. Nothing was charged." in text(response)
    assert (Avatar.objects.count(), balance(poor)) == (0, 5)


def test_preview_save_of_an_expired_preview_asks_for_a_new_one(alice_client, alice, project):
    preview = make_preview(alice, project, status=PreviewStatus.EXPIRED)
    response = alice_client.post(preview_url(project, preview, "save"), {"name": "Ayu"}, **HTMX)
    assert response.status_code == 409
    assert "This preview can no longer be saved. Generate a new one. Nothing was charged." in text(response)
    assert response.context["form"]["prompt"].value() == PROMPT
    assert (Avatar.objects.count(), balance(alice)) == (0, 100)


@pytest.mark.parametrize(
    ("method", "action"),
    [("get", "status"), ("post", "cancel"), ("post", "discard"), ("post", "regenerate"), ("post", "save")],  # fmt: skip
)
def test_another_users_preview_is_not_found(bob_client, alice, project, method, action):
    preview = make_preview(alice, project)
    response = getattr(bob_client, method)(preview_url(project, preview, action), **HTMX)
    preview.refresh_from_db()
    assert (response.status_code, preview.status, Preview.objects.count()) == (404, PreviewStatus.QUEUED, 1)


def test_preview_under_another_project_of_the_same_user_is_not_found(alice_client, alice, project):
    preview = make_preview(alice, project)
    other = make_project(alice, name="Other")
    response = alice_client.get(preview_url(other, preview, "status"), **HTMX)
    assert response.status_code == 404


# Escaping, scripts and the offline notice


@pytest.mark.django_db(transaction=True)
def test_user_text_is_escaped_on_every_page(alice_client, alice):
    project = make_project(alice, name=SCRIPT, description=SCRIPT)
    avatar = make_avatar(project, name=SCRIPT, ethnicity=SCRIPT)
    avatar.generation_prompt = SCRIPT
    avatar.save(update_fields=["generation_prompt"])
    preview = services.preview_request(user=alice, project=project, prompt=f"A person {SCRIPT}")
    wait_finished(preview)
    failed = make_preview(alice, project, status=PreviewStatus.FAILED, prompt=SCRIPT, error_code="GENERATION_FAILED")
    responses = [
        alice_client.get("/"),
        alice_client.get(f"/projects/{project.pk}"),
        alice_client.get(f"/projects/{project.pk}/delete", **HTMX),
        alice_client.get(f"/avatars/{avatar.pk}", **HTMX),
        alice_client.get(f"/avatars/{avatar.pk}/delete", **HTMX),
        alice_client.get(preview_url(project, preview, "status"), **HTMX),
        alice_client.get(preview_url(project, failed, "status"), **HTMX),
        alice_client.post(
            f"/projects/{project.pk}/edit", {"name": SCRIPT}, HTTP_HX_CURRENT_URL="http://testserver/", **HTMX
        ),
    ]
    for response in responses:
        html = response.content.decode()
        assert ESCAPED_SCRIPT in html
        assert "<script>alert" not in html


def test_pages_have_no_inline_javascript_or_styles(alice_client, alice, project):
    avatar = make_avatar(project)
    preview = make_preview(alice, project)
    pages = [
        alice_client.get("/"),
        alice_client.get(f"/projects/{project.pk}"),
        alice_client.get(f"/projects/{project.pk}/avatars/new", **HTMX),
        alice_client.get(f"/avatars/{avatar.pk}", **HTMX),
        alice_client.get(preview_url(project, preview, "status")),
        alice_client.get("/login"),
    ]
    for response in pages:
        html = response.content.decode()
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
        assert re.findall(r"\son[a-z]+\s*=", html) == []
        assert re.findall(r"\sstyle\s*=", html) == []


def test_htmx_and_the_apps_assets_are_served_locally(alice_client):
    html = alice_client.get("/").content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts == ["/static/django_htmx/htmx-2.min.js", "/static/js/app.js"]
    for path in ("django_htmx/htmx-2.min.js", "js/app.js", "css/app.css"):
        assert finders.find(path) is not None
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


@pytest.mark.parametrize(("generator", "shown"), [("offline", True), ("huggingface", False)])
def test_offline_generator_notice(alice_client, settings, generator, shown):
    settings.AVATAR_GENERATOR = generator
    page = text(alice_client.get("/"))
    notice = (
        "Demo mode: previews are labelled sketches, not photos. Real portraits are switched on by the site's operator."
    )
    assert "HUGGINGFACE_API_KEY" not in page  # the operator's hint is in the README, not on the users' pages
    assert (notice in page) is shown


def test_login_attempts_share_the_apis_limit_per_address(client, alice):
    codes = [client.post("/login", {"username": "alice", "password": "nope-nope-1"}).status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]
    blocked = client.post("/login", {"username": "alice", "password": "correct-horse-battery-9"})
    assert blocked.status_code == 429
    assert re.search(r"Too many attempts × Wait \d+ s and try again\.", text(blocked))
    assert int(blocked["Retry-After"]) > 0


def test_modal_steps_work_as_pages_without_javascript(alice_client, alice):
    page = alice_client.get("/projects/new")
    assert page.status_code == 200
    assert page.content.decode().startswith("<!doctype html>")
    assert page.templates[0].name == "avatar_creator/modal_page.html"
    response = alice_client.post("/projects/new", {"name": "Campaign"})
    project = Project.objects.get()
    assert (response.status_code, response["Location"]) == (302, f"/projects/{project.pk}")


def test_an_empty_post_is_a_failed_form_not_a_blank_one(alice_client):
    response = alice_client.post("/projects/new", **HTMX)
    assert response.status_code == 422
    assert response.context["form"].errors["name"] == ["This field is required."]


@pytest.mark.django_db(transaction=True)
def test_changing_the_description_discards_the_preview_and_returns_the_filled_form(alice_client, alice, project):
    preview = services.preview_request(user=alice, project=project, prompt=PROMPT, style="sporty")
    wait_finished(preview)
    response = alice_client.post(preview_url(project, preview, "cancel"), **HTMX)
    preview.refresh_from_db()
    assert preview.status == PreviewStatus.EXPIRED
    assert "The preview was discarded. Change the description and generate a new one." in text(response)
    assert (response.context["form"]["prompt"].value(), response.context["form"]["style"].value()) == (PROMPT, "sporty")


def test_avatar_delete_keep_button_does_not_inherit_the_forms_disabled_selector(alice_client, project):
    avatar = make_avatar(project)
    html = alice_client.get(f"/avatars/{avatar.pk}/delete", **HTMX).content.decode()
    # Inherited, the form's "find button[type=submit]" matches nothing under this button: htmx logs an error.
    assert re.search(r'<button type="button"[^>]*hx-disabled-elt="this"[^>]*>Keep it</button>', html)


def test_project_page_headings_do_not_skip_a_level(alice_client, project):
    make_avatar(project)
    html = alice_client.get(f"/projects/{project.pk}").content.decode()
    levels = [int(level) for level in re.findall(r"<h([1-6])\b", html)]
    assert levels[0] == 1
    assert all(later - earlier <= 1 for earlier, later in zip(levels, levels[1:], strict=False))
