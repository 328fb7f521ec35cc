from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from tasks.views import attachment_file

from .api import MeView
from .oauth import TokenView
from .views import public_media

handler404 = "taskhub.views.not_found"
handler500 = "taskhub.views.server_error"

admin.site.site_header = "TaskHub dispatch"
admin.site.site_title = "TaskHub"
admin.site.index_title = "Dispatch"

api_patterns = [
    path("me", MeView.as_view(), name="me"),
    path("oauth2/token", TokenView.as_view(), name="oauth2-token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("webhooks/", include("webhooks.urls")),
    path("", include("tasks.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("files/<str:token>", attachment_file, name="attachment-file"),
    path("t/", include("tasks.tracker_urls")),
    path("hooks/", include("notifications.urls")),
    path("media/<path:path>", public_media, name="public-media"),
]
