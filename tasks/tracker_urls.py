"""Routes of the customer tracker, mounted at /t/."""

from django.urls import path, re_path

from . import tracker_views

urlpatterns = [
    re_path(r"^theme/(?P<colour>[0-9a-f]{6})\.css$", tracker_views.tracker_theme, name="tracker-theme"),
    path("<str:token>", tracker_views.tracker_page, name="tracker"),
    path("<str:token>/status.json", tracker_views.tracker_status, name="tracker-status"),
]
