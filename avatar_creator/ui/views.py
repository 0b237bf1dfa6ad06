"""Server-rendered pages and the htmx partials of the avatar modal.

Thin like the API's viewsets: validate with a form, call one service (or selector), render. The modal is an empty
<dialog> on every page; each step is a fragment swapped into #modal-content, and an empty fragment closes it.
Page fragments that change elsewhere (the credits badge, a card, the grid) travel out of band (hx-swap-oob).
"""

from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import password_validation
from django.contrib.auth import views as auth_views
from django.http import FileResponse, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget

from avatar_creator import selectors, services
from avatar_creator.errors import InsufficientCredits, NotFound, ServiceError, ValidationFailed
from avatar_creator.models import PreviewStatus
from avatar_creator.prompts import NAME_MAX_CHARS, Persona
from avatar_creator.ui.forms import AvatarRenameForm, LoginForm, PreviewForm, ProjectForm, SaveForm, SignupForm
from avatar_creator.ui.messages import preview_error_words, service_error_words
from avatar_creator.ui.responses import (
    INVALID,
    PARTIALS,
    auth_throttled,
    client_redirect,
    closed,
    current_path,
    form_status,
    modal,
    posted,
    ui_view,
)

# Accounts


@auth_throttled
@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("projects")
    form = SignupForm(posted(request))
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
    return render(request, "registration/signup.html", context, status=form_status(form))


login = auth_throttled(
    auth_views.LoginView.as_view(
        template_name="registration/login.html", authentication_form=LoginForm, redirect_authenticated_user=True
    )
)


class LogoutView(auth_views.LogoutView):
    """Log out, and say so on the page that follows."""

    def post(self, request, *args, **kwargs):
        was_signed_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_signed_in:
            messages.info(request, "You are signed out. See you soon.")
        return response


logout = LogoutView.as_view()


# Projects


@ui_view
@require_GET
def projects(request):
    projects = selectors.project_list_for_user(user=request.user)
    return render(request, "avatar_creator/projects.html", {"projects": projects})


@ui_view
@require_http_methods(["GET", "POST"])
def project_create(request):
    form = ProjectForm(posted(request))
    if request.method == "POST" and form.is_valid():
        project = services.project_create(owner=request.user, **form.cleaned_data)
        return client_redirect(request, reverse("project-detail", kwargs={"project_id": project.pk}))
    context = {"form": form, "title": "New project", "action": reverse("project-create"), "submit": "Create project"}
    return modal(request, "project_form.html", context, status=form_status(form))


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
    form = ProjectForm(posted(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        services.project_update(project=project, **form.cleaned_data)
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        context = {"project": project, "on_detail": _on_project_page(request, project), "toast": "Project renamed."}
        return closed(request, "project_updated.html", context, fallback=_project_url(project))
    action = reverse("project-edit", kwargs={"project_id": project.pk})
    context = {"form": form, "title": "Rename project", "action": action, "submit": "Save changes"}
    return modal(request, "project_form.html", context, status=form_status(form))


@ui_view
@require_http_methods(["GET", "POST"])
def project_delete(request, project_id):
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    if request.method == "GET":
        return modal(request, "project_delete.html", {"project": project})
    on_detail = _on_project_page(request, project)
    removed = services.project_delete(project=project)
    toast = _project_deleted_words(project.name, removed)
    if on_detail:
        messages.success(request, toast)
        return client_redirect(request, reverse("projects"))
    context = {"projects": selectors.project_list_for_user(user=request.user), "toast": toast}
    return closed(request, "project_deleted.html", context, fallback=reverse("projects"))


def _project_deleted_words(name: str, avatars: int) -> str:
    if not avatars:
        return f"Project “{name}” deleted."
    return f"Project “{name}” and its {avatars} avatar{'s' if avatars != 1 else ''} deleted."


def _project_url(project) -> str:
    return reverse("project-detail", kwargs={"project_id": project.pk})


def _on_project_page(request, project) -> bool:
    """Whether the htmx request comes from the project's own page (its header updates) or the list (its card)."""
    return bool(request.htmx) and urlsplit(current_path(request)).path == _project_url(project)


# Avatars


@ui_view
@require_GET
def avatar_detail(request, avatar_id):
    avatar = selectors.avatar_get_for_user(user=request.user, avatar_id=avatar_id)
    form = AvatarRenameForm(initial={"name": avatar.name})
    return modal(request, "avatar_lightbox.html", {"avatar": avatar, "form": form})


@ui_view
@require_POST
def avatar_rename(request, avatar_id):
    avatar = selectors.avatar_get_for_user(user=request.user, avatar_id=avatar_id)
    form = AvatarRenameForm(request.POST)
    if not form.is_valid():
        return modal(request, "avatar_lightbox.html", {"avatar": avatar, "form": form}, status=INVALID)
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
        return modal(request, "avatar_delete.html", {"avatar": avatar})
    project = avatar.project
    services.avatar_delete(avatar=avatar)
    context = {
        "avatar_id": avatar_id,
        "project": project,
        "has_avatars": project.avatars.exists(),
        "toast": "Avatar deleted.",
    }
    return closed(request, "avatar_deleted.html", context, fallback=_project_url(project))


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
    return modal(request, "preview_form.html", {"project": project, "form": PreviewForm()})


@ui_view
@require_POST
def preview_create(request, project_id):
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    form = PreviewForm(request.POST)
    if not form.is_valid():
        return _preview_form(request, project, form, status=INVALID)
    try:
        preview = services.preview_request(user=request.user, project=project, persona=form.persona())
    except ServiceError as exc:
        return _preview_form(request, project, form, error=service_error_words(exc), status=exc.status)
    return _preview_step(request, project, preview)


@ui_view
@require_GET
def preview_status(request, project_id, preview_id):
    project, preview = _project_preview(request, project_id, preview_id)
    name = request.GET.get("name", "")[:NAME_MAX_CHARS]
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
    return closed(request, fallback=_project_url(project))


@ui_view
@require_POST
def preview_regenerate(request, project_id, preview_id):
    """The same fields with a new seed; the old preview is discarded first."""
    project, old = _project_preview(request, project_id, preview_id)
    name = request.POST.get("name", "")[:NAME_MAX_CHARS]
    services.preview_discard(preview=old)
    try:
        preview = services.preview_request(user=request.user, project=project, persona=Persona.of(old))
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
    return closed(request, "avatar_saved.html", context, fallback=_project_url(project))


def _project_preview(request, project_id, preview_id):
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    preview = selectors.preview_get_for_user(user=request.user, preview_id=preview_id)
    if preview.project_id != project.pk:
        raise NotFound("Preview not found.")
    return project, preview


def _preview_step(request, project, preview, *, name: str = "") -> HttpResponse:
    """What the modal shows for a preview in its current state."""
    if not preview.is_finished:
        return modal(request, "preview_waiting.html", _waiting_context(project, preview, name))
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
    return modal(request, "preview_form.html", context, status=status)


def _preview_result(request, project, preview, *, form, error=None, status: int = 200) -> HttpResponse:
    context = {"project": project, "preview": preview, "form": form, "error": error}
    return modal(request, "preview_result.html", context, status=status)
