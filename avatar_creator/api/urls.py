from django.urls import re_path
from rest_framework.routers import SimpleRouter

from avatar_creator.api import views

app_name = "api"

# The contract's paths work with and without a trailing slash.
router = SimpleRouter()
router.trailing_slash = "/?"
router.register("avatar-creator/projects", views.ProjectViewSet, basename="project")
router.register("avatar-creator/avatars", views.AvatarViewSet, basename="avatar")
router.register("avatar-creator/previews", views.PreviewViewSet, basename="preview")

urlpatterns = [
    re_path(r"^auth/register/?$", views.RegisterView.as_view(), name="register"),
    re_path(r"^auth/token/?$", views.TokenView.as_view(), name="token"),
    re_path(r"^auth/me/?$", views.MeView.as_view(), name="me"),
    *router.urls,
]
