"""Hostile input: oversized and malformed bodies, images that lie, names that try paths or markup, odd headers,
brute force against every password check, and the production deployment checks.

Every refusal must be a clear 4xx in the error envelope and leave nothing behind: no rows, no charge, no files.
"""

import base64
import io
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from PIL import Image

from avatar_creator.models import Avatar, CreditAccount, CreditLedgerEntry, Preview, Project
from tests.factories import jpeg_bytes, make_project

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Professional Indonesian woman with modern hijab, smiling"
UUID_HEX = r"[0-9a-f]{32}"
SCRIPT = "<script>alert(1)</script>"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def png_bytes(width: int = 64, height: int = 64, *, alpha: bool = False) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA" if alpha else "RGB", (width, height), (10, 200, 30, 128) if alpha else (10, 200, 30)).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def url(project, action: str) -> str:
    return f"/api/avatar-creator/projects/{project.pk}/avatars/{action}"


def balance(user) -> int:
    return CreditAccount.objects.get(user=user).balance


def media_files() -> list[str]:
    root = Path(django_settings.MEDIA_ROOT)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_nothing_written(user, *, projects: int = 1):
    assert (Avatar.objects.count(), Preview.objects.count(), Project.objects.count()) == (0, 0, projects)
    assert balance(user) == 100
    assert not CreditLedgerEntry.objects.filter(reason="avatar_save").exists()
    assert media_files() == []


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    body = response.json()
    assert (body["success"], body["error"]["code"]) == (False, code)
    assert "Traceback" not in response.content.decode(errors="replace")
    return body["error"]


@pytest.fixture
def project(alice):
    return make_project(alice)


# Oversized and malformed bodies


@pytest.mark.parametrize("action", ["generate-preview", "save-preview", "generate"])
def test_body_over_the_upload_limit_is_refused_with_413(alice_api, alice, project, settings, action):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    body = {"prompt": PROMPT, "name": "Big", "imageBase64": "A" * (100 * 1024)}
    response = alice_api.post(url(project, action), body, format="json")

    error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert error["message"] == "The request body is larger than 64 KB."
    assert_nothing_written(alice)


def test_body_over_the_upload_limit_is_refused_on_account_endpoints(anon, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = anon.post("/api/auth/register", {"username": "big", "password": "x" * 4096}, format="json")
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert not CreditAccount.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"prompt": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}",
        b'{"prompt": "unterminated',
        b"\xff\xfe\x00{",
        b'{"seed": ' + b"9" * 10_000 + b"}",
    ],
    ids=["deep-array", "deep-object", "truncated", "not-utf8", "huge-integer"],
)
def test_malformed_json_is_a_400(alice_api, alice, project, raw):
    response = alice_api.post(url(project, "generate-preview"), raw, content_type="application/json")
    error = assert_error(response, 400, "MALFORMED_REQUEST")
    assert error["message"] == "The request body is not valid JSON."
    assert_nothing_written(alice)


@pytest.mark.parametrize(
    ("image", "status", "code"),
    [
        ("QUFB" * (4 * 1024 * 1024), 413, "PAYLOAD_TOO_LARGE"),  # 12 MB of decoded bytes
        ("data:image/jpeg;base64," + "QUFB" * (4 * 1024 * 1024), 413, "PAYLOAD_TOO_LARGE"),
        (_b64(os.urandom(64)) + " " * (30 * 1024 * 1024), 413, "PAYLOAD_TOO_LARGE"),  # padded with whitespace
        (_b64(jpeg_bytes(2048, 2049)), 413, "PAYLOAD_TOO_LARGE"),
    ],
    ids=["12mb", "12mb-data-uri", "whitespace-padding", "too-tall"],
)
def test_huge_base64_images_are_refused_with_413(alice_api, alice, project, settings, image, status, code):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 40 * 1024 * 1024
    response = alice_api.post(url(project, "save-preview"), {"name": "Huge", "imageBase64": image}, format="json")
    assert_error(response, status, code)
    assert_nothing_written(alice)


