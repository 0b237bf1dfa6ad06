"""The UI's finish through Django's test client: the landing page, not-found pages under DEBUG, out-of-band updates."""

import re

import pytest

from avatar_creator.models import Avatar, Preset, PreviewStatus
from tests.factories import make_preview, make_project
from tests.test_ui_views import HTMX, text

pytestmark = pytest.mark.django_db


def test_landing_page_tells_visitors_what_the_product_does_and_costs(client, settings):
    settings.AVATAR_SAVE_COST = 10
    settings.AVATAR_SIGNUP_CREDITS = 100
    response = client.get("/")
    page = text(response)
    assert (response.status_code, response.templates[0].name) == (200, "avatar_creator/landing.html")
    assert "Portraits of the people your brand, campaign or story needs" in page
    assert "Saving an avatar costs 10 credits; new accounts start with 100." in page
    assert page.count("Sign up free") == 1
    assert 'href="/signup"' in response.content.decode()


def test_landing_page_shows_the_presets_with_thumbnails(client):
    Preset.objects.all().delete()
    Preset.objects.create(slug="chef", name="Chef", prompt="A chef in a white jacket",
                          static_thumbnail="img/presets/chef.webp")  # fmt: skip
    Preset.objects.create(slug="no-picture", name="No picture", prompt="A person without a thumbnail")
    html = client.get("/").content.decode()
    assert re.findall(r'<img src="([^"]+)"', html) == ["/static/img/presets/chef.webp"]
    assert "No picture" not in html


def test_landing_page_without_presets_leaves_the_gallery_out(client):
    Preset.objects.all().delete()
    response = client.get("/")
    assert "Start from a preset" not in text(response)
    assert "How it works" in text(response)


def test_root_shows_a_signed_in_user_the_projects(client, alice):
    client.force_login(alice)
    response = client.get("/")
    assert (response.status_code, response.templates[0].name) == (200, "avatar_creator/projects.html")


def test_not_found_ui_path_under_debug_answers_the_sites_page(client, settings):
    settings.DEBUG = True
    response = client.get("/no-such-page")
    assert (response.status_code, response.templates[0].name) == (404, "404.html")
    assert "This page does not exist, or it is not yours to see." in text(response)


def test_not_found_project_under_debug_answers_the_sites_page(client, settings, alice):
    settings.DEBUG = True
    client.force_login(alice)
    response = client.get("/projects/00000000-0000-0000-0000-000000000000")
    assert (response.status_code, response.templates[0].name) == (404, "404.html")
    assert "Go to your projects" in text(response)


def test_not_found_api_path_under_debug_keeps_the_json_envelope(client, settings):
    settings.DEBUG = True
    response = client.get("/api/no-such-route")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "NOT_FOUND")


def test_save_refused_for_lack_of_credits_refreshes_the_badge_and_says_it_once(client, make_user, settings):
    settings.AVATAR_SAVE_COST = 10
    poor = make_user("poor", credits=5)
    client.force_login(poor)
    own = make_project(poor)
    preview = make_preview(poor, own, status=PreviewStatus.SUCCEEDED, files=True)
    response = client.post(f"/projects/{own.pk}/previews/{preview.pk}/save", {"name": "Ayu"}, **HTMX)
    html = response.content.decode()
    badge = re.search(r'<a id="credit-badge"[^>]*>(.*?)</a>', html)
    assert response.status_code == 402
    assert 'hx-swap-oob="true"' in badge.group(0)
    assert re.sub(r"<[^>]+>", "", badge.group(1)) == "5 credits"
    assert "Not enough credits. Saving costs 10 credits and you have 5." in text(response)
    assert "You need 10 credits to save" not in text(response)
    assert Avatar.objects.count() == 0


def test_project_rename_on_its_page_updates_breadcrumb_and_title(client, alice):
    client.force_login(alice)
    project = make_project(alice, name="Old name")
    page_url = f"http://testserver/projects/{project.pk}"
    response = client.post(f"/projects/{project.pk}/edit", {"name": "New name"}, HTTP_HX_CURRENT_URL=page_url, **HTMX)
    html = response.content.decode()
    assert "<title>New name · Lumiku Avatar Creator</title>" in html
    assert '<span id="breadcrumb-current" aria-current="page" hx-swap-oob="true">New name</span>' in html
    assert '<div id="project-heading" class="project-heading" hx-swap-oob="true">' in html


def test_project_rename_from_the_list_leaves_the_title_alone(client, alice):
    client.force_login(alice)
    project = make_project(alice, name="Old name")
    response = client.post(f"/projects/{project.pk}/edit", {"name": "New name"},
                           HTTP_HX_CURRENT_URL="http://testserver/", **HTMX)  # fmt: skip
    html = response.content.decode()
    assert "<title>" not in html
    assert f'<article class="card project-card" id="project-{project.pk}" hx-swap-oob="true">' in html
