"""The browser UI. Pages are plain paths; the modal's steps live under the project or avatar they act on."""

from django.urls import path

from avatar_creator.ui import account, views

urlpatterns = [
    path("", views.projects, name="projects"),
    path("signup", views.signup, name="signup"),
    path("login", views.login, name="login"),
    path("logout", views.logout, name="logout"),
    path("account/credits", account.credits, name="credits"),
    path("account/tokens", account.tokens, name="tokens"),
    path("account/tokens/revoke-all", account.tokens_revoke_all, name="tokens-revoke-all"),
    path("account/tokens/<str:token_id>/revoke", account.token_revoke, name="token-revoke"),
    path("projects/new", views.project_create, name="project-create"),
    path("projects/<uuid:project_id>", views.project_detail, name="project-detail"),
    path("projects/<uuid:project_id>/edit", views.project_edit, name="project-edit"),
    path("projects/<uuid:project_id>/delete", views.project_delete, name="project-delete"),
    path("projects/<uuid:project_id>/avatars/new", views.avatar_new, name="avatar-new"),
    path("projects/<uuid:project_id>/previews", views.preview_create, name="preview-create"),
    path("projects/<uuid:project_id>/previews/<uuid:preview_id>/status", views.preview_status, name="preview-status"),
    path("projects/<uuid:project_id>/previews/<uuid:preview_id>/cancel", views.preview_cancel, name="preview-cancel"),
    path(
        "projects/<uuid:project_id>/previews/<uuid:preview_id>/discard", views.preview_discard, name="preview-discard"
    ),
    path(
        "projects/<uuid:project_id>/previews/<uuid:preview_id>/regenerate",
        views.preview_regenerate,
        name="preview-regenerate",
    ),
    path("projects/<uuid:project_id>/previews/<uuid:preview_id>/save", views.preview_save, name="preview-save"),
    path("projects/<uuid:project_id>/previews/<uuid:preview_id>", views.preview_open, name="preview-open"),
    path("projects/<uuid:project_id>/previews/<uuid:preview_id>/edit", views.preview_edit, name="preview-edit"),
    path("projects/<uuid:project_id>/avatars/upload", views.avatar_upload, name="avatar-upload"),
    path("avatars/<uuid:avatar_id>", views.avatar_detail, name="avatar-detail"),
    path("avatars/<uuid:avatar_id>/rename", views.avatar_rename, name="avatar-rename"),
    path("avatars/<uuid:avatar_id>/delete", views.avatar_delete, name="avatar-delete"),
    path("avatars/<uuid:avatar_id>/download", views.avatar_download, name="avatar-download"),
]