# Images that are not what they claim


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(1)</script></svg>'
HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "image",
    [
        _b64(SVG),
        "data:image/svg+xml;base64," + _b64(SVG),
        "data:image/png;base64," + _b64(SVG),
        "data:image/jpeg;base64," + _b64(HTML),
        "data:text/html;base64," + _b64(jpeg_bytes()),
        _b64(_gif()),
        _b64(b"\xff\xd8\xff\xe0" + HTML),  # JPEG magic, HTML body
        _b64(b"\x89PNG\r\n\x1a\n" + HTML),  # PNG magic, HTML body
        _b64(b"%PDF-1.7\n" + HTML),
        "data:image/png," + "%89PNG",  # not base64 at all
    ],
    ids=["svg", "svg-data-uri", "svg-as-png", "html-as-jpeg", "jpeg-as-html", "gif", "jpeg-polyglot",
         "png-polyglot", "pdf", "data-uri-not-base64"],
)  # fmt: skip
def test_non_images_sent_as_images_are_invalid(alice_api, alice, project, image):
    response = alice_api.post(url(project, "save-preview"), {"name": "Fake", "imageBase64": image}, format="json")
    assert_error(response, 400, "INVALID_IMAGE")
    assert_nothing_written(alice)


@pytest.mark.parametrize(
    ("image", "extension", "pil_format"),
    [
        ("data:image/png;base64," + _b64(jpeg_bytes(320, 240)), "jpg", "JPEG"),
        ("data:image/jpeg;base64," + _b64(png_bytes(320, 240, alpha=True)), "png", "PNG"),
        ("data:image/gif;base64," + _b64(png_bytes(320, 240)), "jpg", "JPEG"),
    ],
    ids=["jpeg-claiming-png", "png-claiming-jpeg", "png-claiming-gif"],
)
def test_images_with_lying_types_are_stored_as_what_they_are(alice_api, alice, project, image, extension, pil_format):
    response = alice_api.post(url(project, "save-preview"), {"name": "Liar", "imageBase64": image}, format="json")

    assert response.status_code == 201
    avatar = Avatar.objects.get()
    assert re.fullmatch(rf"avatars/{UUID_HEX}\.{extension}", avatar.image.name)
    assert re.fullmatch(rf"avatars/thumbnails/{UUID_HEX}\.jpg", avatar.thumbnail.name)
    with Image.open(avatar.image.path) as stored:
        assert (stored.format, stored.size) == (pil_format, (320, 240))
    assert media_files() == sorted([avatar.image.name, avatar.thumbnail.name])


def test_image_metadata_is_not_stored(alice_api, alice, project):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buffer, "JPEG", comment=SCRIPT.encode())
    assert SCRIPT.encode() in buffer.getvalue()
    response = alice_api.post(
        url(project, "save-preview"), {"name": "Meta", "imageBase64": _b64(buffer.getvalue())}, format="json"
    )
    assert response.status_code == 201
    avatar = Avatar.objects.get()
    for field in (avatar.image, avatar.thumbnail):
        assert SCRIPT.encode() not in Path(field.path).read_bytes()


# Names and text that try paths, markup or control characters


HOSTILE_NAMES = [
    "../../etc/passwd",
    "..\\..\\windows\\system32",
    "/absolute/path.jpg",
    SCRIPT,
    '"><img src=x onerror=alert(1)>',
    "\u202egnp.exe",  # right-to-left override
    "\U0001d54f" * 100,  # 100 astral characters: the maximum length
    "名前" * 50,
    "Robert'); DROP TABLE avatar_creator_avatar;--",
    "{{ 7*7 }} {% now 'Y' %} ${7*7}",
    "%00%2e%2e%2f",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_stored_and_echoed_as_plain_text(alice_api, alice, project, name):
    body = {"name": name, "imageBase64": _b64(jpeg_bytes(64, 64)), "generationPrompt": name, "ethnicity": name[:50]}
    response = alice_api.post(url(project, "save-preview"), body, format="json")

    assert response.status_code == 201
    echoed = response.json()["avatar"]
    assert (echoed["name"], echoed["generationPrompt"], echoed["ethnicity"]) == (name, name, name[:50])
    avatar = Avatar.objects.get()
    assert (avatar.name, avatar.generation_prompt) == (name, name)
    # File names are ours (random UUIDs), never derived from anything the client sent.
    assert re.fullmatch(rf"avatars/{UUID_HEX}\.jpg", avatar.image.name)
    assert media_files() == sorted([avatar.image.name, avatar.thumbnail.name])

    renamed = alice_api.patch(f"/api/avatar-creator/avatars/{avatar.pk}", {"name": name[::-1]}, format="json")
    assert renamed.json()["avatar"]["name"] == name[::-1]
    created = alice_api.post("/api/avatar-creator/projects", {"name": name, "description": name}, format="json")
    assert (created.status_code, created.json()["project"]["name"]) == (201, name.strip())


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/avatar-creator/projects", {"name": "a\x00b"}, "name"),
        ("/api/avatar-creator/projects", {"name": "ok", "description": "x\x00"}, "description"),
        ("/api/avatar-creator/projects", {"name": "\U0001d54f" * 101}, "name"),
        ("generate-preview", {"prompt": PROMPT + "\x00"}, "prompt"),
        ("generate-preview", {"prompt": PROMPT, "ethnicity": "\x00"}, "ethnicity"),
        ("save-preview", {"name": "a\x00b", "imageBase64": _b64(jpeg_bytes())}, "name"),
        ("save-preview", {"name": "ok", "imageBase64": _b64(jpeg_bytes()), "generationPrompt": "\x00"},
         "generationPrompt"),
        ("save-preview", {"name": "ok", "previewId": "\x00"}, "previewId"),
    ],
    ids=["project-name-nul", "description-nul", "name-too-long", "prompt-nul", "ethnicity-nul", "avatar-name-nul",
         "generation-prompt-nul", "preview-id-nul"],
)  # fmt: skip
def test_nul_bytes_and_overlong_text_are_validation_errors(alice_api, alice, project, path, body, field):
    target = path if path.startswith("/") else url(project, path)
    response = alice_api.post(target, body, format="json")
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert list(error["details"]) == [field]
    assert_nothing_written(alice)


