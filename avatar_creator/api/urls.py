from django.urls import re_path
from rest_framework.routers import SimpleRouter

from avatar_creator.api import streams, views

app_name = "api"

# The contract's paths work with and without a trailing slash.
router = SimpleRouter()
router.trailing_slash = "/?"
# Django tries the patterns in order on every request: the hottest first (the status poll, then the avatar list).
router.register("avatar-creator/previews", views.PreviewViewSet, basename="preview")
router.register("avatar-creator/projects", views.ProjectViewSet, basename="project")
router.register("avatar-creator/avatars", views.AvatarViewSet, basename="avatar")

urlpatterns = [
    *router.urls,
    re_path(r"^auth/register/?$", views.RegisterView.as_view(), name="register"),
    re_path(r"^auth/token/?$", views.TokenView.as_view(), name="token"),
    re_path(r"^auth/me/?$", views.MeView.as_view(), name="me"),
    re_path(r"^auth/me/credits/?$", views.MeCreditsView.as_view(), name="me-credits"),
    re_path(r"^auth/me/usage/?$", views.MeUsageView.as_view(), name="me-usage"),
    re_path(r"^auth/logout/?$", views.LogoutView.as_view(), name="logout"),
    re_path(r"^auth/logout-all/?$", views.LogoutAllView.as_view(), name="logout-all"),
    re_path(r"^auth/webhook-secret/?$", views.WebhookSecretView.as_view(), name="webhook-secret"),
    re_path(
        r"^avatar-creator/previews/(?P<pk>[0-9a-fA-F-]{36})/events/?$", streams.preview_events, name="preview-events"
    ),
    re_path(r"^avatar-creator/presets/?$", views.PresetListView.as_view(), name="presets"),
]
