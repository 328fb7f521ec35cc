"""The product's URLconf plus the bench-only baselines under /bench/."""

from django.urls import path

from taskhub.urls import handler404, handler500
from taskhub.urls import urlpatterns as product_urlpatterns

from . import baseline

__all__ = ["handler404", "handler500", "urlpatterns"]

urlpatterns = [
    path("bench/bare-create", baseline.BareCreateView.as_view(), name="bench-bare-create"),
    path("bench/bare-get/<str:token>", baseline.bare_get, name="bench-bare-get"),
    path("bench/trivial", baseline.trivial, name="bench-trivial"),
    *product_urlpatterns,
]