def test_lone_surrogates_are_validation_errors(alice_api, alice, project):
    raw = json.dumps({"name": "x\ud800y"})  # JSON can carry a lone surrogate that UTF-8 cannot store
    response = alice_api.post("/api/avatar-creator/projects", raw, content_type="application/json")
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert list(error["details"]) == ["name"]
    assert Project.objects.count() == 1


@pytest.mark.parametrize(
    "credentials",
    [{"username": "a\x00b", "password": "pw"}, {"username": "alice", "password": "p\x00w"}],
    ids=["username", "password"],
)
@pytest.mark.parametrize("endpoint", ["register", "token"])
def test_nul_bytes_in_credentials_are_validation_errors(anon, alice, endpoint, credentials):
    response = anon.post(f"/api/auth/{endpoint}", credentials, format="json")
    assert_error(response, 400, "VALIDATION_ERROR")
    assert CreditAccount.objects.count() == 1


# Odd headers and query strings


@pytest.mark.parametrize(
    ("prefer", "status"),
    [
        ("respond-async, wait=10", 202),
        ("wait=10, respond-async", 202),
        ("RESPOND-ASYNC", 202),
        ("respond-async; foo=bar", 202),
        ("respond-asynchronously", 200),
        ("return=minimal", 200),
        ("", 200),
        (",,,;;;===", 200),
        ("wait=" + "9" * 5000, 200),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_prefer_header_variants(alice_api, project, prefer, status):
    response = alice_api.post(url(project, "generate-preview"), {"prompt": PROMPT}, format="json", HTTP_PREFER=prefer)
    assert response.status_code == status
    preview = Preview.objects.get()
    assert response.json()["preview"]["id"] == str(preview.pk)
    assert ("imageBase64" in response.json()["preview"]) is (status == 200)


def _wsgi_header(value: str) -> str:
    """What a WSGI server hands Django for a header sent as UTF-8 bytes (PEP 3333: decoded as latin-1)."""
    return value.encode("utf-8").decode("latin-1")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Token abc",
        "Basic YWxpY2U6cGFzc3dvcmQ=",
        _wsgi_header("Bearer ключ"),
        _wsgi_header("Bearer 🔑"),
        "Bearer a\x00b",
        "Bearer " + "f" * 41,
        "Bearer " + "0" * 40,
        "Bearer " + "x" * 10_000,
        "Bearer ../../etc/passwd",
        "Bearer\tabc",
    ],
    ids=["keyword-only", "keyword-space", "two-tokens", "token-keyword", "basic", "cyrillic", "emoji", "nul",
         "too-long", "unknown", "huge", "path", "tab"],
)  # fmt: skip
def test_bad_authorization_headers_answer_401(anon, alice, authorization):
    response = anon.get("/api/auth/me", HTTP_AUTHORIZATION=authorization)
    error = assert_error(response, 401, "UNAUTHENTICATED")
    assert error["message"] == "Authentication credentials are missing or invalid."
    assert response["WWW-Authenticate"]


