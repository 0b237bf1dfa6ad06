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
from avatar_creator.models import PresetCategory, PreviewStatus
from avatar_creator.prompts import NAME_MAX_CHARS, Persona
from avatar_creator.ui.forms import (
    AvatarRenameForm,
    LoginForm,
    PreviewForm,
    ProjectForm,
    SaveForm,
    SignupForm,
    UploadForm,
    VariationsForm,
)
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

# How many recent previews the modal's history strip shows.
HISTORY_SIZE = 8

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
            # The browser signs in with a session: no API token is made that nobody would ever see.
            user, _ = services.user_register(
                username=data["username"], password=data["password"], email=data["email"], issue_token=False
            )
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


@require_GET
def projects(request):
    """`/`: the user's projects; a visitor (no session at all) gets the landing page instead of a bare login form.
    A session cookie without a user still goes to the login page, which says that the session ended."""
    if not request.user.is_authenticated and settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return _landing(request)
    return _project_list(request)


@ui_view
def _project_list(request):
    projects = selectors.project_list_with_covers(user=request.user)
    return render(request, "avatar_creator/projects.html", {"projects": projects})


# How many preset thumbnails the landing page shows.
LANDING_PRESETS = 8


def _landing(request):
    presets = [preset for preset in selectors.preset_list() if preset.thumbnail_url][:LANDING_PRESETS]
    context = {"presets": presets, "signup_credits": settings.AVATAR_SIGNUP_CREDITS}
    return render(request, "avatar_creator/landing.html", context)


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
    recent = _history(request, project)
    return render(request, "avatar_creator/project_detail.html", {"project": project, "avatars": avatars,
                                                                  "recent_previews": recent})  # fmt: skip


