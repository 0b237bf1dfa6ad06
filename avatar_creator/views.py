"""Server-rendered pages and the htmx partials of the avatar modal.

Thin like the API's viewsets: validate with a form, call one service (or selector), render. The modal is an empty
<dialog> on every page; each step is a fragment swapped into #modal-content, and an empty fragment closes it.
Page fragments that change elsewhere (the credits badge, a card, the grid) travel out of band (hx-swap-oob).
"""

import math
from functools import wraps
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import password_validation
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from avatar_creator import selectors, services
from avatar_creator.errors import InsufficientCredits, NotFound, ServiceError, ValidationFailed
from avatar_creator.forms import AvatarRenameForm, LoginForm, PreviewForm, ProjectForm, SaveForm, SignupForm
from avatar_creator.models import PreviewStatus
from avatar_creator.throttling import AuthThrottle

PARTIALS = "avatar_creator/partials/"
# Unprocessable Content: the form is re-rendered with its errors (htmx is configured to swap 4xx answers).
INVALID = 422


def ui_view(view):
    """Sign-in required, and a row that is not the user's answers 404 (never 403: existence stays private).

    An htmx request from an expired session is sent to the login page as a whole page, not swapped into the modal.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            login = redirect_to_login(_current_path(request))
            return HttpResponseClientRedirect(login.url) if request.htmx else login
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            if request.htmx:
                context = {"title": "Not found", "message": f"{exc.message} It may have been deleted."}
                return render(request, PARTIALS + "message.html", context, status=404)
            raise Http404(exc.message) from None

    return wrapper


def _current_path(request) -> str:
    """The page the person is looking at: the htmx request's page, or the request itself."""
    if request.htmx and request.htmx.current_url_abs_path:
        return request.htmx.current_url_abs_path
    return request.get_full_path()


def _modal(request, partial: str, context: dict, *, status: int = 200) -> HttpResponse:
    """A modal step: the fragment for htmx, or the same fragment on a page of its own without JavaScript."""
    if request.htmx:
        return render(request, PARTIALS + partial, context, status=status)
    return render(request, "avatar_creator/modal_page.html", {**context, "partial": PARTIALS + partial}, status=status)