def test_crafted_session_cookie_is_no_session(alice):
    client = Client()
    # Sent as `sessionid="abcdefgh\000ijkl"`: Django unquotes the octal escape into a NUL byte, which PostgreSQL
    # refuses in a query. It must count as no session (401 / the login page), never a 500.
    client.cookies["sessionid"] = "abcdefgh\x00ijkl"
    assert_error(client.get("/api/auth/me"), 401, "UNAUTHENTICATED")
    page = client.get("/")
    assert (page.status_code, page["Location"].split("?")[0]) == (302, "/login")
    client.cookies["sessionid"] = "../../" + "x" * 5000
    assert_error(client.get("/api/auth/me"), 401, "UNAUTHENTICATED")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("query", "with_base64"),
    [
        ("?include=base64", True),
        ("?include=base64&include=../../", False),  # the last value counts
        ("?include=../../etc/passwd", False),
        ("?include=%00", False),
        ("?include=base64%00", False),
        ("?include=" + "base64," * 1000, True),
        ("?include[]=base64", False),
    ],
)
def test_preview_include_parameter_tricks(alice_api, project, query, with_base64):
    preview_id = alice_api.post(url(project, "generate-preview"), {"prompt": PROMPT}, format="json").json()["preview"]
    response = alice_api.get(f"/api/avatar-creator/previews/{preview_id['id']}{query}")
    assert response.status_code == 200
    assert ("imageBase64" in response.json()["preview"]) is with_base64


@pytest.mark.parametrize("resource", ["previews", "projects", "avatars"])
@pytest.mark.parametrize(
    "bad_id",
    ["not-a-uuid", "-" * 36, "0" * 36, "g" * 36, "..%2F..%2Fetc%2Fpasswd", "%00", "1 OR 1=1", "%3Cscript%3E"],
)
def test_non_uuid_ids_are_not_found(alice_api, resource, bad_id):
    response = alice_api.get(f"/api/avatar-creator/{resource}/{bad_id}")
    error = assert_error(response, 404, "NOT_FOUND")
    assert "<script>" not in error["message"]


# Brute force and account enumeration


def _token(client, username: str, password: str = "wrong-password-1", **extra):
    return client.post("/api/auth/token", {"username": username, "password": password}, format="json", **extra)


def test_token_answers_are_identical_for_unknown_users_wrong_and_inactive(anon, alice, make_user):
    inactive = make_user("dormant")
    inactive.is_active = False
    inactive.save(update_fields=["is_active"])
    answers = [
        _token(anon, "alice"),  # exists, wrong password
        _token(anon, "nobody-by-this-name"),  # does not exist
        _token(anon, "ALICE", "correct-horse-battery-9"),  # another spelling of an existing name
        _token(anon, "dormant", "correct-horse-battery-9"),  # right password, but the account is disabled
    ]
    assert {(r.status_code, r.content, r.get("WWW-Authenticate")) for r in answers} == {
        (
            401,
            b'{"success":false,"error":{"code":"INVALID_CREDENTIALS",'
            b'"message":"The username or password is not correct."}}',
            None,
        )
    }


def test_register_is_throttled_and_refused_attempts_create_nothing(anon):
    codes = [
        anon.post("/api/auth/register", {"username": f"bot{i}", "password": "s3cure-enough-pass"}, format="json")
        for i in range(12)
    ]
    assert [r.status_code for r in codes] == [201] * 10 + [429, 429]
    error = assert_error(codes[-1], 429, "RATE_LIMIT_EXCEEDED")
    assert error["details"]["retryAfter"] == int(codes[-1]["Retry-After"]) > 0
    assert CreditAccount.objects.count() == 10