@ui_view
@require_http_methods(["GET", "POST"])
def project_edit(request, project_id):
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    initial = {"name": project.name, "description": project.description}
    form = ProjectForm(posted(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        services.project_update(project=project, **form.cleaned_data)
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        selectors.projects_with_covers(projects=[project])
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
    context = {"projects": selectors.project_list_with_covers(user=request.user), "toast": toast}
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
@require_http_methods(["GET", "POST"])
def avatar_upload(request, project_id):
    """An own photo into the project: picked or dropped, shown before sending, checked and re-encoded by the
    service (images.py)."""
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    form = UploadForm(posted(request), request.FILES if request.method == "POST" else None)
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            avatar = services.avatar_upload(user=request.user, project=project, name=form.cleaned_data["name"],
                                            image=form.cleaned_data["image"], persona=form.persona())  # fmt: skip
        except ServiceError as exc:
            error = service_error_words(exc)
        else:
            context = {"avatar": avatar, "avatars": [avatar], "created": True, "project": project,
                       "has_avatars": True, "toast": f"Uploaded “{avatar.name}”."}  # fmt: skip
            return closed(request, "avatar_saved.html", context, fallback=_project_url(project))
    context = {"project": project, "form": form, "error": error, "upload_cost": settings.AVATAR_UPLOAD_COST}
    status = INVALID if error or form_status(form) == INVALID else 200
    return modal(request, "avatar_upload.html", context, status=status)


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
    """Phase 1: the form, empty with the preset gallery, or filled from a preset (`?preset=`) or from one of the
    user's avatars (`?from=`, "More like this")."""
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    if request.GET.get("preset"):
        preset = selectors.preset_get(preset_id=request.GET["preset"])
        return _preview_form(request, project, PreviewForm.for_preview(preset), note=f"Started from “{preset.name}”.")
    if request.GET.get("from"):
        avatar = selectors.avatar_get_for_user(user=request.user, avatar_id=request.GET["from"])
        note = f"More like “{avatar.name}”: change what you like and generate."
        return _preview_form(request, project, PreviewForm.for_preview(avatar), note=note)
    return _preview_form(request, project, PreviewForm(), presets=True)


@ui_view
@require_POST
def preview_create(request, project_id):
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    form, variations = PreviewForm(request.POST), VariationsForm(request.POST)
    if not (form.is_valid() and variations.is_valid()):
        return _preview_form(request, project, form, variations=variations, status=INVALID)
    count = variations.cleaned_data["count"]
    try:
        previews = services.previews_request(user=request.user, project=project, persona=form.persona(), count=count)
    except ServiceError as exc:
        return _preview_form(request, project, form, variations=variations, error=service_error_words(exc),
                             status=exc.status)  # fmt: skip
    return _preview_step(request, project, previews[0])


@ui_view
@require_GET
def preview_open(request, project_id, preview_id):
    """Reopen one preview from the history, to look at it again and save it."""
    project, preview = _project_preview(request, project_id, preview_id)
    if preview.effective_status != PreviewStatus.SUCCEEDED:
        note = "That preview has expired. Generate a new one from its description."
        return _preview_form(request, project, PreviewForm.for_preview(preview), note=note)
    return _preview_result(request, project, preview, form=SaveForm())


@ui_view
@require_GET
def preview_edit(request, project_id, preview_id):
    """Change the description: the form filled from the preview, which stays in the history (nothing is thrown
    away before a new preview exists)."""
    project, preview = _project_preview(request, project_id, preview_id)
    count = len(selectors.preview_batch_for_user(user=request.user, preview=preview))
    variations = VariationsForm(initial={"count": count})
    note = "Your preview stays under Recent previews until it expires."
    return _preview_form(request, project, PreviewForm.for_preview(preview), variations=variations, note=note)


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
    _discard_batch(request, preview)
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
    _discard_batch(request, preview)
    return closed(request, fallback=_project_url(project))


def _discard_batch(request, preview) -> None:
    # Saved previews stay (preview_discard leaves them); the others of the batch go with the one on screen.
    for member in selectors.preview_batch_for_user(user=request.user, preview=preview):
        services.preview_discard(preview=member)


@ui_view
@require_POST
def preview_regenerate(request, project_id, preview_id):
    """The same fields with new seeds (as many as before). The old previews are discarded only once the new ones
    exist: when the new request is refused (rate limit, queue down), the old ones stay on screen, still savable."""
    project, old = _project_preview(request, project_id, preview_id)
    name = request.POST.get("name", "")[:NAME_MAX_CHARS]
    # The pick grid regenerates all of its batch; a single preview (also one reopened from the history), itself.
    on_screen = selectors.preview_batch_for_user(user=request.user, preview=old) if request.POST.get("grid") else [old]
    try:
        previews = services.previews_request(
            user=request.user, project=project, persona=Persona.of(old), count=len(on_screen)
        )
    except ServiceError as exc:
        if len(on_screen) == 1 and old.status == PreviewStatus.SUCCEEDED:
            return _preview_result(request, project, old, form=SaveForm(initial={"name": name}),
                                   error=service_error_words(exc), status=exc.status)  # fmt: skip
        return _preview_step(request, project, old, name=name, error=service_error_words(exc), status=exc.status)
    for member in on_screen:
        services.preview_discard(preview=member)
    return _preview_step(request, project, previews[0], name=name)


@ui_view
@require_POST
def preview_save(request, project_id, preview_id):
    """Save the preview on screen, or the ones picked in a batch's grid (`pick`), each charged."""
    project, preview = _project_preview(request, project_id, preview_id)
    form = SaveForm(request.POST)
    batch = selectors.preview_batch_for_user(user=request.user, preview=preview)
    picks = [member for member in batch if str(member.pk) in request.POST.getlist("pick")]
    grid = bool(request.POST.get("grid"))

    def again(*, error=None, status):
        if grid:
            return _preview_step(request, project, preview, form=form, error=error, status=status)
        return _preview_result(request, project, preview, form=form, error=error, status=status)

    if not form.is_valid():
        return again(status=INVALID)
    if grid and not picks:
        return again(error={"code": "VALIDATION_ERROR", "title": "Nothing picked",
                            "message": "Tick the previews to keep."}, status=INVALID)  # fmt: skip
    picks = picks if grid else [preview]
    name = form.cleaned_data["name"]
    saved, error = [], None
    for number, pick in enumerate(picks, start=1):
        try:
            saved.append(services.preview_save(user=request.user, project=project, preview_id=pick.pk,
                                               name=name, variation=(number, len(picks))))  # fmt: skip
        except ServiceError as exc:
            error = exc
            break
    if not saved:
        if isinstance(error, InsufficientCredits) or grid:
            return again(error=service_error_words(error), status=error.status)
        # Expired or otherwise gone: back to the form with the fields, to generate a new one.
        return _preview_form(request, project, PreviewForm.for_preview(preview), error=service_error_words(error),
                             status=error.status)  # fmt: skip
    avatars = [avatar for avatar, created in saved if created]
    avatar, created = saved[0]
    if len(saved) > 1:
        toast = f"Saved {len(avatars)} avatars."
    else:
        toast = f"Saved “{avatar.name}”." if created else f"“{avatar.name}” was already saved."
    if error is not None:
        toast += f" {service_error_words(error)['message']}"
    context = {
        "avatar": avatar,
        "avatars": avatars,
        "created": bool(avatars),
        "project": project,
        "has_avatars": True,
        "toast": toast,
    }
    return closed(request, "avatar_saved.html", context, fallback=_project_url(project))


def _project_preview(request, project_id, preview_id):
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    preview = selectors.preview_get_for_user(user=request.user, preview_id=preview_id)
    if preview.project_id != project.pk:
        raise NotFound("Preview not found.")
    return project, preview


def _preview_step(request, project, preview, *, name: str = "", form=None, error=None, status: int = 200
                  ) -> HttpResponse:  # fmt: skip
    """What the modal shows for a preview (and the others of its batch) in their current state: waiting while one
    is unfinished, then the preview, or the pick grid of a batch."""
    batch = selectors.preview_batch_for_user(user=request.user, preview=preview)
    unfinished = next((member for member in batch if not member.is_finished), None)
    if unfinished is not None and error is None:
        return modal(request, "preview_waiting.html", _waiting_context(project, unfinished, name, live=True))
    succeeded = [member for member in batch if member.status == PreviewStatus.SUCCEEDED]
    form = form or SaveForm(initial={"name": name})
    if len(batch) > 1 and succeeded:
        context = {"project": project, "preview": batch[0], "batch": batch, "form": form, "error": error,
                   "history": _history(request, project, exclude=batch)}  # fmt: skip
        return modal(request, "preview_pick.html", context, status=status)
    if succeeded:
        return _preview_result(request, project, succeeded[0], form=form, error=error, status=status)
    first = batch[0]
    form = PreviewForm.for_preview(first)
    if first.status == PreviewStatus.FAILED:
        return _preview_form(request, project, form, error=preview_error_words(first))
    return _preview_form(request, project, form, note=f"That preview was {first.status}. Nothing was charged.")


def _history(request, project, *, exclude=()) -> list:
    """The project's recent previews that can still be reopened and saved (the strip in the modal)."""
    recent = selectors.preview_list_for_project(user=request.user, project=project, status=PreviewStatus.SUCCEEDED)
    return list(recent.exclude(pk__in=[p.pk for p in exclude])[:HISTORY_SIZE])


def _waiting_context(project, preview, name: str, *, live: bool = False) -> dict:
    """The waiting step. `live`: the page follows the preview's event stream (static/js/app.js) and polls the
    status only if the stream fails; the status answers while polling keep polling."""
    status_url = reverse("preview-status", kwargs={"project_id": project.pk, "preview_id": preview.pk})
    if name:
        status_url += "?" + urlencode({"name": name})
    return {
        "project": project,
        "preview": preview,
        "status_url": status_url,
        "events_url": reverse("api:preview-events", kwargs={"pk": preview.pk}) if live else "",
        "elapsed": max(0, int((timezone.now() - preview.created_at).total_seconds())),
        # A retry in progress (model loading, rate limit upstream) keeps its reason on the queued preview.
        "retrying": preview_error_words(preview) if preview.error_code else None,
    }


def _preview_form(request, project, form, *, variations=None, error=None, note: str = "", status: int = 200,
                  presets: bool = False) -> HttpResponse:  # fmt: skip
    context = {"project": project, "form": form, "variations": variations or VariationsForm(), "error": error,
               "note": note, "history": _history(request, project)}  # fmt: skip
    if presets:
        context["preset_groups"] = _preset_groups()
    return modal(request, "preview_form.html", context, status=status)


def _preset_groups() -> list[tuple[str, list]]:
    """The presets by category, in the categories' order: the "Start from a preset" gallery."""
    groups = {}
    for preset in selectors.preset_list():
        groups.setdefault(preset.category, []).append(preset)
    return [(label, groups[value]) for value, label in PresetCategory.choices if value in groups]


def _preview_result(request, project, preview, *, form, error=None, status: int = 200) -> HttpResponse:
    context = {"project": project, "preview": preview, "form": form, "error": error,
               "history": _history(request, project, exclude=[preview])}  # fmt: skip
    return modal(request, "preview_result.html", context, status=status)
