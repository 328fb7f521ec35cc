"""Site-wide views: error pages (JSON envelope under /api/, plain pages elsewhere) and public media."""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.defaults import page_not_found
from django.views.defaults import server_error as html_server_error
from django.views.static import serve

from .errors import json_not_found, json_server_error


def not_found(request, exception=None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return page_not_found(request, exception)


def server_error(request) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_server_error(request)
    return html_server_error(request)


# Uploads meant for customers' eyes: organization logos and crew photos on tracker pages.
# Attachments are never served from here; they go out only through signed links (/files/...).
PUBLIC_MEDIA_PREFIXES = ("logos/", "crew/")


def public_media(request: HttpRequest, path: str) -> HttpResponse:
    if not path.startswith(PUBLIC_MEDIA_PREFIXES) or ".." in path.split("/"):
        raise Http404
    response = serve(request, path, document_root=settings.MEDIA_ROOT)
    response["Cache-Control"] = "public, max-age=86400"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