def test_throttle_is_not_dodged_by_a_forged_x_forwarded_for(anon, alice):
    codes = [_token(anon, "alice", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(12)]
    assert codes == [401] * 10 + [429, 429]


def test_throttle_budget_is_shared_by_every_password_form(anon, alice):
    """API token, browsable-API login and the browser login page spend one budget per address."""
    browser = Client()
    for _ in range(4):
        assert _token(anon, "alice").status_code == 401
    for _ in range(3):
        response = browser.post("/api-auth/login/", {"username": "alice", "password": "wrong-password-1"})
        assert response.status_code == 200
    for _ in range(3):
        response = browser.post("/login", {"username": "alice", "password": "wrong-password-1"})
        assert response.status_code in (200, 422)

    # The eleventh attempt is refused everywhere, even with the right password, which is never checked.
    assert _token(anon, "alice", "correct-horse-battery-9").status_code == 429
    refused = browser.post("/api-auth/login/", {"username": "alice", "password": "correct-horse-battery-9"})
    assert (refused.status_code, int(refused["Retry-After"]) > 0) == (429, True)
    assert "Too many sign-in attempts" in refused.content.decode()
    assert "_auth_user_id" not in browser.session
    page = browser.post("/login", {"username": "alice", "password": "correct-horse-battery-9"})
    assert page.status_code == 429
    assert "_auth_user_id" not in browser.session


def test_admin_login_is_throttled(admin_user):
    client = Client()
    for _ in range(10):
        client.post("/admin/login/", {"username": "admin", "password": "wrong-password-1"})
    response = client.post("/admin/login/?next=/admin/", {"username": "admin", "password": "password"})
    assert "Too many sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def _normalised_page(response, username: str) -> str:
    """The page without what legitimately differs between two answers: the CSRF token and the echoed name."""
    html = re.sub(r"\b[A-Za-z0-9]{64}\b", "CSRF-TOKEN", response.content.decode())  # masked, new per answer
    return html.replace(username, "USERNAME")


@pytest.mark.parametrize("path", ["/login", "/api-auth/login/", "/admin/login/"])
def test_login_pages_do_not_reveal_whether_the_user_exists(alice, path):
    answers = []
    for username in ("alice", "nobody-by-this-name"):
        response = Client().post(path, {"username": username, "password": "wrong-password-1"})
        answers.append((response.status_code, _normalised_page(response, username)))
    assert answers[0] == answers[1]
    assert answers[0][0] != 302


def test_register_says_a_name_is_taken(anon, alice):
    """Registration must say a name is taken for people to pick another: an accepted, throttled disclosure."""
    response = anon.post("/api/auth/register", {"username": "alice", "password": "s3cure-enough-pass"}, format="json")
    assert assert_error(response, 400, "VALIDATION_ERROR")["details"] == {"username": ["This username is taken."]}


# User text is escaped wherever it is shown


XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.mark.django_db(transaction=True)
def test_user_text_is_escaped_in_every_page(alice, alice_api, admin_client):
    project = make_project(alice, name=XSS, description=XSS)
    preview = alice_api.post(
        url(project, "generate-preview"), {"prompt": XSS, "ethnicity": XSS[:50]}, format="json"
    ).json()["preview"]
    saved = alice_api.post(url(project, "save-preview"), {"previewId": preview["id"], "name": XSS}, format="json")
    avatar_id = saved.json()["avatar"]["id"]
    owner = Client()
    owner.force_login(alice)
    pages = {
        "projects": owner.get("/"),
        "project": owner.get(f"/projects/{project.pk}"),
        "avatar": owner.get(f"/avatars/{avatar_id}"),
        "preview": owner.get(f"/projects/{project.pk}/previews/{preview['id']}/status", {"name": XSS}),
        "browsable api": owner.get(f"/api/avatar-creator/projects/{project.pk}", HTTP_ACCEPT="text/html"),
        "api login next": Client().get("/api-auth/login/", {"next": '"><script>alert(1)</script>'}),
        "admin avatars": admin_client.get("/admin/avatar_creator/avatar/"),
        "admin avatar": admin_client.get(f"/admin/avatar_creator/avatar/{avatar_id}/change/"),
        "admin projects": admin_client.get("/admin/avatar_creator/project/"),
        "admin previews": admin_client.get("/admin/avatar_creator/preview/"),
    }
    for name, response in pages.items():
        html = response.content.decode()
        assert response.status_code == 200, name
        assert "<script>alert" not in html, name
        assert "onerror=alert(1)>" not in html, name
    for name in ("projects", "project", "avatar", "admin avatars", "admin projects"):
        assert "&lt;script&gt;alert(" in pages[name].content.decode(), name
    api = alice_api.get(f"/api/avatar-creator/avatars/{avatar_id}")
    assert (api["Content-Type"], api.json()["avatar"]["name"]) == ("application/json", XSS)


# Production settings


def _production_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "LUMIKU_TEST_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="lumiku.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="avatars.example.com",
        DATABASE_URL=os.environ.get("DATABASE_URL") or "sqlite:///:memory:",
        REDIS_URL="redis://127.0.0.1:6379/0",
        AVATAR_GENERATOR="offline",
    )
    return env


def test_check_deploy_is_clean_under_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_cookies_are_secure():
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({name: getattr(s, name) for name in ["
        "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', 'SESSION_COOKIE_SAMESITE', "
        "'CSRF_COOKIE_SAMESITE', 'DEBUG', 'SECURE_SSL_REDIRECT', 'SECURE_CONTENT_TYPE_NOSNIFF', 'X_FRAME_OPTIONS']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=_production_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SAMESITE": "Lax",
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "X_FRAME_OPTIONS": "DENY",
    }


def test_production_refuses_to_start_without_a_secret_key():
    env = _production_env()
    del env["DJANGO_SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