def _redirect(request, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _closed(request, template: str | None = None, context: dict | None = None, *, fallback: str) -> HttpResponse:
    """Close the modal: an empty main fragment (plus any out-of-band updates), or a redirect without htmx."""
    if not request.htmx:
        return redirect(fallback)
    if template is None:
        return HttpResponse("")
    return render(request, PARTIALS + template, context or {})


def _form_status(form) -> int:
    return INVALID if form.is_bound and form.errors else 200


def _posted(request):
    """The form data of a POST (even an empty one, which must fail validation), None for a GET."""
    return request.POST if request.method == "POST" else None


# Accounts


def auth_throttled(view):
    """Login and signup attempts share the API's per-address limit (brute force protection)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        throttle = AuthThrottle()
        if request.method == "POST" and not throttle.allow_request(request, None):
            wait = math.ceil(throttle.wait() or 1)
            context = {"title": "Too many attempts", "message": f"Wait {_wait_words(wait)} and try again."}
            response = _modal(request, "message.html", context, status=429)
            response["Retry-After"] = str(wait)
            return response
        return view(request, *args, **kwargs)

    return wrapper


@auth_throttled
@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("projects")
    form = SignupForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user, _ = services.user_register(username=data["username"], password=data["password"], email=data["email"])
        except ValidationFailed as exc:
            for field, messages in (exc.details or {}).items():
                for message in messages:
                    form.add_error(field if field in form.fields else None, message)
        else:
            auth.login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
            return redirect("projects")
    context = {"form": form, "password_help": password_validation.password_validators_help_text_html()}
    return render(request, "registration/signup.html", context, status=_form_status(form))


login = auth_throttled(
    auth_views.LoginView.as_view(
        template_name="registration/login.html", authentication_form=LoginForm, redirect_authenticated_user=True
    )
)
logout = auth_views.LogoutView.as_view()


# Projects


@ui_view
@require_GET
def projects(request):
    projects = selectors.project_list_for_user(user=request.user)
    return render(request, "avatar_creator/projects.html", {"projects": projects})


@ui_view
@require_http_methods(["GET", "POST"])
def project_create(request):
    form = ProjectForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        project = services.project_create(owner=request.user, **form.cleaned_data)
        return _redirect(request, reverse("project-detail", kwargs={"project_id": project.pk}))
    context = {"form": form, "title": "New project", "action": reverse("project-create"), "submit": "Create project"}
    return _modal(request, "project_form.html", context, status=_form_status(form))


@ui_view
@require_GET
def project_detail(request, project_id):
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    avatars = list(selectors.avatar_list_for_project(project=project))
    return render(request, "avatar_creator/project_detail.html", {"project": project, "avatars": avatars})


@ui_view
@require_http_methods(["GET", "POST"])
def project_edit(request, project_id):
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    initial = {"name": project.name, "description": project.description}
    form = ProjectForm(_posted(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        services.project_update(project=project, **form.cleaned_data)
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        context = {"project": project, "on_detail": _on_project_page(request, project), "toast": "Project renamed."}
        return _closed(request, "project_updated.html", context, fallback=_project_url(project))
    action = reverse("project-edit", kwargs={"project_id": project.pk})
    context = {"form": form, "title": "Rename project", "action": action, "submit": "Save changes"}
    return _modal(request, "project_form.html", context, status=_form_status(form))


@ui_view
@require_http_methods(["GET", "POST"])
def project_delete(request, project_id):
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    if request.method == "GET":
        return _modal(request, "project_delete.html", {"project": project})
    on_detail = _on_project_page(request, project)
    removed = services.project_delete(project=project)
    if on_detail:
        return _redirect(request, reverse("projects"))
    toast = f"Project deleted with {removed} avatar{'s' if removed != 1 else ''}."
    context = {"projects": selectors.project_list_for_user(user=request.user), "toast": toast}
    return _closed(request, "project_deleted.html", context, fallback=reverse("projects"))


def _project_url(project) -> str:
    return reverse("project-detail", kwargs={"project_id": project.pk})


def _on_project_page(request, project) -> bool:
    """Whether the htmx request comes from the project's own page (its header updates) or the list (its card)."""
    return bool(request.htmx) and urlsplit(_current_path(request)).path == _project_url(project)


# Avatars


@ui_view
@require_GET
def avatar_detail(request, avatar_id):
    avatar = selectors.avatar_get_for_user(user=request.user, avatar_id=avatar_id)
    form = AvatarRenameForm(initial={"name": avatar.name})
    return _modal(request, "avatar_lightbox.html", {"avatar": avatar, "form": form})


@ui_view
@require_POST
def avatar_rename(request, avatar_id):
    avatar = selectors.avatar_get_for_user(user=request.user, avatar_id=avatar_id)
    form = AvatarRenameForm(request.POST)
    if not form.is_valid():
        return _modal(request, "avatar_lightbox.html", {"avatar": avatar, "form": form}, status=INVALID)
    services.avatar_rename(avatar=avatar, name=form.cleaned_data["name"])
    if not request.htmx:
        return redirect(_project_url(avatar.project))
    context = {"avatar": avatar, "form": AvatarRenameForm(initial={"name": avatar.name}), "note": "Renamed."}
    return render(request, PARTIALS + "avatar_renamed.html", context)


@ui_view
@require_http_methods(["GET", "POST"])
def avatar_delete(request, avatar_id):
    avatar = selectors.avatar_get_for_user(user=request.user, avatar_id=avatar_id)
    if request.method == "GET":
        return _modal(request, "avatar_delete.html", {"avatar": avatar})
    project = avatar.project
    services.avatar_delete(avatar=avatar)
    context = {
        "avatar_id": avatar_id,
        "project": project,
        "has_avatars": project.avatars.exists(),
        "toast": "Avatar deleted.",
    }
    return _closed(request, "avatar_deleted.html", context, fallback=_project_url(project))


@ui_view
@require_GET
def avatar_download(request, avatar_id):
    avatar = selectors.avatar_get_for_user(user=request.user, avatar_id=avatar_id)
    extension = avatar.image.name.rsplit(".", 1)[-1]
    # The file name comes from the avatar's name, reduced to safe characters.
    filename = f"{slugify(avatar.name) or 'avatar'}.{extension}"
    return FileResponse(avatar.image.open("rb"), as_attachment=True, filename=filename)


# The avatar modal: phase 1 (form) -> waiting -> phase 2 (preview) -> save, regenerate or cancel.


@ui_view
@require_GET
def avatar_new(request, project_id):
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    return _modal(request, "preview_form.html", {"project": project, "form": PreviewForm()})


@ui_view
@require_POST
def preview_create(request, project_id):
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    form = PreviewForm(request.POST)
    if not form.is_valid():
        return _preview_form(request, project, form, status=INVALID)
    try:
        preview = services.preview_request(user=request.user, project=project, **form.persona())
    except ServiceError as exc:
        return _preview_form(request, project, form, error=service_error_words(exc), status=exc.status)
    return _preview_step(request, project, preview)


@ui_view
@require_GET
def preview_status(request, project_id, preview_id):
    project, preview = _project_preview(request, project_id, preview_id)
    name = request.GET.get("name", "")[:100]
    if not preview.is_finished and request.htmx:
        # Only the progress line changes while waiting, so focus (on Cancel, say) is not lost every second.
        return render(request, PARTIALS + "preview_progress.html", _waiting_context(project, preview, name))
    response = _preview_step(request, project, preview, name=name)
    if request.htmx:
        # The poller targets the progress line; the finished step replaces the whole modal and ends the polling.
        retarget(response, "#modal-content")
        reswap(response, "innerHTML")
    return response


@ui_view
@require_POST
def preview_cancel(request, project_id, preview_id):
    """Stop waiting (or leave the preview) and go back to the form, filled with what was typed."""
    project, preview = _project_preview(request, project_id, preview_id)
    was_waiting = not preview.is_finished
    # Discard rather than only cancel: a preview that finished as Cancel was pressed must not linger either.
    services.preview_discard(preview=preview)
    if was_waiting:
        note = "Preview canceled. Nothing was charged."
    else:
        note = "The preview was discarded. Change the description and generate a new one."
    return _preview_form(request, project, PreviewForm.for_preview(preview), note=note)


@ui_view
@require_POST
def preview_discard(request, project_id, preview_id):
    """Cancel in phase 2 (and Esc): the preview is thrown away and the modal closes."""
    project, preview = _project_preview(request, project_id, preview_id)
    services.preview_discard(preview=preview)
    return _closed(request, fallback=_project_url(project))


@ui_view
@require_POST
def preview_regenerate(request, project_id, preview_id):
    """The same fields with a new seed; the old preview is discarded first."""
    project, old = _project_preview(request, project_id, preview_id)
    name = request.POST.get("name", "")[:100]
    services.preview_discard(preview=old)
    fields = {field: getattr(old, field) for field in ("prompt", "gender", "age_range", "style", "ethnicity")}
    try:
        preview = services.preview_request(
            user=request.user, project=project, **fields, body_type=old.body_type, seed=None
        )
    except ServiceError as exc:
        return _preview_form(request, project, PreviewForm.for_preview(old), error=service_error_words(exc),
                             status=exc.status)  # fmt: skip
    return _preview_step(request, project, preview, name=name)


@ui_view
@require_POST
def preview_save(request, project_id, preview_id):
    project, preview = _project_preview(request, project_id, preview_id)
    form = SaveForm(request.POST)
    if not form.is_valid():
        return _preview_result(request, project, preview, form=form, status=INVALID)
    try:
        avatar, created = services.preview_save(
            user=request.user, project=project, preview_id=preview.pk, name=form.cleaned_data["name"] or None
        )
    except InsufficientCredits as exc:
        return _preview_result(request, project, preview, form=form, error=service_error_words(exc),
                               status=exc.status)  # fmt: skip
    except ServiceError as exc:
        # Expired or otherwise gone: back to the form with the fields, to generate a new one.
        return _preview_form(request, project, PreviewForm.for_preview(preview), error=service_error_words(exc),
                             status=exc.status)  # fmt: skip
    context = {
        "avatar": avatar,
        "created": created,
        "project": project,
        "has_avatars": True,
        "toast": f"Saved “{avatar.name}”." if created else f"“{avatar.name}” was already saved.",
    }
    return _closed(request, "avatar_saved.html", context, fallback=_project_url(project))


def _project_preview(request, project_id, preview_id):
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    preview = selectors.preview_get_for_user(user=request.user, preview_id=preview_id)
    if preview.project_id != project.pk:
        raise NotFound("Preview not found.")
    return project, preview


def _preview_step(request, project, preview, *, name: str = "") -> HttpResponse:
    """What the modal shows for a preview in its current state."""
    if not preview.is_finished:
        return _modal(request, "preview_waiting.html", _waiting_context(project, preview, name))
    if preview.status == PreviewStatus.SUCCEEDED:
        return _preview_result(request, project, preview, form=SaveForm(initial={"name": name}))
    form = PreviewForm.for_preview(preview)
    if preview.status == PreviewStatus.FAILED:
        return _preview_form(request, project, form, error=preview_error_words(preview))
    return _preview_form(request, project, form, note=f"That preview was {preview.status}. Nothing was charged.")


def _waiting_context(project, preview, name: str) -> dict:
    status_url = reverse("preview-status", kwargs={"project_id": project.pk, "preview_id": preview.pk})
    if name:
        status_url += "?" + urlencode({"name": name})
    return {
        "project": project,
        "preview": preview,
        "status_url": status_url,
        "elapsed": max(0, int((timezone.now() - preview.created_at).total_seconds())),
        # A retry in progress (model loading, rate limit upstream) keeps its reason on the queued preview.
        "retrying": preview_error_words(preview) if preview.error_code else None,
    }


def _preview_form(request, project, form, *, error=None, note: str = "", status: int = 200) -> HttpResponse:
    context = {"project": project, "form": form, "error": error, "note": note}
    return _modal(request, "preview_form.html", context, status=status)


def _preview_result(request, project, preview, *, form, error=None, status: int = 200) -> HttpResponse:
    context = {"project": project, "preview": preview, "form": form, "error": error}
    return _modal(request, "preview_result.html", context, status=status)


# Errors in plain words. Previews are free, so every generation error ends by saying nothing was charged.

_NOTHING_CHARGED = "Nothing was charged."


def _wait_words(seconds) -> str:
    if not seconds:
        return "a minute"
    seconds = math.ceil(float(seconds))
    return f"{seconds} s" if seconds < 120 else f"{math.ceil(seconds / 60)} min"


def error_words(code: str, *, retry_after=None, message: str = "") -> dict:
    """A title and a sentence a person can act on, for an error code from a service or a failed preview."""
    wait = _wait_words(retry_after)
    words = {
        "MODEL_LOADING": ("The model is warming up", f"Try again in {wait}. {_NOTHING_CHARGED}"),
        "RATE_LIMIT_EXCEEDED": ("Too many previews right now", f"Try again in {wait}. {_NOTHING_CHARGED}"),
        "GENERATOR_AUTH_FAILED": (
            "The image service refused this server's key",
            f"No image was made. The administrator needs to check HUGGINGFACE_API_KEY. {_NOTHING_CHARGED}",
        ),
        "GENERATION_FAILED": ("Generation failed", f"The image could not be made. Try again. {_NOTHING_CHARGED}"),
        "GENERATION_TIMEOUT": ("Generation took too long", f"Try again. {_NOTHING_CHARGED}"),
        "GENERATOR_NOT_CONFIGURED": (
            "Image generation is not set up",
            f"The administrator needs to configure the image generator. {_NOTHING_CHARGED}",
        ),
        "QUEUE_UNAVAILABLE": ("The generation queue is unavailable", f"Try again in a moment. {_NOTHING_CHARGED}"),
        "PREVIEW_NOT_AVAILABLE": ("This preview can no longer be saved", "Generate a new one. Nothing was charged."),
    }
    title, sentence = words.get(code, ("Something went wrong", message or "Try again."))
    return {"code": code, "title": title, "message": sentence}


def preview_error_words(preview) -> dict:
    return error_words(preview.error_code, retry_after=preview.retry_after, message=preview.error_message)


def service_error_words(exc: ServiceError) -> dict:
    details = exc.details or {}
    if isinstance(exc, InsufficientCredits):
        required, balance = details.get("required"), details.get("balance")
        return {
            "code": exc.code,
            "title": "Not enough credits",
            "message": f"Saving costs {required} credits and you have {balance}. Nothing was charged.",
        }
    return error_words(exc.code, retry_after=details.get("retryAfter"), message=exc.message)
