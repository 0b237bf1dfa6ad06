from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import LogoutView
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from avatar_creator.throttling import ThrottledAdminAuthenticationForm, ThrottledLoginView
from lumiku.errors import not_found

# Every login form shares the API's brute-force budget (avatar_creator/throttling.py).
admin.site.login_form = ThrottledAdminAuthenticationForm
browsable_api_auth = (
    [
        path("login/", ThrottledLoginView.as_view(template_name="rest_framework/login.html"), name="login"),
        path("logout/", LogoutView.as_view(), name="logout"),
    ],
    "rest_framework",
)

urlpatterns = [
    # First: Django tries the patterns in order on every request, and the API's are the hot ones (issue 13).
    path("api/", include("avatar_creator.api.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # After every API route: the rest of /api/ answers the JSON 404 envelope, under DEBUG too.
    re_path(r"^api/", not_found),
    path("api-auth/", include(browsable_api_auth)),
    path("", include("avatar_creator.ui.urls")),
]

if settings.SERVE_MEDIA:
    media_prefix = settings.MEDIA_URL.lstrip("/")
    urlpatterns.append(re_path(rf"^{media_prefix}(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}))

# Last: any other path answers the site's 404 page, under DEBUG too (lumiku/errors.py).
urlpatterns.append(re_path(r"", not_found))

handler400 = "lumiku.errors.handler400"
handler403 = "lumiku.errors.handler403"
handler404 = "lumiku.errors.handler404"
handler500 = "lumiku.errors.handler500"
